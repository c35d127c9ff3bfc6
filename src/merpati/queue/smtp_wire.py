"""Sans-IO pieces of the outbound SMTP client: reply parsing, EHLO capabilities, command
arguments (xtext, DSN parameters) and the outbound body encoding (dot-stuffing).

No sockets here: ``client.py`` feeds bytes in and writes what these functions build.

* ``ReplyParser`` turns server bytes into ``ServerReply`` objects (RFC 5321 §4.2: ``xyz-text``
  continuation lines, then ``xyz text``). Anything else is ``ReplyError`` ("garbage"): the
  attempt ends as a temporary failure of that host. Lines and replies are bounded, so a
  hostile server cannot make us buffer without limit.
* ``dot_stuff`` (SECURITY-CASES SMTP-33): every bare CR or LF becomes CRLF, a line that
  starts with ``.`` gets another, and the body ends with CRLF, so the next hop never sees an
  ambiguous end of data (Dovecot CVE-2026-33604: dots after a bare CR).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_REPLY_LINE = 4096  # RFC 5321 §4.5.3.1.5 says 512; be lenient, but bounded
MAX_REPLY_LINES = 256
_LINE = re.compile(rb"([2-5][0-9][0-9])([ -]|$)(.*)", re.S)
_ENHANCED = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})(?: |$)")


class ReplyError(Exception):
    """The server sent something that is not an SMTP reply."""


@dataclass(frozen=True, slots=True)
class ServerReply:
    code: int
    lines: tuple[str, ...]  # the text of each line (after "xyz-" / "xyz ")

    @property
    def is_success(self) -> bool:
        return 200 <= self.code < 400

    @property
    def is_temporary(self) -> bool:
        return 400 <= self.code < 500

    @property
    def is_permanent(self) -> bool:
        return self.code >= 500

    @property
    def enhanced(self) -> str | None:
        """The RFC 3463 status code at the start of the text, when present and consistent."""
        m = _ENHANCED.match(self.lines[0] if self.lines else "")
        if m is None or m.group(1) != str(self.code)[0]:
            return None
        return f"{m.group(1)}.{m.group(2)}.{m.group(3)}"

    @property
    def text(self) -> str:
        return " ".join(self.lines)

    def __str__(self) -> str:
        return f"{self.code} {self.text}".strip()


class ReplyParser:
    """Incremental: ``feed`` bytes, then ``next_reply()`` until it returns None."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._lines: list[str] = []
        self._code: bytes | None = None

    def feed(self, data: bytes) -> None:
        self._buf += data
        if len(self._buf) > MAX_REPLY_LINE and b"\n" not in self._buf[:MAX_REPLY_LINE]:
            raise ReplyError("reply line too long")

    def discard(self) -> None:
        """Forget everything buffered (after STARTTLS's 220: SECURITY-CASES SMTP-14)."""
        self._buf.clear()
        self._lines.clear()
        self._code = None

    @property
    def buffered(self) -> int:
        return len(self._buf) + sum(len(x) for x in self._lines)

    def next_reply(self) -> ServerReply | None:
        while True:
            end = self._buf.find(b"\n")
            if end < 0:
                if len(self._buf) > MAX_REPLY_LINE:
                    raise ReplyError("reply line too long")
                return None
            raw = bytes(self._buf[:end])
            del self._buf[: end + 1]
            if raw.endswith(b"\r"):
                raw = raw[:-1]
            if len(raw) > MAX_REPLY_LINE:
                raise ReplyError("reply line too long")
            m = _LINE.fullmatch(raw)
            if m is None:
                raise ReplyError(f"not an SMTP reply: {raw[:60]!r}")
            code, sep, text = m.group(1), m.group(2), m.group(3)
            if self._code is not None and code != self._code:
                raise ReplyError("reply code changed within a multi-line reply")
            self._code = code
            self._lines.append(text.decode("utf-8", "replace"))
            if len(self._lines) > MAX_REPLY_LINES:
                raise ReplyError("too many reply lines")
            if sep != b"-":
                reply = ServerReply(int(code), tuple(self._lines))
                self._lines = []
                self._code = None
                return reply


def parse_ehlo(reply: ServerReply) -> dict[str, str]:
    """EHLO keywords (upper-case) → their parameters ("" when none)."""
    caps: dict[str, str] = {}
    for line in reply.lines[1:]:
        keyword, _, params = line.strip().partition(" ")
        if keyword:
            caps[keyword.upper()] = params.strip()
    return caps


def size_limit(caps: dict[str, str]) -> int | None:
    value = caps.get("SIZE")
    if value is None:
        return None
    try:
        limit = int(value.split()[0]) if value.split() else 0
    except ValueError:
        return None
    return limit or None  # "SIZE 0": no fixed limit (RFC 1870 §4)


def xtext(text: str) -> str:
    """RFC 3461 §4 xtext: "+" and "=" and anything outside 33..126 as ``+HH``."""
    out = []
    for byte in text.encode("utf-8"):
        if 33 <= byte <= 126 and byte not in (0x2B, 0x3D):
            out.append(chr(byte))
        else:
            out.append(f"+{byte:02X}")
    return "".join(out)


def orcpt_param(orcpt: str) -> str | None:
    """``rfc822;addr`` (decoded, as stored) → the ORCPT parameter value, or None if unusable."""
    kind, sep, address = orcpt.partition(";")
    if not sep or not kind.strip() or not address:
        return None
    return f"{kind.strip()};{xtext(address)}"


def needs_smtputf8(sender: str, recipients: list[str]) -> bool:
    return not sender.isascii() or not all(r.isascii() for r in recipients)


def dot_stuff(data: bytes) -> bytes:
    """The DATA payload for ``data``: CRLF line endings, dots doubled, ending with CRLF.

    The terminating ``.CRLF`` is not included. Fast path when the body has no bare CR/LF.
    """
    if not data:
        return b""
    crlf = data.count(b"\r\n")
    if data.count(b"\n") != crlf or data.count(b"\r") != crlf:
        data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    if data.startswith(b"."):
        data = b"." + data
    return data.replace(b"\r\n.", b"\r\n..")


def dot_unstuff(payload: bytes) -> bytes:
    """The inverse of ``dot_stuff`` (for tests): the body a receiver reconstructs."""
    if payload.startswith(b"."):
        payload = payload[1:]
    return payload.replace(b"\r\n..", b"\r\n.")


def normalize_line_endings(data: bytes) -> bytes:
    """What a receiver of ``dot_stuff(data)`` gets: CRLF everywhere and a final CRLF."""
    if not data:
        return b""
    data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")
    return data if data.endswith(b"\r\n") else data + b"\r\n"
