"""Configuration of the SMTP server engine: limits, line-ending policy, extensions."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from merpati.core.address import MAX_DOMAIN, MAX_LOCAL_PART, MAX_PATH

__all__ = ["DEFAULT_EXTENSIONS", "BareLineEndings", "Extension", "SmtpLimits", "ehlo_keywords"]


class BareLineEndings(enum.Enum):
    """What to do with a bare CR or LF inside a DATA body (SECURITY-CASES SMTP-01..05).

    Under both policies only ``CRLF.CRLF`` ends DATA, and a dot is unstuffed only at the
    start of a real (CRLF-terminated) line.
    """

    REJECT = "reject"  # keep reading to the real end, then DataEnd(BARE_LINE_ENDING)
    NORMALIZE = "normalize"  # emit bare CR / bare LF as CRLF


class Extension(enum.Enum):
    """Optional EHLO keywords. STARTTLS and AUTH follow tls_available/auth_allowed instead."""

    PIPELINING = "PIPELINING"  # RFC 2920
    SIZE = "SIZE"  # RFC 1870
    EIGHTBITMIME = "8BITMIME"  # RFC 6152
    SMTPUTF8 = "SMTPUTF8"  # RFC 6531
    ENHANCEDSTATUSCODES = "ENHANCEDSTATUSCODES"  # RFC 2034
    CHUNKING = "CHUNKING"  # RFC 3030
    BINARYMIME = "BINARYMIME"  # RFC 3030 (off by default: the queue must then relay binary)
    DSN = "DSN"  # RFC 3461

    __hash__ = object.__hash__  # see tables.State.__hash__: identity hash, C-level


DEFAULT_EXTENSIONS = frozenset(
    {
        Extension.PIPELINING,
        Extension.SIZE,
        Extension.EIGHTBITMIME,
        Extension.SMTPUTF8,
        Extension.ENHANCEDSTATUSCODES,
        Extension.CHUNKING,
        Extension.DSN,
    }
)


def ehlo_keywords(
    extensions: frozenset[Extension], *, message_size: int, starttls: bool, auth: tuple[str, ...]
) -> list[str]:
    """The EHLO reply lines after the greeting line, in a stable order (RFC 5321 §4.1.1.1)."""
    words = []
    for ext in Extension:
        if ext in extensions:
            words.append(f"SIZE {message_size}" if ext is Extension.SIZE else ext.value)
    if starttls:
        words.append("STARTTLS")  # RFC 3207 §4.2: never after TLS is active
    if auth:
        words.append("AUTH " + " ".join(auth))  # RFC 4954 §3
    return words


@dataclass(frozen=True, slots=True)
class SmtpLimits:
    """Every limit the engine enforces. Defaults follow Postfix and RFC 5321 §4.5.3."""

    max_line: int = 2048  # command line incl. CRLF; longer → 500 5.5.2, line discarded
    max_auth_line: int = 8192  # AUTH command and SASL response lines (Dovecot's cap)
    message_size: int = 52_428_800  # body octets; advertised as SIZE
    max_recipients: int = 1000  # accepted RCPTs per transaction; more → 452 4.5.3
    soft_error_limit: int = 10  # from here on error_delay_due() is True
    hard_error_limit: int = 20  # 421 4.7.0 and close
    max_junk_commands: int = 100  # NOOP/RSET/VRFY/HELP/EXPN beyond this count as errors
    max_local_part: int = MAX_LOCAL_PART
    max_domain: int = MAX_DOMAIN
    max_path: int = MAX_PATH
    max_bdat_digits: int = 20  # "BDAT <size>" with more digits → 501 + close

    def __post_init__(self) -> None:
        for name in self.__slots__:
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"SmtpLimits.{name} must be a positive integer")
        if self.max_line < 512 or self.max_auth_line < 512:
            raise ValueError("command line limits below 512 octets break RFC 5321 clients")
