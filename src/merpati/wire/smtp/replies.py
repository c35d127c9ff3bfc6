"""Named replies: what sessions send (top half) and what the engine sends itself.

Use them as ``from merpati.wire.smtp import replies as R; srv.send(R.OK)``. Every one
carries its enhanced status code (RFC 3463) except where the RFCs say none belongs
(354, 334).
"""

from __future__ import annotations

from merpati.wire.smtp.codes import Code, Enhanced
from merpati.wire.smtp.reply import Reply


def ok_queued(queue_id: str) -> Reply:
    """``250 2.0.0 Ok: queued as <id>`` (the id is sanitised like any text)."""
    return Reply(Code.OK, Enhanced.OK, f"Ok: queued as {queue_id}")


def auth_challenge(b64: str) -> Reply:
    """``334 <base64 challenge>`` (RFC 4954 §4; no enhanced code)."""
    return Reply(Code.AUTH_CONTINUE, None, b64)


# --- replies a session sends -------------------------------------------------------------
OK = Reply(Code.OK, Enhanced.OK, "Ok")
SENDER_OK = Reply(Code.OK, Enhanced.SENDER_OK, "Ok")
RECIPIENT_OK = Reply(Code.OK, Enhanced.DESTINATION_OK, "Ok")
DATA_GO = Reply(Code.START_DATA, None, "End data with <CR><LF>.<CR><LF>")
BDAT_GO = Reply(Code.OK, Enhanced.OK, "Ok")  # accepting the first BDAT; never written
BYE = Reply(Code.CLOSING, Enhanced.OK, "Bye")
TLS_GO = Reply(Code.READY, Enhanced.OK, "Ready to start TLS")
TLS_UNAVAILABLE = Reply(Code.TLS_UNAVAILABLE, Enhanced.TEMP_SECURITY, "TLS not available")
AUTH_OK = Reply(Code.AUTH_SUCCEEDED, Enhanced.AUTH_OK, "Authentication successful")
AUTH_FAILED = Reply(Code.AUTH_FAILED, Enhanced.AUTH_FAILED, "Authentication failed")
AUTH_TEMP_FAIL = Reply(Code.TLS_UNAVAILABLE, Enhanced.TEMP_SECURITY, "Temporary authentication failure")
AUTH_REQUIRED = Reply(Code.AUTH_REQUIRED, Enhanced.SECURITY_OTHER, "Authentication required")
TLS_REQUIRED = Reply(Code.AUTH_REQUIRED, Enhanced.SECURITY_OTHER, "Must issue a STARTTLS command first")
REJECT_USER_UNKNOWN = Reply(
    Code.MAILBOX_UNAVAILABLE, Enhanced.BAD_DESTINATION_MAILBOX, "Recipient address rejected: User unknown"
)
RELAY_DENIED = Reply(Code.TRANSACTION_FAILED, Enhanced.RELAY_DENIED, "Relay access denied")
SENDER_REJECTED = Reply(Code.MAILBOX_UNAVAILABLE, Enhanced.RELAY_DENIED, "Sender address rejected")
TOO_MANY_RCPTS = Reply(Code.INSUFFICIENT_STORAGE, Enhanced.TEMP_TOO_MANY_RCPTS, "Too many recipients")
TEMP_FAIL = Reply(Code.LOCAL_ERROR, Enhanced.TEMP_SYSTEM, "Temporary failure, please try again later")
TOO_BIG = Reply(Code.EXCEEDED_STORAGE, Enhanced.MESSAGE_TOO_BIG, "Message size exceeds fixed limit")
BARE_LF = Reply(Code.MAILBOX_UNAVAILABLE, Enhanced.SYNTAX_ERROR, "Error: bare <CR> or <LF> received")
LOOP = Reply(Code.TRANSACTION_FAILED, Enhanced.LOOP, "Too many hops")
NO_VALID_RECIPIENTS = Reply(Code.TRANSACTION_FAILED, Enhanced.BAD_SEQUENCE, "No valid recipients")
SERVICE_UNAVAILABLE = Reply(Code.UNAVAILABLE, Enhanced.TEMP_SYSTEM, "Service not available, closing channel")

# --- replies the engine writes by itself -------------------------------------------------
HELP = Reply(
    Code.HELP,
    Enhanced.OK,
    "Commands: HELO EHLO MAIL RCPT DATA BDAT RSET NOOP QUIT HELP VRFY STARTTLS AUTH",
)
VRFY_CANNOT = Reply(
    Code.CANNOT_VRFY,
    Enhanced.VRFY_CANNOT,
    "Cannot VRFY user, but will accept message and attempt delivery",
)
EXPN_DISABLED = Reply(Code.NOT_IMPLEMENTED, Enhanced.BAD_SEQUENCE, "EXPN not available")
UNKNOWN_COMMAND = Reply(Code.SYNTAX_ERROR, Enhanced.SYNTAX_ERROR, "Error: command not recognized")
LINE_TOO_LONG = Reply(Code.SYNTAX_ERROR, Enhanced.SYNTAX_ERROR, "Error: line too long")
BARE_LF_COMMAND = Reply(
    Code.SYNTAX_ERROR, Enhanced.SYNTAX_ERROR, "Error: bare <CR> or <LF> in command line"
)
NUL_COMMAND = Reply(Code.SYNTAX_ERROR, Enhanced.SYNTAX_ERROR, "Error: NUL character in command line")
BAD_UTF8 = Reply(Code.ARGUMENT_ERROR, Enhanced.SYNTAX_ERROR, "Error: invalid UTF-8 in command line")
SYNC_ERROR = Reply(
    Code.TRANSACTION_FAILED, Enhanced.PROTOCOL_OTHER, "Error: SMTP protocol synchronization"
)
TOO_MANY_ERRORS = Reply(Code.UNAVAILABLE, Enhanced.TEMP_SECURITY, "Error: too many errors")
NEED_EHLO = Reply(Code.BAD_SEQUENCE, Enhanced.BAD_SEQUENCE, "Error: send EHLO first")
NO_ARGUMENTS = Reply(Code.ARGUMENT_ERROR, Enhanced.BAD_ARGUMENTS, "Syntax error: no arguments allowed")
TLS_ALREADY = Reply(Code.BAD_SEQUENCE, Enhanced.BAD_SEQUENCE, "Error: TLS already active")
TLS_NOT_OFFERED = Reply(Code.NOT_IMPLEMENTED, Enhanced.BAD_SEQUENCE, "Error: STARTTLS not available")
AUTH_ABORTED = Reply(Code.ARGUMENT_ERROR, Enhanced.PERM_OTHER, "Authentication aborted")
AUTH_ALREADY = Reply(Code.BAD_SEQUENCE, Enhanced.BAD_SEQUENCE, "Error: already authenticated")
AUTH_NOT_ENABLED = Reply(Code.BAD_SEQUENCE, Enhanced.BAD_SEQUENCE, "Error: authentication not enabled")
AUTH_NEEDS_TLS = Reply(
    Code.ENCRYPTION_REQUIRED,
    Enhanced.ENCRYPTION_REQUIRED,
    "Encryption required for requested authentication mechanism",
)
AUTH_BAD_MECHANISM = Reply(
    Code.PARAMETER_NOT_IMPLEMENTED, Enhanced.BAD_ARGUMENTS, "Unrecognized authentication type"
)
AUTH_BAD_BASE64 = Reply(Code.ARGUMENT_ERROR, Enhanced.SYNTAX_ERROR, "Invalid base64 data")
AUTH_LINE_TOO_LONG = Reply(
    Code.SYNTAX_ERROR, Enhanced.AUTH_LINE_TOO_LONG, "Authentication exchange line is too long"
)
AUTH_SYNTAX = Reply(Code.ARGUMENT_ERROR, Enhanced.BAD_ARGUMENTS, "Syntax: AUTH mechanism [initial-response]")
HELO_SYNTAX = Reply(Code.ARGUMENT_ERROR, Enhanced.BAD_ARGUMENTS, "Syntax: EHLO hostname")
MAIL_SYNTAX = Reply(Code.ARGUMENT_ERROR, Enhanced.BAD_ARGUMENTS, "Syntax: MAIL FROM:<address>")
RCPT_SYNTAX = Reply(Code.ARGUMENT_ERROR, Enhanced.BAD_ARGUMENTS, "Syntax: RCPT TO:<address>")
BDAT_SYNTAX = Reply(Code.ARGUMENT_ERROR, Enhanced.BAD_ARGUMENTS, "Syntax: BDAT size [LAST]")
VRFY_SYNTAX = Reply(Code.ARGUMENT_ERROR, Enhanced.BAD_ARGUMENTS, "Syntax: VRFY address")
BAD_SENDER = Reply(Code.ARGUMENT_ERROR, Enhanced.BAD_SENDER_SYNTAX, "Bad sender address syntax")
BAD_RECIPIENT = Reply(Code.ARGUMENT_ERROR, Enhanced.BAD_DESTINATION_SYNTAX, "Bad recipient address syntax")
UTF8_NOT_PERMITTED = Reply(
    Code.MAILBOX_NAME_INVALID,
    Enhanced.NON_ASCII_NOT_PERMITTED,
    "Non-ASCII address requires the SMTPUTF8 parameter",
)
BINARYMIME_NEEDS_BDAT = Reply(
    Code.BAD_SEQUENCE, Enhanced.BAD_SEQUENCE, "Error: BODY=BINARYMIME requires BDAT"
)
BDAT_NOT_OFFERED = Reply(Code.BAD_SEQUENCE, Enhanced.BAD_SEQUENCE, "Error: CHUNKING not negotiated")
PARAM_UNKNOWN = Reply(Code.PARAMS_NOT_RECOGNIZED, Enhanced.BAD_ARGUMENTS, "Unsupported parameter")
PARAM_INVALID = Reply(Code.PARAMS_NOT_RECOGNIZED, Enhanced.BAD_ARGUMENTS, "Invalid parameter value")
PARAM_DUPLICATE = Reply(Code.PARAMS_NOT_RECOGNIZED, Enhanced.BAD_ARGUMENTS, "Duplicate parameter")
