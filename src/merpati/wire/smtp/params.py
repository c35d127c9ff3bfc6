"""ESMTP parameters of MAIL FROM and RCPT TO, and xtext (RFC 3461 §4).

ABNF (RFC 5321 §4.1.2)::

    Mail-parameters  = esmtp-param *(SP esmtp-param)
    esmtp-param      = esmtp-keyword ["=" esmtp-value]
    esmtp-keyword    = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-")
    esmtp-value      = 1*(%d33-60 / %d62-126)
    xtext            = *( xchar / hexchar )          ; RFC 3461 §4
    xchar            = %d33-42 / %d44-60 / %d62-126  ; not "+" and not "="
    hexchar          = "+" 2(%x30-39 / %x41-46)

Each keyword is one row of a table: which extension must have been advertised, and the
function that validates the value. Unknown keywords, keywords of extensions not offered,
bad values and duplicates raise :class:`SmtpReplyError` with 555 5.5.4.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any

from merpati.wire.smtp import replies as R
from merpati.wire.smtp.events import MailParams, RcptParams
from merpati.wire.smtp.limits import Extension
from merpati.wire.smtp.reply import SmtpReplyError

__all__ = ["parse_mail_params", "parse_rcpt_params", "xtext_decode", "xtext_encode"]

_KEYWORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*\Z")
_VALUE = re.compile(r"[\x21-\x3c\x3e-\x7e]+\Z")
_XTEXT = re.compile(r"(?:[\x21-\x2a\x2c-\x3c\x3e-\x7e]|\+[0-9A-Fa-f]{2})*\Z")
_HEXCHAR = re.compile(r"\+([0-9A-Fa-f]{2})")
_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+\Z")
_DIGITS = re.compile(r"[0-9]{1,20}\Z")
_BODY_EXTENSION = MappingProxyType(
    {"7BIT": None, "8BITMIME": Extension.EIGHTBITMIME, "BINARYMIME": Extension.BINARYMIME}
)
_NOTIFY_VALUES = frozenset({"SUCCESS", "FAILURE", "DELAY"})
MAX_ENVID = 100  # RFC 3461 §4.4
MAX_ORCPT = 500  # RFC 3461 §4.2 (xtext-encoded limit)


def xtext_decode(value: str) -> str:
    """Decode RFC 3461 xtext; the result must be printable ASCII."""
    if not _XTEXT.match(value):
        raise SmtpReplyError(R.PARAM_INVALID)
    decoded = _HEXCHAR.sub(lambda m: chr(int(m.group(1), 16)), value)
    if not decoded.isprintable() or not decoded.isascii():
        raise SmtpReplyError(R.PARAM_INVALID)
    return decoded


def xtext_encode(value: str) -> str:
    """Encode printable ASCII as xtext (used by our client and DSN code)."""
    return "".join(c if 33 <= ord(c) <= 126 and c not in "+=" else f"+{ord(c):02X}" for c in value)


def _size(value: str | None, offered: frozenset[Extension]) -> tuple[str, Any]:
    if value is None or not _DIGITS.match(value):
        raise SmtpReplyError(R.PARAM_INVALID)
    return "size", int(value)


def _body(value: str | None, offered: frozenset[Extension]) -> tuple[str, Any]:
    body = (value or "").upper()
    if body not in _BODY_EXTENSION:
        raise SmtpReplyError(R.PARAM_INVALID)
    needed = _BODY_EXTENSION[body]
    if needed is not None and needed not in offered:
        raise SmtpReplyError(R.PARAM_UNKNOWN)
    return "body", body


def _smtputf8(value: str | None, offered: frozenset[Extension]) -> tuple[str, Any]:
    if value is not None:
        raise SmtpReplyError(R.PARAM_INVALID)
    return "smtputf8", True


def _ret(value: str | None, offered: frozenset[Extension]) -> tuple[str, Any]:
    ret = (value or "").upper()
    if ret not in ("FULL", "HDRS"):
        raise SmtpReplyError(R.PARAM_INVALID)
    return "ret", ret


def _envid(value: str | None, offered: frozenset[Extension]) -> tuple[str, Any]:
    decoded = xtext_decode(value or "")
    if not decoded or len(decoded) > MAX_ENVID:
        raise SmtpReplyError(R.PARAM_INVALID)
    return "envid", decoded


def _auth(value: str | None, offered: frozenset[Extension]) -> tuple[str, Any]:
    decoded = xtext_decode(value or "")
    if not decoded:
        raise SmtpReplyError(R.PARAM_INVALID)
    return "auth", decoded


def _notify(value: str | None, offered: frozenset[Extension]) -> tuple[str, Any]:
    items = tuple((value or "").upper().split(","))
    if items == ("NEVER",):
        return "notify", items
    if not items or not set(items) <= _NOTIFY_VALUES or len(set(items)) != len(items):
        raise SmtpReplyError(R.PARAM_INVALID)
    return "notify", items


def _orcpt(value: str | None, offered: frozenset[Extension]) -> tuple[str, Any]:
    if value is None or len(value) > MAX_ORCPT:
        raise SmtpReplyError(R.PARAM_INVALID)
    addr_type, sep, address = value.partition(";")
    if not sep or not _ATOM.match(addr_type):
        raise SmtpReplyError(R.PARAM_INVALID)
    decoded = xtext_decode(address)
    if not decoded:
        raise SmtpReplyError(R.PARAM_INVALID)
    return "orcpt", f"{addr_type};{decoded}"


_Parser = Callable[[str | None, frozenset[Extension]], tuple[str, Any]]
# keyword → (extension that must have been advertised, or None = AUTH offered; parser)
_MAIL_TABLE: Mapping[str, tuple[Extension | None, _Parser]] = MappingProxyType(
    {
        "SIZE": (Extension.SIZE, _size),
        "BODY": (Extension.EIGHTBITMIME, _body),
        "SMTPUTF8": (Extension.SMTPUTF8, _smtputf8),
        "RET": (Extension.DSN, _ret),
        "ENVID": (Extension.DSN, _envid),
        "AUTH": (None, _auth),
    }
)
_RCPT_TABLE: Mapping[str, tuple[Extension | None, _Parser]] = MappingProxyType(
    {
        "NOTIFY": (Extension.DSN, _notify),
        "ORCPT": (Extension.DSN, _orcpt),
    }
)


def _parse(
    tokens: Iterable[bytes],
    table: Mapping[str, tuple[Extension | None, _Parser]],
    offered: frozenset[Extension],
    auth_offered: bool,
) -> dict[str, Any]:
    found: dict[str, Any] = {}
    seen: set[str] = set()
    for token in tokens:
        if not token:
            continue  # tolerate repeated spaces between parameters
        if not token.isascii():
            raise SmtpReplyError(R.PARAM_INVALID)
        text = token.decode("ascii")
        keyword, sep, raw_value = text.partition("=")
        value = raw_value if sep else None
        if not _KEYWORD.match(keyword) or (value is not None and not _VALUE.match(value)):
            raise SmtpReplyError(R.PARAM_INVALID)
        keyword = keyword.upper()
        row = table.get(keyword)
        if row is None:
            raise SmtpReplyError(R.PARAM_UNKNOWN)
        extension, parser = row
        if (extension is None and not auth_offered) or (extension is not None and extension not in offered):
            raise SmtpReplyError(R.PARAM_UNKNOWN)
        if keyword in seen:
            raise SmtpReplyError(R.PARAM_DUPLICATE)
        seen.add(keyword)
        name, parsed = parser(value, offered)
        found[name] = parsed
    return found


def parse_mail_params(
    tokens: Iterable[bytes], *, offered: frozenset[Extension], auth_offered: bool
) -> MailParams:
    """Parse MAIL FROM parameters against the extensions advertised in this session."""
    return MailParams(**_parse(tokens, _MAIL_TABLE, offered, auth_offered))


def parse_rcpt_params(tokens: Iterable[bytes], *, offered: frozenset[Extension]) -> RcptParams:
    """Parse RCPT TO parameters against the extensions advertised in this session."""
    return RcptParams(**_parse(tokens, _RCPT_TABLE, offered, False))
