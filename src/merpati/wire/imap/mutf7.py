"""Modified UTF-7 mailbox names (RFC 3501 §5.1.3) and the UTF8=ACCEPT alternative (RFC 6855).

* Printable US-ASCII (0x20-0x7E) stands for itself, except ``&`` which is ``&-``.
* Anything else is UTF-16 in modified base64 (``,`` instead of ``/``, no padding)
  between ``&`` and ``-``.

Decoding is strict: the only accepted spelling of a name is the one :func:`encode`
produces (so ``&AGE-`` for a printable ``a``, two adjacent shifted runs, non-zero padding
bits, an unterminated ``&`` or a lone UTF-16 surrogate are all errors). Decoded names
must not contain control characters (C0, DEL, C1; RFC 5198 Net-Unicode), in both modes.
"""

from __future__ import annotations

import binascii
import re

__all__ = ["MailboxNameError", "decode", "decode_name", "encode", "encode_name"]


class MailboxNameError(ValueError):
    """A mailbox name that is not valid modified UTF-7 (or UTF-8 in UTF8=ACCEPT mode)."""


_PLAIN = re.compile(r"[\x20-\x25\x27-\x7e]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_B64 = re.compile(rb"&([A-Za-z0-9+,]*)-")
_ASCII_OK = re.compile(rb"[\x20-\x25\x27-\x7e]*\Z")


def encode(name: str) -> str:
    """``name`` in modified UTF-7 (always succeeds for a ``str`` without lone surrogates)."""
    if _ASCII_OK.match(name.encode("utf-8", "surrogatepass")):
        return name
    out = []
    pos = 0
    n = len(name)
    while pos < n:
        m = _PLAIN.match(name, pos)
        if m:
            out.append(m.group())
            pos = m.end()
            continue
        if name[pos] == "&":
            out.append("&-")
            pos += 1
            continue
        end = pos
        while end < n and not ("\x20" <= name[end] <= "\x7e"):
            end += 1
        raw = name[pos:end].encode("utf-16-be", "surrogatepass")
        b64 = binascii.b2a_base64(raw, newline=False).rstrip(b"=").replace(b"/", b",")
        out.append("&" + b64.decode("ascii") + "-")
        pos = end
    return "".join(out)


def decode(data: bytes | str) -> str:
    """Decode a modified UTF-7 name; raise :class:`MailboxNameError` when malformed."""
    raw = data.encode("latin-1") if isinstance(data, str) else bytes(data)
    if b"&" not in raw:
        if not _ASCII_OK.match(raw):
            raise MailboxNameError("mailbox name is not 7-bit printable (modified UTF-7)")
        return raw.decode("ascii")
    out = []
    pos = 0
    prev_shift_end = -1
    while True:
        amp = raw.find(b"&", pos)
        plain = raw[pos:] if amp < 0 else raw[pos:amp]
        if not _ASCII_OK.match(plain):
            raise MailboxNameError("mailbox name is not 7-bit printable (modified UTF-7)")
        out.append(plain.decode("ascii"))
        if amp < 0:
            break
        m = _B64.match(raw, amp)
        if m is None:
            raise MailboxNameError("unterminated or invalid modified UTF-7 sequence")
        b64 = m.group(1)
        pos = m.end()
        if not b64:
            out.append("&")
            continue
        if amp == prev_shift_end:
            raise MailboxNameError("adjacent modified UTF-7 sequences")
        prev_shift_end = pos
        if len(b64) % 4 == 1:
            raise MailboxNameError("invalid modified base64 length")
        padded = b64.replace(b",", b"/") + b"=" * (-len(b64) % 4)
        try:
            utf16 = binascii.a2b_base64(padded, strict_mode=True)
        except binascii.Error as exc:
            raise MailboxNameError("invalid modified base64") from exc
        if len(utf16) % 2:
            raise MailboxNameError("modified base64 does not end on a UTF-16 unit")
        try:
            text = utf16.decode("utf-16-be")
        except UnicodeDecodeError as exc:
            raise MailboxNameError("invalid UTF-16 in modified UTF-7") from exc
        if any("\x20" <= ch <= "\x7e" for ch in text):
            raise MailboxNameError("printable US-ASCII must not be base64-encoded")
        # non-zero padding bits: re-encode and compare
        again = binascii.b2a_base64(utf16, newline=False).rstrip(b"=").replace(b"/", b",")
        if again != b64:
            raise MailboxNameError("non-canonical modified base64 (padding bits)")
        out.append(text)
    return "".join(out)


def decode_name(data: bytes, *, utf8: bool = False) -> str:
    """A mailbox name from the wire: modified UTF-7, or UTF-8 when ``utf8`` (RFC 6855 §3).

    Also refuses control characters. Raises :class:`MailboxNameError`.
    """
    if utf8:
        try:
            name = bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MailboxNameError("mailbox name is not valid UTF-8") from exc
    else:
        name = decode(data)
    if _CONTROL.search(name):
        raise MailboxNameError("control characters in mailbox name")
    return name


def encode_name(name: str, *, utf8: bool = False) -> str:
    """A mailbox name for the wire: unchanged in UTF8=ACCEPT mode, else modified UTF-7."""
    return name if utf8 else encode(name)
