"""Replies: one value type, its serialiser, and the named replies sessions and the engine use.

RFC 5321 §4.2: ``Reply-line = *( Reply-code "-" [ textstring ] CRLF )
Reply-code [ SP textstring ] CRLF``. RFC 2034 §4: with ENHANCEDSTATUSCODES every line of
a reply (except the greeting, EHLO lines and 334 challenges) starts with the enhanced code.

Sanitising (SECURITY-CASES SMTP-32): ``to_bytes`` maps every octet outside printable
ASCII (CR, LF, NUL, 8-bit, other controls) to ``?`` and cuts each line to 512 octets
including CRLF (RFC 5321 §4.5.3.1.5). AUTH challenges (334) may be up to 12288 octets
(RFC 4954 §4). Reply text that echoes client input is therefore always safe to write.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from merpati.wire.smtp.codes import Code, Enhanced

__all__ = ["MAX_REPLY_LINE", "Reply", "SmtpReplyError", "sanitise"]

MAX_REPLY_LINE = 512
MAX_AUTH_REPLY_LINE = 12288
_SANITISE_TABLE = bytes(b if 0x20 <= b < 0x7F else 0x3F for b in range(256))
_ENHANCED = re.compile(r"[245]\.\d{1,3}\.\d{1,3}\Z")
_KNOWN_ENHANCED = frozenset(str(e) for e in Enhanced)
_FAST_CODE_TYPES = frozenset({int, Code})  # formats as exactly three digits


def sanitise(text: str | bytes) -> bytes:
    """Printable ASCII only: every other character or octet becomes ``?``."""
    data = text.encode("ascii", "replace") if isinstance(text, str) else bytes(text)
    return data.translate(_SANITISE_TABLE)


@dataclass(frozen=True, slots=True)
class Reply:
    """One SMTP reply. ``text`` is one line (str) or several (a sequence of str)."""

    code: int
    enhanced: str | None = None
    text: str | Sequence[str] = ""

    def __post_init__(self) -> None:
        if not 200 <= self.code <= 599:
            raise ValueError(f"reply code out of range: {self.code}")
        enhanced = self.enhanced
        # The named codes skip the regex: replies are built per command on the hot path.
        if enhanced is not None and enhanced not in _KNOWN_ENHANCED and not _ENHANCED.match(enhanced):
            raise ValueError(f"bad enhanced status code {enhanced!r} for {self.code}")
        if enhanced is not None and enhanced[0] != str(self.code)[0]:
            raise ValueError(f"bad enhanced status code {enhanced!r} for {self.code}")
        if not isinstance(self.text, str):
            object.__setattr__(self, "text", tuple(self.text))

    @property
    def is_success(self) -> bool:
        """2xx or 3xx (positive completion or positive intermediate)."""
        return self.code < 400

    @property
    def lines(self) -> tuple[str, ...]:
        if isinstance(self.text, str):
            return (self.text,)
        return tuple(self.text) or ("",)

    def to_bytes(self, *, enhanced: bool = True) -> bytes:
        """Serialise; ``enhanced=False`` drops the enhanced code (no ENHANCEDSTATUSCODES)."""
        code = self.code
        text = self.text
        if type(code) in _FAST_CODE_TYPES and code != Code.AUTH_CONTINUE and text:
            # Fast path (every reply of a normal session): non-empty printable ASCII lines
            # that need neither sanitising nor cutting, so one str join and one encode give
            # exactly what _serialise would.
            enh = f"{self.enhanced} " if enhanced and self.enhanced is not None else ""
            room = MAX_REPLY_LINE - 6 - len(enh)  # "NNN" SP/"-" enh line CRLF <= 512
            if isinstance(text, str):
                if _plain(text, room):
                    return f"{code} {enh}{text}\r\n".encode("ascii")
            elif all(_plain(line, room) for line in text):
                return _join_lines(f"{code}", enh, text).encode("ascii")
        return self._serialise(enhanced)

    def _serialise(self, enhanced: bool) -> bytes:
        """The general serialiser: sanitises, cuts long lines, handles empty text and 334."""
        code = str(self.code).encode()
        limit = (MAX_AUTH_REPLY_LINE if self.code == Code.AUTH_CONTINUE else MAX_REPLY_LINE) - 2
        prefix_text = b""
        if enhanced and self.enhanced is not None:
            prefix_text = self.enhanced.encode() + b" "
        lines = self.lines
        out = []
        last = len(lines) - 1
        for index, line in enumerate(lines):
            head = code + (b" " if index == last else b"-")
            body = prefix_text + sanitise(line)
            if not body and self.code != Code.AUTH_CONTINUE:  # RFC 4954: "334" SP [base64]
                head = head.rstrip(b" ")
            out.append((head + body)[:limit] + b"\r\n")
        return b"".join(out)


def _plain(line: object, room: int) -> bool:
    """True when ``line`` is non-empty printable ASCII of at most ``room`` characters."""
    return isinstance(line, str) and 0 < len(line) <= room and line.isascii() and line.isprintable()


def _join_lines(code: str, enh: str, lines: tuple[str, ...]) -> str:
    """``code-[enh]line`` CRLF for all lines but the last, ``code [enh]line`` CRLF for it."""
    more = f"{code}-{enh}"
    return "".join([more + line + "\r\n" for line in lines[:-1]]) + f"{code} {enh}{lines[-1]}\r\n"


class SmtpReplyError(Exception):
    """Raised by parsers and handlers; the engine turns it into exactly this reply."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.code, reply.enhanced, reply.text)
        self.reply = reply
