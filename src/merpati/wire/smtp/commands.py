"""Argument grammars of the SMTP commands: bytes of one command line in, values out.

Pure functions; every failure raises :class:`SmtpReplyError` carrying the reply to send.
"""

from __future__ import annotations

import binascii
import re

from merpati.core.address import Address, AddressError, AddressUtf8Error, parse_path
from merpati.wire.smtp import replies as R
from merpati.wire.smtp.events import MailFrom, MailParams, RcptParams, RcptTo
from merpati.wire.smtp.limits import Extension, SmtpLimits
from merpati.wire.smtp.params import parse_mail_params, parse_rcpt_params
from merpati.wire.smtp.reply import Reply, SmtpReplyError

__all__ = ["b64decode", "parse_auth", "parse_bdat", "parse_mail", "parse_rcpt", "split_path"]

# Path = "<" ... ">" where ">" may appear inside a quoted local part.
_PATH = re.compile(rb'<(?:[^"\\>]|"(?:[^"\\\r\n]|\\[^\r\n])*")*>')
_POSTMASTER = b"<POSTMASTER>"

# Fast path for the usual path: ``<dot-atom@ldh-domain>`` in ASCII with no parameters. It
# spells the same grammar as merpati.core.address (atext local part, LDH labels), so what
# it accepts the full parser accepts with the same Address; anything else (parameters,
# quoting, routes, literals, UTF-8, <Postmaster>, <>) takes the full path. Why: MAIL and
# RCPT run once per message, and the full path costs several regexes and calls.
_ATEXT = rb"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = rb"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_PLAIN_PATH = re.compile(rb"<(" + _ATEXT + rb"(?:\." + _ATEXT + rb")*)@(" + _LABEL + rb"(?:\." + _LABEL + rb")*)>\Z")
_NO_MAIL_PARAMS = MailParams()  # frozen: shared by every MAIL without parameters
_NO_RCPT_PARAMS = RcptParams()


def _plain_path(arg: bytes, start: int, limits: SmtpLimits) -> Address | None:
    """The Address of a plain ``<local@domain>`` from ``start`` to the end, or None."""
    match = _PLAIN_PATH.match(arg, start)
    if (
        match is None
        or len(arg) - start > limits.max_path
        or match.end(1) - match.start(1) > limits.max_local_part
        or match.end(2) - match.start(2) > limits.max_domain
    ):
        return None
    return Address(match[1].decode("ascii"), match[2].decode("ascii").lower())


def split_path(rest: bytes, syntax: Reply) -> tuple[bytes, list[bytes]]:
    """Split ``<path>[ params]``. Strict: no space after the colon (RFC 5321 §3.3)."""
    match = _PATH.match(rest)
    if match is None:
        raise SmtpReplyError(syntax)
    after = rest[match.end() :]
    if not after:
        return match.group(0), []
    if after[:1] != b" ":
        raise SmtpReplyError(syntax)
    return match.group(0), after[1:].split(b" ")


def decode_path(
    path: bytes, *, allow_utf8: bool, null: bool, bad: Reply, limits: SmtpLimits
) -> Address | None:
    """Bytes of ``<...>`` → Address (None for ``<>`` when ``null``)."""
    if path.isascii():
        text = path.decode("ascii")
    elif not allow_utf8:
        raise SmtpReplyError(R.UTF8_NOT_PERMITTED)  # RFC 6531 §3.7.4.1
    else:
        try:
            text = path.decode("utf-8")
        except UnicodeDecodeError:
            raise SmtpReplyError(bad) from None
    try:
        return parse_path(
            text,
            allow_utf8=allow_utf8,
            allow_null=null,
            max_path=limits.max_path,
            max_local_part=limits.max_local_part,
            max_domain=limits.max_domain,
        )
    except AddressUtf8Error:
        raise SmtpReplyError(R.UTF8_NOT_PERMITTED) from None
    except AddressError:
        raise SmtpReplyError(bad) from None


def parse_mail(
    arg: bytes, *, offered: frozenset[Extension], auth_offered: bool, limits: SmtpLimits
) -> MailFrom:
    """RFC 5321 §4.1.1.2: ``"MAIL FROM:" Reverse-path [SP Mail-parameters]``."""
    if arg[:5].upper() != b"FROM:":
        raise SmtpReplyError(R.MAIL_SYNTAX)
    plain = _plain_path(arg, 5, limits)
    if plain is not None:
        return MailFrom(plain, _NO_MAIL_PARAMS)
    path, tokens = split_path(arg[5:], R.MAIL_SYNTAX)
    params = parse_mail_params(tokens, offered=offered, auth_offered=auth_offered)
    sender = decode_path(path, allow_utf8=params.smtputf8, null=True, bad=R.BAD_SENDER, limits=limits)
    if params.size is not None and params.size > limits.message_size:
        raise SmtpReplyError(R.TOO_BIG)  # RFC 1870 §6.1
    return MailFrom(sender, params)


def parse_rcpt(
    arg: bytes, *, offered: frozenset[Extension], smtputf8: bool, limits: SmtpLimits
) -> RcptTo:
    """RFC 5321 §4.1.1.3: ``"RCPT TO:" ( "<Postmaster@" Domain ">" / "<Postmaster>" /
    Forward-path ) [SP Rcpt-parameters]``."""
    if arg[:3].upper() != b"TO:":
        raise SmtpReplyError(R.RCPT_SYNTAX)
    plain = _plain_path(arg, 3, limits)
    if plain is not None:
        return RcptTo(plain, _NO_RCPT_PARAMS)
    path, tokens = split_path(arg[3:], R.RCPT_SYNTAX)
    params = parse_rcpt_params(tokens, offered=offered)
    if path.upper() == _POSTMASTER:
        return RcptTo(Address("Postmaster", ""), params)
    recipient = decode_path(path, allow_utf8=smtputf8, null=False, bad=R.BAD_RECIPIENT, limits=limits)
    assert recipient is not None
    return RcptTo(recipient, params)


def parse_bdat(arg: bytes, limits: SmtpLimits) -> tuple[int, bool] | None:
    """RFC 3030 §2: ``"BDAT" SP chunk-size [SP end-marker]`` → (size, last); None if bad."""
    parts = arg.split(b" ")
    size_text = parts[0]
    if (
        len(parts) > 2
        or not size_text.isdigit()
        or len(size_text) > limits.max_bdat_digits
        or (len(parts) == 2 and parts[1].upper() != b"LAST")
    ):
        return None
    return int(size_text), len(parts) == 2


def parse_auth(arg: bytes, mechanisms: tuple[str, ...]) -> tuple[str, bytes | None]:
    """RFC 4954 §4: ``"AUTH" SP sasl-mech [SP initial-response]`` → (mech, decoded IR)."""
    parts = arg.split(b" ")
    if not parts[0] or len(parts) > 2 or (len(parts) == 2 and not parts[1]):
        raise SmtpReplyError(R.AUTH_SYNTAX)
    mechanism = parts[0].upper().decode("ascii", "replace")
    if mechanism not in mechanisms:
        raise SmtpReplyError(R.AUTH_BAD_MECHANISM)
    if len(parts) == 1:
        return mechanism, None
    initial = b64decode(parts[1], initial=True)
    if initial is None:
        raise SmtpReplyError(R.AUTH_BAD_BASE64)
    return mechanism, initial


def b64decode(data: bytes, *, initial: bool) -> bytes | None:
    """RFC 4954 §4 base64 (strict); ``=`` is an empty response. None if invalid."""
    if data == b"=" or (not initial and not data):
        return b""
    try:
        return binascii.a2b_base64(data, strict_mode=True)
    except (binascii.Error, ValueError):
        return None
