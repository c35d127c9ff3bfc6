"""SMTP reply codes (RFC 5321 §4.2) and enhanced status codes (RFC 3463, RFC 5248).

Every reply the engine writes takes its numbers from here; nothing else spells a code.
"""

from __future__ import annotations

import enum

__all__ = ["Code", "Enhanced"]


class Code(enum.IntEnum):
    """Basic reply codes, RFC 5321 §4.2.2/§4.2.3 unless noted."""

    HELP = 214
    READY = 220
    CLOSING = 221
    AUTH_SUCCEEDED = 235  # RFC 4954 §6
    OK = 250
    CANNOT_VRFY = 252
    AUTH_CONTINUE = 334  # RFC 4954 §4
    START_DATA = 354
    UNAVAILABLE = 421
    MAILBOX_BUSY = 450
    LOCAL_ERROR = 451
    INSUFFICIENT_STORAGE = 452
    TLS_UNAVAILABLE = 454  # RFC 3207 §4; also "temporary authentication failure" RFC 4954
    PARAMS_UNAVAILABLE = 455
    SYNTAX_ERROR = 500
    ARGUMENT_ERROR = 501
    NOT_IMPLEMENTED = 502
    BAD_SEQUENCE = 503
    PARAMETER_NOT_IMPLEMENTED = 504
    AUTH_REQUIRED = 530  # RFC 4954 §6
    AUTH_FAILED = 535  # RFC 4954 §6
    ENCRYPTION_REQUIRED = 538  # RFC 4954 §6
    MAILBOX_UNAVAILABLE = 550
    USER_NOT_LOCAL = 551
    EXCEEDED_STORAGE = 552
    MAILBOX_NAME_INVALID = 553
    TRANSACTION_FAILED = 554
    PARAMS_NOT_RECOGNIZED = 555


class Enhanced(enum.StrEnum):
    """Enhanced status codes (RFC 3463 §3; registry RFC 5248), ``class.subject.detail``."""

    OK = "2.0.0"
    SENDER_OK = "2.1.0"
    DESTINATION_OK = "2.1.5"
    VRFY_CANNOT = "2.5.0"  # "other or undefined protocol status", RFC 5321 §3.5.3
    AUTH_OK = "2.7.0"
    TEMP_OTHER = "4.0.0"
    TEMP_SYSTEM = "4.3.0"
    TEMP_TOO_MANY_RCPTS = "4.5.3"
    TEMP_SECURITY = "4.7.0"
    PERM_OTHER = "5.0.0"
    BAD_DESTINATION_MAILBOX = "5.1.1"
    BAD_DESTINATION_SYNTAX = "5.1.3"
    BAD_SENDER_SYNTAX = "5.1.7"
    MAILBOX_FULL = "5.2.2"
    MESSAGE_TOO_BIG = "5.3.4"
    LOOP = "5.4.6"
    PROTOCOL_OTHER = "5.5.0"
    BAD_SEQUENCE = "5.5.1"
    SYNTAX_ERROR = "5.5.2"
    BAD_ARGUMENTS = "5.5.4"
    AUTH_LINE_TOO_LONG = "5.5.6"
    NON_ASCII_NOT_PERMITTED = "5.6.7"  # RFC 6531 §3.7.4.1
    SECURITY_OTHER = "5.7.0"
    RELAY_DENIED = "5.7.1"
    AUTH_FAILED = "5.7.8"  # RFC 4954 §6
    ENCRYPTION_REQUIRED = "5.7.11"  # RFC 5248 / RFC 4954 §6 538
