"""Command-line framing for POP3 (RFC 1939 §3): the engine's input buffer.

A line ends with CRLF; a bare LF is accepted as well (as Dovecot does: POP3 carries no
message data from the client, so there is nothing to smuggle), and the CR before it is
dropped. A line longer than the limit is reported once its LF arrives; until then it is
dropped as it comes, so 10 MB without a line break costs no memory (SECURITY-CASES POP-04).
The LF search resumes where the previous one stopped: a line trickled in byte by byte is
scanned once, not quadratically.
"""

from __future__ import annotations

__all__ = ["LineBuffer", "LineTooLong"]


class LineTooLong(Exception):
    pass


class LineBuffer:
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

    def next_line(self, limit: int) -> bytes | None:
        """The next line without its line break, None if incomplete; LineTooLong past ``limit``
        octets (line break included)."""
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
        end = lf - 1 if lf and buf[lf - 1] == 0x0D else lf
        line = bytes(buf[:end])
        del buf[: lf + 1]
        return line
