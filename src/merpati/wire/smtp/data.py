"""The DATA body decoder: end of data, dot-unstuffing, bare CR/LF policy (RFC 5321 §4.5.2).

Theory of operation
-------------------
The body is the byte stream after the CRLF that ended the ``DATA`` line, so the stream
starts at the beginning of a line. A line starts only after a real CRLF. Rules:

* the body ends at the first line that is exactly ``.`` CRLF, i.e. at the first
  ``CRLF . CRLF`` when the CRLF that ended DATA counts as the first CRLF; nothing else
  ends it: not ``LF.LF``, ``CR.CR``, ``LF.CRLF``, ``CRLF.LF``, NUL variants
  (SECURITY-CASES SMTP-01..05, the SMTP smuggling family);
* a line that starts with ``.`` and is not the terminator loses that first dot;
* a bare CR or bare LF (not part of CRLF) is content. Policy REJECT: stop emitting, keep
  scanning to the real end, report ``DataError.BARE_LINE_ENDING``. Policy NORMALIZE:
  emit it as CRLF; it still neither ends the body nor starts a line for unstuffing;
* past ``max_size`` emitted octets: stop emitting, keep scanning, report ``TOO_BIG``.

Speed: the scanner jumps with ``bytearray.find(b"\\r\\n.")``: Python code runs once per
dot-line and per ``feed`` call, never per byte. Bare CR/LF detection compares the counts
of CR, LF and CRLF over the consumed range (three C-level passes). At most two octets
(``.`` CR at a line start, or one trailing CR) stay in the buffer between calls, so
memory is bounded however long the lines are (SMTP-21).
"""

from __future__ import annotations

from merpati.wire.smtp.events import DataError

__all__ = ["ChunkReader", "DotReader"]

_DOT = 0x2E
_CR = 0x0D
_LF = 0x0A


class DotReader:
    """Decode one DATA body incrementally. ``feed`` consumes from the front of a buffer."""

    __slots__ = ("_bol", "_max_size", "_normalize", "done", "error", "size")

    def __init__(self, *, normalize: bool, max_size: int) -> None:
        self._bol = True  # the next unconsumed octet starts a line
        self._normalize = normalize
        self._max_size = max_size
        self.size = 0  # body octets decoded so far (emitted or not)
        self.error: DataError | None = None
        self.done = False  # the terminating CRLF.CRLF has been consumed

    def feed(self, buf: bytearray) -> bytes:
        """Consume what can be decided from ``buf``; return decoded content to emit."""
        if self.done:
            return b""
        segments, consumed = self._scan(buf)
        raw_end = consumed
        if self.done:
            raw_end -= 3  # the ".\r\n" of the terminator is not content
        bare = self._has_bare(buf, raw_end)
        if len(segments) == 1:
            start, end = segments[0]
            out = bytes(buf[start:end])
        else:
            out = b"".join([buf[start:end] for start, end in segments])
        del buf[:consumed]
        if bare and self._normalize:
            out = out.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")
        elif bare and self.error is None:
            self.error = DataError.BARE_LINE_ENDING
        self.size += len(out)
        if self.error is None and self.size > self._max_size:
            self.error = DataError.TOO_BIG
        return out if self.error is None else b""

    def _scan(self, buf: bytearray) -> tuple[list[tuple[int, int]], int]:
        """Find content segments (dots removed) and how much of ``buf`` is decided."""
        n = len(buf)
        pos = 0
        seg_start = 0
        segments: list[tuple[int, int]] = []
        while True:
            if self._bol:
                if pos >= n:
                    break
                if buf[pos] == _DOT:
                    if pos + 1 >= n or (buf[pos + 1] == _CR and pos + 2 >= n):
                        break  # "." or ".\r" at a line start: wait for the next octet
                    segments.append((seg_start, pos))
                    if buf[pos + 1] == _CR and buf[pos + 2] == _LF:
                        self.done = True
                        return segments, pos + 3
                    seg_start = pos = pos + 1  # dot-unstuffing: drop the first dot
                self._bol = False
            found = buf.find(b"\r\n.", pos)
            if found < 0:
                pos = n
                if n and buf[n - 1] == _CR:
                    pos = n - 1  # hold a trailing CR back: CRLF or bare CR?
                elif n >= 2 and buf[n - 2] == _CR and buf[n - 1] == _LF:
                    self._bol = True
                break
            pos = found + 2
            self._bol = True
        segments.append((seg_start, pos))
        return segments, pos

    @staticmethod
    def _has_bare(buf: bytearray, end: int) -> bool:
        crlf = buf.count(b"\r\n", 0, end)
        return buf.count(b"\r", 0, end) != crlf or buf.count(b"\n", 0, end) != crlf


class ChunkReader:
    """The octets of one BDAT chunk (RFC 3030 §2): exactly ``size`` octets, no framing.

    ``emit=False`` consumes and drops them (a refused BDAT must still be read past, or
    its content would be taken for commands).
    """

    __slots__ = ("emit", "last", "left", "size")

    def __init__(self, size: int, *, last: bool, emit: bool) -> None:
        self.size = size
        self.left = size
        self.last = last
        self.emit = emit

    @property
    def done(self) -> bool:
        return self.left == 0

    def feed(self, buf: bytearray) -> bytes:
        take = min(self.left, len(buf))
        self.left -= take
        out = bytes(buf[:take]) if self.emit else b""
        del buf[:take]
        return out
