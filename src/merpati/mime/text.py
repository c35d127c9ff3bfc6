"""Lenient decoders that never raise: charsets, RFC 2047 encoded words,
base64 and quoted-printable bodies, RFC 2231 parameter values.

Raw header text is carried around as *raw strings*: ``str`` objects holding
one character per original byte (latin-1), so that they are JSON-safe and
convert back to the exact bytes with ``.encode("latin-1")``.
"""

from __future__ import annotations

import binascii
import re
from urllib.parse import unquote_to_bytes

__all__ = [
    "decode_charset",
    "decode_raw",
    "decode_words",
    "decode_base64",
    "decode_qp",
    "decode_cte",
    "decode_2231",
]

_B64_DELETE = bytes(c for c in range(256) if not (chr(c).isascii() and (chr(c).isalnum() or chr(c) in "+/")))


def decode_charset(data: bytes, charset: str | None) -> str:
    """Decode ``data`` declared as ``charset``; unknown charsets and bad bytes
    give U+FFFD replacements, never an exception."""
    cs = (charset or "").strip().strip('"').lower()
    if cs in ("", "us-ascii", "ascii", "unknown-8bit", "x-unknown", "utf8"):
        cs = "utf-8"  # undeclared 8-bit text is nearly always UTF-8 today
    try:
        return data.decode(cs, "replace")
    except Exception:  # LookupError, non-text codecs, codecs without "replace"
        return data.decode("utf-8", "replace")


def decode_raw(raw: str) -> str:
    """Raw header string (latin-1 per byte) to text: UTF-8 when valid (RFC 6532),
    else windows-1252 as the usual legacy guess."""
    if raw.isascii():
        return raw
    b = raw.encode("latin-1")
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        return b.decode("cp1252", "replace")


def decode_base64(data: bytes) -> bytes:
    """Lenient base64: ignores characters outside the alphabet and bad padding."""
    clean = data.translate(None, _B64_DELETE)
    rem = len(clean) % 4
    if rem == 1:
        clean = clean[:-1]
    elif rem:
        clean += b"=" * (4 - rem)
    try:
        return binascii.a2b_base64(clean)
    except (binascii.Error, ValueError):  # pragma: no cover - cleaned input
        return b""


def decode_qp(data: bytes, header: bool = False) -> bytes:
    try:
        return binascii.a2b_qp(data, header=header)
    except (binascii.Error, ValueError):  # pragma: no cover - a2b_qp is lenient
        return data


def decode_cte(data: bytes, cte: str | None) -> bytes | None:
    """Decode a body by its Content-Transfer-Encoding; None if unknown."""
    c = (cte or "7bit").strip().lower()
    if c in ("7bit", "8bit", "binary", ""):
        return data
    if c == "base64":
        return decode_base64(data)
    if c == "quoted-printable":
        return decode_qp(data)
    return None


# RFC 2047 §2: encoded-word = "=?" charset "?" encoding "?" encoded-text "?="
_EW = re.compile(r"=\?([^?\s]+)\?([QqBb])\?([^?\s]*)\?=")


def decode_words(raw: str) -> str:
    """Decode RFC 2047 encoded words in a raw header value.

    Lenient: malformed words stay as they are; whitespace between adjacent
    encoded words is dropped (§6.2); adjacent words in the same charset are
    joined before decoding so multi-byte characters split across words survive.
    """
    if "=?" not in raw:
        return decode_raw(raw)
    out: list[str] = []
    pend_cs: str | None = None
    pend: list[bytes] = []
    pos = 0
    for m in _EW.finditer(raw):
        between = raw[pos:m.start()]
        if pend_cs is None or between.strip(" \t\r\n"):
            if pend_cs is not None:
                out.append(decode_charset(b"".join(pend), pend_cs))
                pend_cs, pend = None, []
            out.append(decode_raw(between))
        cs = m[1].split("*", 1)[0]  # RFC 2231 §5 language suffix
        text = m[3].encode("latin-1")
        word = decode_qp(text, header=True) if m[2] in "Qq" else decode_base64(text)
        if pend_cs is not None and cs.lower() != pend_cs.lower():
            out.append(decode_charset(b"".join(pend), pend_cs))
            pend = []
        pend_cs = cs
        pend.append(word)
        pos = m.end()
    if pend_cs is not None:
        out.append(decode_charset(b"".join(pend), pend_cs))
    out.append(decode_raw(raw[pos:]))
    return "".join(out)


def decode_2231(value: str) -> str:
    """Decode an RFC 2231 extended value ``charset'language'percent-encoded``."""
    parts = value.split("'", 2)
    if len(parts) != 3:
        return decode_raw(value)
    cs, _lang, enc = parts
    return decode_charset(unquote_to_bytes(enc.encode("latin-1")), cs or "utf-8")
