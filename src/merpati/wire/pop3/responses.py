"""POP3 responses: status lines (RFC 1939 §3), response codes (RFC 2449 §8, RFC 3206) and
multi-line responses, serialised to bytes.

A status line is ``+OK`` or ``-ERR``, an optional ``[CODE]`` and text. Text that came from
anywhere is sanitised: no CR, LF, NUL or other control characters reach the wire, non-ASCII
only once the client enabled UTF8 (RFC 6856 §2), and the line stays within 512 octets
(RFC 2449 §4: responses may be up to 512 octets, CRLF included).

A multi-line response is a status line, then the body's lines, byte-stuffed (a line starting
with "." gets one more "."), then ".\\r\\n" (RFC 1939 §3). ``MultiLine.body`` holds the lines
already in CRLF form, unstuffed; the engine stuffs them on the way out.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass

from merpati.wire.pop3.stuffing import dot_stuff

__all__ = ["Err", "MultiLine", "Ok", "RespCode", "Response", "sanitise", "status_line"]

MAX_RESPONSE_LINE = 512  # octets, CRLF included (RFC 2449 §4)


class RespCode(str, enum.Enum):
    """Extended response codes (RFC 2449 §8, RFC 3206 §4), written as ``[CODE]``."""

    IN_USE = "IN-USE"  # RFC 2449 §8.1.1: the maildrop is locked by another session
    LOGIN_DELAY = "LOGIN-DELAY"  # RFC 2449 §8.1.2: logged in too recently
    SYS_TEMP = "SYS/TEMP"  # RFC 3206 §4: a temporary system problem
    SYS_PERM = "SYS/PERM"  # RFC 3206 §4: a permanent system problem
    AUTH = "AUTH"  # RFC 3206 §5: the credentials are the problem (or plaintext refused)


@dataclass(frozen=True, slots=True)
class Ok:
    text: str = ""
    code: RespCode | None = None


@dataclass(frozen=True, slots=True)
class Err:
    text: str = ""
    code: RespCode | None = None


@dataclass(frozen=True, slots=True)
class MultiLine:
    """``+OK text``, then ``body`` (CRLF-terminated lines, unstuffed), then the terminator."""

    text: str
    body: bytes

    @classmethod
    def from_lines(cls, text: str, lines: Iterable[str]) -> MultiLine:
        body = "".join(f"{line}\r\n" for line in lines).encode("utf-8")
        return cls(text, body)


Response = Ok | Err | MultiLine

_UNSAFE_ASCII = re.compile(r"[^\x20-\x7e]")
_UNSAFE_UTF8 = re.compile(r"[\x00-\x1f\x7f\x80-\x9f\u2028\u2029]")


def sanitise(text: str, *, utf8: bool = False, limit: int = MAX_RESPONSE_LINE - 40) -> str:
    """``text`` safe for one response line: controls (and non-ASCII unless ``utf8``) become "?"."""
    if len(text) <= limit and text.isascii() and text.isprintable():
        return text  # the usual case ("1234 octets"): nothing to replace
    text = text[:limit]
    text = (_UNSAFE_UTF8 if utf8 else _UNSAFE_ASCII).sub("?", text)
    while len(text.encode("utf-8")) > limit:
        text = text[: len(text) - 1]
    return text


def status_line(ok: bool, text: str, code: RespCode | None, *, utf8: bool = False) -> bytes:
    parts = ["+OK" if ok else "-ERR"]
    if code is not None:
        parts.append(f"[{code.value}]")
    if text:
        parts.append(sanitise(text, utf8=utf8))
    return (" ".join(parts) + "\r\n").encode("utf-8")


def to_bytes(response: Response, *, utf8: bool = False) -> bytes:
    """The whole response on the wire."""
    if isinstance(response, Ok):
        return status_line(True, response.text, response.code, utf8=utf8)
    if isinstance(response, Err):
        return status_line(False, response.text, response.code, utf8=utf8)
    if isinstance(response, MultiLine):
        return b"".join((status_line(True, response.text, None, utf8=utf8), dot_stuff(response.body), b".\r\n"))
    raise TypeError(f"not a POP3 response: {response!r}")
