"""Envelope addresses (RFC 5321 §4.1.2, RFC 6531 §3.3): one strict parser, one value type.

Theory of operation
-------------------
``parse_address`` turns ``local@domain`` text into an :class:`Address`; ``parse_path``
does the same for the angle-bracket form used by ``MAIL FROM``/``RCPT TO`` and strips an
RFC 5321 source route (``<@a,@b:user@d>`` → ``user@d``, App. C / F.2). Both are strict:
anything the grammar below does not produce raises :class:`AddressError`, so one input
never has two readings (the CPython CVE-2023-27043 class, SECURITY-CASES SMTP-34).

Normal form (what two equal addresses share):

* the domain is lower-cased and, when it holds UTF-8 (U-labels), NFC-normalised; no IDNA
  conversion is done here (one consistent, non-transitional mode: ``ß`` stays ``ß``);
* address literals are re-rendered: ``[1.2.3.4]`` and ``[IPv6:<compressed>]``;
* the local part keeps its case; a quoted local part whose value is a valid dot-string
  is stored unquoted (``"abc"`` → ``abc``); otherwise it is stored re-quoted with only
  ``"`` and ``\\`` escaped. ``Address.is_quoted`` tells which.

ABNF (RFC 5321 §4.1.2, with the RFC 6531 §3.3 UTF-8 extensions marked ``=/``)::

    Path           = "<" [ A-d-l ":" ] Mailbox ">"
    A-d-l          = At-domain *( "," At-domain )
    At-domain      = "@" Domain
    Mailbox        = Local-part "@" ( Domain / address-literal )
    Local-part     = Dot-string / Quoted-string
    Dot-string     = Atom *("."  Atom)
    Atom           = 1*atext                      ; atext =/ UTF8-non-ascii
    Quoted-string  = DQUOTE *QcontentSMTP DQUOTE
    QcontentSMTP   = qtextSMTP / quoted-pairSMTP
    quoted-pairSMTP= %d92 %d32-126
    qtextSMTP      = %d32-33 / %d35-91 / %d93-126 ; qtextSMTP =/ UTF8-non-ascii
    Domain         = sub-domain *("." sub-domain)
    sub-domain     = Let-dig [Ldh-str]            ; sub-domain =/ U-label
    address-literal= "[" ( IPv4-address-literal / IPv6-address-literal ) "]"

Limits (RFC 5321 §4.5.3.1): local part 64 octets, domain 255 octets, path 256 octets;
each is a keyword argument so callers can be more lenient.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from dataclasses import dataclass

__all__ = [
    "MAX_DOMAIN",
    "MAX_LOCAL_PART",
    "MAX_PATH",
    "Address",
    "AddressError",
    "AddressUtf8Error",
    "parse_address",
    "parse_domain",
    "parse_path",
]

MAX_LOCAL_PART = 64
MAX_DOMAIN = 255
MAX_PATH = 256

_ATEXT = r"A-Za-z0-9!#$%&'*+/=?^_`{|}~\-"
_UTF8 = "\u0080-\U0010ffff"
_DOT_STRING_ASCII = re.compile(rf"[{_ATEXT}]+(?:\.[{_ATEXT}]+)*\Z")
_DOT_STRING_UTF8 = re.compile(rf"[{_ATEXT}{_UTF8}]+(?:\.[{_ATEXT}{_UTF8}]+)*\Z")
_QUOTED_ASCII = re.compile(r'"((?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\[\x20-\x7e])*)"')
_QUOTED_UTF8 = re.compile(rf'"((?:[\x20\x21\x23-\x5b\x5d-\x7e{_UTF8}]|\\[\x20-\x7e])*)"')
_QUOTED_PAIR = re.compile(r"\\(.)")
_LDH_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\Z")
_NEEDS_ESCAPE = re.compile(r'(["\\])')
_ULABEL_CATEGORIES = frozenset({"L", "M", "N"})


class AddressError(ValueError):
    """The text is not a valid envelope address; ``str(err)`` says why (never echoes input)."""


class AddressUtf8Error(AddressError):
    """The address holds non-ASCII characters but UTF-8 was not allowed (RFC 6531 §3.7.4.1)."""


@dataclass(frozen=True, slots=True)
class Address:
    """A mailbox in normal form. Build it with :func:`parse_address` or :func:`parse_path`.

    ``domain`` is empty only for the special recipient ``<Postmaster>`` (RFC 5321 §4.5.1),
    which the SMTP engine reports as ``Address("Postmaster", "")``.
    """

    local_part: str
    domain: str

    def __str__(self) -> str:
        if not self.domain:
            return self.local_part
        return f"{self.local_part}@{self.domain}"

    @property
    def is_quoted(self) -> bool:
        """True when the local part needs (and therefore keeps) the quoted-string form."""
        return self.local_part.startswith('"')

    @property
    def local_value(self) -> str:
        """The local part with quoting removed (``"a b"`` → ``a b``)."""
        if not self.is_quoted:
            return self.local_part
        return _QUOTED_PAIR.sub(r"\1", self.local_part[1:-1])

    @property
    def is_ascii(self) -> bool:
        return self.local_part.isascii() and self.domain.isascii()

    @property
    def is_address_literal(self) -> bool:
        return self.domain.startswith("[")

    def localpart_base(self, delimiter: str = "+") -> str:
        """The local part without a ``+tag`` sub-address (``user+tag`` → ``user``).

        Only dot-string local parts are split; a quoted local part is returned as is, and
        so is a local part that starts with the delimiter.
        """
        if not delimiter or self.is_quoted:
            return self.local_part
        index = self.local_part.find(delimiter)
        if index <= 0:
            return self.local_part
        return self.local_part[:index]


def parse_address(
    text: str,
    *,
    allow_utf8: bool,
    max_local_part: int = MAX_LOCAL_PART,
    max_domain: int = MAX_DOMAIN,
) -> Address:
    """Parse ``local@domain`` (no angle brackets, no route) into an :class:`Address`."""
    if not allow_utf8 and not text.isascii():
        raise AddressUtf8Error("non-ASCII address needs SMTPUTF8")
    if not text.isascii():
        _check_printable(text)
    local, rest = _split_local(text, allow_utf8)
    if len(local.encode()) > max_local_part:
        raise AddressError("local part too long")
    domain = parse_domain(rest, allow_utf8=allow_utf8, allow_literal=True, max_length=max_domain)
    return Address(local, domain)


def parse_path(
    text: str,
    *,
    allow_utf8: bool,
    allow_null: bool,
    max_path: int = MAX_PATH,
    max_local_part: int = MAX_LOCAL_PART,
    max_domain: int = MAX_DOMAIN,
) -> Address | None:
    """Parse ``<[route:]mailbox>``; returns ``None`` for the null path ``<>`` if allowed."""
    if len(text) < 2 or text[0] != "<" or text[-1] != ">":
        raise AddressError("path must be enclosed in <>")
    if len(text.encode()) > max_path:
        raise AddressError("path too long")
    inner = text[1:-1]
    if not inner:
        if allow_null:
            return None
        raise AddressError("null path not allowed here")
    if inner[0] == "@":
        colon = inner.find(":")
        if colon < 0:
            raise AddressError("source route without mailbox")
        _check_route(inner[:colon], allow_utf8)
        inner = inner[colon + 1 :]
    return parse_address(
        inner, allow_utf8=allow_utf8, max_local_part=max_local_part, max_domain=max_domain
    )


def parse_domain(
    text: str, *, allow_utf8: bool, allow_literal: bool = False, max_length: int = MAX_DOMAIN
) -> str:
    """Validate a domain (or, if allowed, an address literal) and return its normal form."""
    if allow_literal and text.startswith("["):
        return _parse_literal(text)
    if not text:
        raise AddressError("missing domain")
    if len(text.encode()) > max_length:
        raise AddressError("domain too long")
    if text.isascii():
        for label in text.split("."):
            if not _LDH_LABEL.match(label):
                raise AddressError("invalid domain")
        return text.lower()
    if not allow_utf8:
        raise AddressUtf8Error("non-ASCII domain needs SMTPUTF8")
    for label in text.split("."):
        _check_ulabel(label)
    return unicodedata.normalize("NFC", text).lower()


def _split_local(text: str, allow_utf8: bool) -> tuple[str, str]:
    """Return (normal-form local part, domain text)."""
    if text.startswith('"'):
        match = (_QUOTED_UTF8 if allow_utf8 else _QUOTED_ASCII).match(text)
        if match is None:
            raise AddressError("invalid quoted local part")
        end = match.end()
        if text[end : end + 1] != "@":
            raise AddressError("missing @domain")
        value = _QUOTED_PAIR.sub(r"\1", match.group(1))
        return _quote_if_needed(value, allow_utf8), text[end + 1 :]
    at = text.find("@")
    if at < 0:
        raise AddressError("missing @domain")
    local = text[:at]
    if not (_DOT_STRING_UTF8 if allow_utf8 else _DOT_STRING_ASCII).match(local):
        raise AddressError("invalid local part")
    return local, text[at + 1 :]


def _quote_if_needed(value: str, allow_utf8: bool) -> str:
    if value and (_DOT_STRING_UTF8 if allow_utf8 else _DOT_STRING_ASCII).match(value):
        return value
    return '"' + _NEEDS_ESCAPE.sub(r"\\\1", value) + '"'


def _check_route(route: str, allow_utf8: bool) -> None:
    for hop in route.split(","):
        if not hop.startswith("@"):
            raise AddressError("invalid source route")
        parse_domain(hop[1:], allow_utf8=allow_utf8)


def _check_ulabel(label: str) -> None:
    if not label or len(label) > 63 or label[0] == "-" or label[-1] == "-":
        raise AddressError("invalid domain")
    for char in label:
        if char.isascii():
            if not (char.isalnum() or char == "-"):
                raise AddressError("invalid domain")
        elif unicodedata.category(char)[0] not in _ULABEL_CATEGORIES:
            raise AddressError("invalid domain")


def _check_printable(text: str) -> None:
    for char in text:
        if not char.isascii() and not char.isprintable():
            raise AddressError("non-printable character in address")


def _parse_literal(text: str) -> str:
    if not text.endswith("]"):
        raise AddressError("invalid address literal")
    body = text[1:-1]
    if body[:5].lower() == "ipv6:":
        raw = body[5:]
        if "%" in raw or not raw.isascii():
            raise AddressError("invalid IPv6 address literal")
        try:
            return f"[IPv6:{ipaddress.IPv6Address(raw).compressed}]"
        except ValueError:
            raise AddressError("invalid IPv6 address literal") from None
    if not body.isascii() or not body[:1].isdigit():
        raise AddressError("unsupported address literal")
    try:
        return f"[{ipaddress.IPv4Address(body)}]"
    except ValueError:
        raise AddressError("invalid IPv4 address literal") from None
