"""Message bytes as POP3 sends them: CRLF line endings and byte-stuffing (RFC 1939 §3).

The stored message is sent in its CRLF form: a bare LF or a bare CR becomes CRLF and a last
line without a line break gets one, so the octet count LIST and STAT report
(``crlf_size``) is exactly what the client receives between the status line and the
terminating ".\\r\\n" once it removes the stuffing. Everything here is whole-buffer
``bytes`` work (``count``/``replace``/``find``) that runs in C: no per-line Python loops,
and a message that needs no change is returned as the same object, not a copy.
"""

from __future__ import annotations

__all__ = ["crlf_size", "dot_stuff", "to_crlf", "top"]

_CRLF = b"\r\n"


def to_crlf(data: bytes) -> bytes:
    """``data`` with every line ending CRLF and a CRLF after the last line (b"" stays b"")."""
    cr = data.count(b"\r")
    if not cr:  # LF-only (a Maildir import): one pass; returns ``data`` itself when it has no LF
        data = data.replace(b"\n", _CRLF)
    elif cr != data.count(_CRLF) or cr != data.count(b"\n"):
        data = data.replace(_CRLF, b"\n").replace(b"\r", b"\n").replace(b"\n", _CRLF)
    if data and not data.endswith(_CRLF):
        data += _CRLF
    return data


def crlf_size(data: bytes) -> int:
    """``len(to_crlf(data))`` without building it."""
    if not data:
        return 0
    crlf = data.count(_CRLF)
    bare = (data.count(b"\n") - crlf) + (data.count(b"\r") - crlf)  # each grows by one octet
    size = len(data) + bare
    if data[-1] not in b"\r\n":
        size += 2
    return size


def dot_stuff(body: bytes) -> bytes:
    """Byte-stuff CRLF-form lines: a "." at the start of a line is doubled (RFC 1939 §3)."""
    if body[:1] == b".":
        body = b"." + body
    return body.replace(b"\r\n.", b"\r\n..")


def top(message: bytes, lines: int) -> bytes:
    """TOP (RFC 1939 §7): the header, the empty line, then at most ``lines`` body lines.

    ``message`` is in CRLF form. A message without an empty line is all header.
    """
    if message.startswith(_CRLF):
        pos = 2  # an empty header
    else:
        end = message.find(b"\r\n\r\n")
        if end < 0:
            return message
        pos = end + 4
    for _ in range(lines):
        nxt = message.find(_CRLF, pos)
        if nxt < 0:
            return message
        pos = nxt + 2
    return message[:pos]
