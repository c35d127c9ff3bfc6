"""Logging set-up: one line per event on stderr, cheap enough for one line per delivery."""

from __future__ import annotations

import logging
import time


class LineFormatter(logging.Formatter):
    """``2026-11-28 02:10:12.345 INFO merpati.delivery: text``.

    The stock Formatter re-renders the timestamp with time.strftime for every record; here it
    is rendered once per second (the MX logs a line per message).
    """

    def __init__(self) -> None:
        super().__init__()
        self._second = -1
        self._stamp = ""

    def format(self, record: logging.LogRecord) -> str:
        second = int(record.created)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))
        line = f"{self._stamp}.{int(record.msecs):03d} {record.levelname} {record.name}: {record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure(level: int = logging.INFO) -> None:
    root = logging.getLogger()
    if root.handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(LineFormatter())
    root.addHandler(handler)
    root.setLevel(level)
