"""Small IMAP formatting helpers for the session layer (values → response bytes).

The session builds hot responses (FETCH, EXISTS, flag updates) as bytes joins; these helpers
keep the quoting rules in one place (RFC 9051 §4.3: quoted strings hold no CR, LF, NUL or
8-bit octet, anything else goes as a literal).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime

_MONTHS = (b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec")
_QUOTABLE = re.compile(rb"[\x01-\x09\x0b\x0c\x0e-\x7f]*\Z")
_ATOM = re.compile(rb"[!#$&'+-\[^-z|}~]+\Z")  # ATOM-CHAR minus "]" kept out of astrings below
_SYSTEM_ORDER = {"\\Answered": 0, "\\Flagged": 1, "\\Deleted": 2, "\\Seen": 3, "\\Draft": 4, "\\Recent": 5}
_MAX_QUOTED = 4096


def string(value: bytes | str) -> bytes:
    """A quoted string when it can be one, else a synchronising literal."""
    raw = value.encode("utf-8") if isinstance(value, str) else value
    if len(raw) <= _MAX_QUOTED and _QUOTABLE.match(raw):
        return b'"' + raw.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
    return b"{%d}\r\n" % len(raw) + raw


def nstring(value: bytes | str | None) -> bytes:
    return b"NIL" if value is None else string(value)


def literal(data: bytes, *, binary: bool = False) -> bytes:
    return (b"~{%d}\r\n" if binary else b"{%d}\r\n") % len(data) + data


def astring(value: bytes | str) -> bytes:
    raw = value.encode("utf-8") if isinstance(value, str) else value
    if raw and _ATOM.match(raw) and raw.upper() != b"NIL":
        return raw
    return string(raw)


def _flag_key(flag: str) -> tuple[int, str]:
    return (_SYSTEM_ORDER.get(flag, 9), flag)


def flags_bytes(flags: Iterable[str], *, recent: bool = False) -> bytes:
    """``(\\Seen $Forwarded)``; ``\\Recent`` added when ``recent``."""
    items = list(flags)
    if recent:
        items.append("\\Recent")
    if not items:
        return b"()"
    if len(items) > 1:
        items.sort(key=_flag_key)
    return b"(" + " ".join(items).encode("utf-8", "replace") + b")"


def date_time(dt: datetime) -> bytes:
    """``"17-Jul-1996 02:44:25 -0700"`` (RFC 9051 date-time)."""
    off = dt.utcoffset()
    minutes = int(off.total_seconds()) // 60 if off is not None else 0
    sign = b"+" if minutes >= 0 else b"-"
    minutes = abs(minutes)
    return b'"%02d-%s-%04d %02d:%02d:%02d %s%02d%02d"' % (
        dt.day, _MONTHS[dt.month - 1], dt.year, dt.hour, dt.minute, dt.second, sign, minutes // 60, minutes % 60,
    )


def sanitize_text(text: str, limit: int = 200) -> bytes:
    """Free text for a response line: printable ASCII only, bounded (never echoes CR/LF)."""
    raw = text.encode("ascii", "replace")[:limit]
    return bytes(c if 0x20 <= c < 0x7F else 0x3F for c in raw)
