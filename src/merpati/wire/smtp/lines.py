"""Command-line framing (RFC 5321 §2.3.8, §4.5.3.1.4): the engine's input buffer.

A command line ends with CRLF, nothing else. A line holding a bare CR or LF or a NUL is
reported as an error and never returned (SECURITY-CASES SMTP-06). A line longer than
the limit is reported once its LF arrives; until then it is dropped as it comes, so an
endless line costs no memory (SMTP-20). The LF search resumes where the previous one
stopped, so a line trickled in byte by byte is scanned once, not quadratically.
"""

from __future__ import annotations

from merpati.wire.smtp import replies as R
from merpati.wire.smtp.reply import SmtpReplyError

__all__ = ["LineBuffer", "LineTooLong"]

_CR = 0x0D


class LineTooLong(SmtpReplyError):
    def __init__(self) -> None:
        super().__init__(R.LINE_TOO_LONG)


class LineBuffer:
    """Input bytes not yet consumed, plus the state of the line scanner."""

    __slots__ = ("_discarding", "_scan_from", "data")

    def __init__(self) -> None:
        self.data = bytearray()
        self._scan_from = 0  # no LF before this offset
        self._discarding = False  # inside an over-long line

    def __len__(self) -> int:
        return len(self.data)

    def clear(self) -> None:
        self.data.clear()
        self._scan_from = 0
        self._discarding = False

    def starts_with_auth(self) -> bool:
        return self.data[:5].upper() == b"AUTH "

    def next_line(self, limit: int) -> bytes | None:
        """The next line without CRLF, or None if incomplete; raises on bad lines."""
        buf = self.data
        lf = buf.find(b"\n", min(self._scan_from, len(buf)))
        if lf < 0:
            if self._discarding or len(buf) > limit:
                self._discarding = True
                buf.clear()
            self._scan_from = len(buf)
            return None
        self._scan_from = 0
        if self._discarding or lf + 1 > limit:
            self._discarding = False
            del buf[: lf + 1]
            raise LineTooLong()
        if lf == 0 or buf[lf - 1] != _CR or buf.find(b"\r", 0, lf - 1) >= 0:
            del buf[: lf + 1]
            raise SmtpReplyError(R.BARE_LF_COMMAND)
        line = bytes(buf[: lf - 1])
        del buf[: lf + 1]
        if b"\x00" in line:
            raise SmtpReplyError(R.NUL_COMMAND)
        return line
