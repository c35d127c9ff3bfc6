"""Free-space guard for the data folder (Postfix: refuse mail below 1.5 × message_size_limit)."""

from __future__ import annotations

import os
import time
from pathlib import Path


class DiskSpace:
    """``ok()`` is False while the folder's free space is below ``minimum`` bytes.

    statvfs is cheap but not free, so the answer is kept for ``interval`` seconds.
    """

    def __init__(self, path: Path, *, minimum: int, interval: float = 1.0) -> None:
        self._path = path
        self._minimum = minimum
        self._interval = interval
        self._checked = float("-inf")
        self._ok = True

    def free_bytes(self) -> int:
        st = os.statvfs(self._path)
        return st.f_bavail * st.f_frsize

    def ok(self) -> bool:
        now = time.monotonic()
        if now - self._checked >= self._interval:
            self._checked = now
            try:
                self._ok = self.free_bytes() >= self._minimum
            except OSError:
                self._ok = True  # cannot tell: let the commit itself fail with a 451 if it must
        return self._ok
