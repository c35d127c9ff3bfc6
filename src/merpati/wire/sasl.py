"""SASL mechanisms as sans-IO exchanges, shared by SMTP AUTH, IMAP AUTHENTICATE and POP3 AUTH.

Each protocol frames the exchange its own way (``334``, ``+``), base64-encodes challenges and
decodes responses; the mechanisms here see only the decoded bytes. An exchange is driven by
``step(response)`` until it returns ``Done``; any malformed response raises ``SaslError`` and
the protocol answers with its own failure code (SMTP 501 5.5.2, IMAP BAD, POP3 -ERR).

PLAIN is RFC 4616; LOGIN is the obsolete but universal draft-murchison-sasl-login (Outlook and
many phones still use it). Credentials are bounded (``MAX_FIELD``) so no client can make us hash
a megabyte of password.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

MECHANISMS = ("PLAIN", "LOGIN")
MAX_FIELD = 1024  # octets per authzid, username or password


class SaslError(ValueError):
    """A malformed SASL response; the text is safe to log, never echoes the secret."""


@dataclass(frozen=True, slots=True)
class Credentials:
    username: str  # authentication identity (authcid)
    password: str
    authzid: str = ""  # authorization identity; "" or equal to username unless the server allows proxying


@dataclass(frozen=True, slots=True)
class Challenge:
    data: bytes  # raw challenge; the protocol base64-encodes it


@dataclass(frozen=True, slots=True)
class Done:
    credentials: Credentials


Step = Challenge | Done


def decode_base64(line: bytes) -> bytes:
    """A client's base64 response line (without CRLF); ``=`` is the empty initial response (RFC 4954)."""
    line = line.strip()
    if line == b"=":
        return b""
    if len(line) > 4 * (3 * MAX_FIELD + 2) // 3 + 4:
        raise SaslError("response too long")
    try:
        return base64.b64decode(line, validate=True)
    except (binascii.Error, ValueError):
        raise SaslError("invalid base64") from None


def encode_base64(data: bytes) -> bytes:
    return base64.b64encode(data)


def _text(raw: bytes, what: str) -> str:
    if len(raw) > MAX_FIELD:
        raise SaslError(f"{what} too long")
    if b"\x00" in raw:
        raise SaslError(f"NUL in {what}")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise SaslError(f"{what} is not UTF-8") from None


def parse_plain(message: bytes) -> Credentials:
    """RFC 4616: ``[authzid] NUL authcid NUL passwd``."""
    parts = message.split(b"\x00")
    if len(parts) != 3:
        raise SaslError("PLAIN needs exactly authzid NUL authcid NUL password")
    authzid, authcid, passwd = (_text(p, w) for p, w in zip(parts, ("authzid", "username", "password")))
    if not authcid or not passwd:
        raise SaslError("empty username or password")
    return Credentials(username=authcid, password=passwd, authzid=authzid)


class PlainExchange:
    """PLAIN: one response, given as the initial response or after an empty challenge."""

    name = "PLAIN"

    def start(self, initial: bytes | None) -> Step:
        if initial is None:
            return Challenge(b"")
        return Done(parse_plain(initial))

    def step(self, response: bytes) -> Step:
        return Done(parse_plain(response))


class LoginExchange:
    """LOGIN: ``Username:`` then ``Password:`` challenges; an initial response is the username."""

    name = "LOGIN"

    def __init__(self) -> None:
        self._username: str | None = None

    def start(self, initial: bytes | None) -> Step:
        if initial is None or initial == b"":
            return Challenge(b"Username:")
        return self.step(initial)

    def step(self, response: bytes) -> Step:
        if self._username is None:
            self._username = _text(response, "username")
            if not self._username:
                raise SaslError("empty username")
            return Challenge(b"Password:")
        password = _text(response, "password")
        if not password:
            raise SaslError("empty password")
        return Done(Credentials(username=self._username, password=password))


Exchange = PlainExchange | LoginExchange


def new_exchange(mechanism: str) -> Exchange | None:
    """The exchange for a mechanism name (case-insensitive), or None when we do not offer it."""
    name = mechanism.upper()
    if name == "PLAIN":
        return PlainExchange()
    if name == "LOGIN":
        return LoginExchange()
    return None
