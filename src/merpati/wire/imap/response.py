"""Serialising server responses (RFC 9051 §7, §9 ``response``).

Lines:

* :func:`tagged` — ``tag OK|NO|BAD [code] text``.
* :func:`untagged_status` — ``* OK|NO|BAD|BYE|PREAUTH [code] text``.
* :func:`untagged` — ``* `` + values joined by SP (``untagged(3, "EXISTS")`` is wrong:
  use :class:`Atom` for keywords, ``untagged(3, Atom("EXISTS"))`` or
  ``untagged_raw(b"3 EXISTS")``).
* :func:`continuation` — ``+ text``.

Values (:func:`serialize`):

=======================  ==============================================================
Python value             IMAP
=======================  ==============================================================
``None``                 ``NIL``
``int``                  number (``bool`` is refused)
``str`` / ``bytes``      string: quoted when short, 7-bit printable and at most a few
                         ``"``/``\\``; else a literal ``{n}``. ``str`` is UTF-8 encoded.
``Atom(s)``              written as is (validated: no SP, CTL, ``(){"\\``… except
                         the ``[``/``]`` of ``BODY[...]`` items and ``\\`` of flags)
``Quoted(s)``            always quoted (refused if it cannot be)
``Literal(b)``           ``{n}\\r\\n`` + octets
``Literal8(b)``          ``~{n}\\r\\n`` + octets (BINARY, RFC 3516)
``Raw(b)``               pre-serialised bytes (e.g. ``merpati.mime.imap.render_imap``)
``list`` / ``tuple``     ``(`` items joined by SP ``)``
=======================  ==============================================================

Response text (after the code) is sanitised: CR, LF and NUL become spaces; text is cut
to 1000 octets.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from merpati.wire.imap.mutf7 import encode_name

__all__ = [
    "Atom",
    "Literal",
    "Literal8",
    "Quoted",
    "Raw",
    "continuation",
    "format_internaldate",
    "mailbox",
    "serialize",
    "tagged",
    "untagged",
    "untagged_raw",
    "untagged_status",
]


@dataclass(frozen=True, slots=True)
class Atom:
    """A keyword, flag or item name written verbatim (``FLAGS``, ``\\Seen``, ``BODY[1]``)."""

    value: str


@dataclass(frozen=True, slots=True)
class Quoted:
    """A string that must be quoted (not a literal), e.g. INTERNALDATE, a delimiter."""

    value: str | bytes


@dataclass(frozen=True, slots=True)
class Literal:
    """Force a literal ``{n}``."""

    value: bytes


@dataclass(frozen=True, slots=True)
class Literal8:
    """A literal8 ``~{n}`` (BINARY[] content, RFC 3516)."""

    value: bytes


@dataclass(frozen=True, slots=True)
class Raw:
    """Bytes that are already valid IMAP syntax (inserted unchanged)."""

    value: bytes


_QUOTABLE = re.compile(rb"[\x20-\x7e]*\Z")
_ATOM_OK = re.compile(rb"[\x21-\x7e]+\Z")
_ATOM_BAD = re.compile(rb'["{}\x00-\x20\x7f]')
_TEXT_BAD = re.compile(rb"[\x00\r\n]")
_MAX_QUOTED = 1024
_MAX_TEXT = 1000


def _string(s: bytes) -> bytes:
    if len(s) <= _MAX_QUOTED and _QUOTABLE.match(s):
        if b'"' in s or b"\\" in s:
            s = s.replace(b"\\", b"\\\\").replace(b'"', b'\\"')
        return b'"' + s + b'"'
    return b"{%d}\r\n" % len(s) + s


def _atom(value: str) -> bytes:
    b = value.encode("ascii")
    if not _ATOM_OK.match(b) or _ATOM_BAD.search(b):
        raise ValueError(f"not an IMAP atom: {value!r}")
    return b


def _write(out: list[bytes], value: object, depth: int) -> None:
    if depth > 64:
        raise ValueError("IMAP value nested too deeply")
    if value is None:
        out.append(b"NIL")
    elif isinstance(value, bool):
        raise TypeError("bool is not an IMAP value")
    elif isinstance(value, int):
        if value < 0:
            raise ValueError("IMAP numbers are unsigned")
        out.append(b"%d" % value)
    elif isinstance(value, str):
        out.append(_string(value.encode("utf-8")))
    elif isinstance(value, (bytes, bytearray, memoryview)):
        out.append(_string(bytes(value)))
    elif isinstance(value, Atom):
        out.append(_atom(value.value))
    elif isinstance(value, Raw):
        out.append(value.value)
    elif isinstance(value, Literal):
        out.append(b"{%d}\r\n" % len(value.value))
        out.append(value.value)
    elif isinstance(value, Literal8):
        out.append(b"~{%d}\r\n" % len(value.value))
        out.append(value.value)
    elif isinstance(value, Quoted):
        v = value.value.encode("utf-8") if isinstance(value.value, str) else value.value
        if not _QUOTABLE.match(v):
            raise ValueError("value cannot be quoted")
        out.append(b'"' + v.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"')
    elif isinstance(value, (list, tuple)):
        out.append(b"(")
        first = True
        for item in value:
            if not first:
                out.append(b" ")
            first = False
            _write(out, item, depth + 1)
        out.append(b")")
    else:
        raise TypeError(f"not an IMAP value: {type(value).__name__}")


def serialize(value: object) -> bytes:
    """One IMAP value as bytes (see the module table)."""
    out: list[bytes] = []
    _write(out, value, 0)
    return b"".join(out)


def mailbox(name: str, *, utf8: bool = False) -> bytes:
    """A mailbox name as an IMAP string: modified UTF-7 unless ``utf8`` (RFC 6855)."""
    return _string(encode_name(name, utf8=utf8).encode("utf-8"))


def _text(text: str | bytes) -> bytes:
    b = text.encode("utf-8", "replace") if isinstance(text, str) else bytes(text)
    if _TEXT_BAD.search(b):
        b = _TEXT_BAD.sub(b" ", b)
    if len(b) > _MAX_TEXT:
        b = b[:_MAX_TEXT].decode("utf-8", "ignore").encode("utf-8")
    return b or b"."


def _code(code: str | bytes | None) -> bytes:
    if code is None:
        return b""
    b = code.encode("utf-8") if isinstance(code, str) else code
    b = b.replace(b"]", b"").replace(b"\r", b"").replace(b"\n", b"")
    return b"[" + b + b"] "


def tagged(tag: str, status: str, text: str | bytes, code: str | bytes | None = None) -> bytes:
    """``tag status [code] text\\r\\n``; ``status`` is ``OK``, ``NO`` or ``BAD``."""
    return b"%s %s %s%s\r\n" % (tag.encode("ascii"), status.encode("ascii"), _code(code), _text(text))


def untagged_status(status: str, text: str | bytes, code: str | bytes | None = None) -> bytes:
    """``* status [code] text\\r\\n`` (OK, NO, BAD, BYE, PREAUTH)."""
    return b"* %s %s%s\r\n" % (status.encode("ascii"), _code(code), _text(text))


def untagged(*values: object) -> bytes:
    """``* `` + serialised values joined by SP + CRLF."""
    out: list[bytes] = [b"* "]
    first = True
    for v in values:
        if not first:
            out.append(b" ")
        first = False
        _write(out, v, 0)
    out.append(b"\r\n")
    return b"".join(out)


def untagged_raw(data: str | bytes) -> bytes:
    """``* data\\r\\n`` for pre-built response data (``3 EXISTS``, ``SEARCH 1 2``)."""
    b = data.encode("utf-8") if isinstance(data, str) else data
    return b"* " + b + b"\r\n"


def continuation(text: str | bytes = "") -> bytes:
    """``+ text\\r\\n`` (an empty ``text`` gives ``+ \\r\\n``, as SASL needs)."""
    if not text:
        return b"+ \r\n"
    return b"+ " + _text(text) + b"\r\n"


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def format_internaldate(dt: datetime) -> bytes:
    """``"17-Jul-1996 02:44:25 -0700"`` (RFC 9051 ``date-time``, quoted); naive means UTC."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    off = dt.utcoffset() or timedelta(0)
    minutes = int(off.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    minutes = abs(minutes)
    return (
        f'"{dt.day:02d}-{_MONTHS[dt.month - 1]}-{dt.year:04d} {dt.hour:02d}:{dt.minute:02d}:'
        f'{dt.second:02d} {sign}{minutes // 60:02d}{minutes % 60:02d}"'
    ).encode("ascii")
