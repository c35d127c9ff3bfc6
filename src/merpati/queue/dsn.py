"""Delivery status notifications (RFC 3464) for the outbound queue.

A DSN is ``multipart/report; report-type=delivery-status`` (RFC 6522) with three parts: a
human-readable explanation, a ``message/delivery-status`` part (per-message fields, then one
block per recipient) and the original message's header block (``text/rfc822-headers``), or the
whole original (``message/rfc822``) when the sender asked ``RET=FULL`` and it is not too big.

Rules (RFC 5321 §6.1, §4.5.5; RFC 3461 §4.1; SECURITY-CASES SMTP-28):

* never to the null reverse-path ``<>``, and never about a DSN (``kind == DSN``): a
  notification about a notification would loop;
* NOTIFY decides per recipient: ``NEVER`` suppresses everything; without ``FAILURE`` no
  failure report; delay warnings go to recipients with ``DELAY`` or without NOTIFY;
* every text that came from a remote server is made printable and bounded before it is
  written (SMTP-31: a diagnostic cannot inject a header line);
* the DSN itself is sent with ``MAIL FROM:<>``.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timezone

from merpati.storage.queue_api import MessageKind, NewMessage, NewRecipient, QueueMessage, QueueRecipient

MAX_DIAGNOSTIC = 900  # octets of one Diagnostic-Code field (RFC 5322 lines stay under 998)
MAX_FULL_RETURN = 1_000_000  # RET=FULL returns at most this much; headers only beyond

FAILED = "failed"
DELAYED = "delayed"


@dataclass(frozen=True, slots=True)
class DsnEntry:
    recipient: QueueRecipient
    action: str  # "failed" / "delayed"
    status: str  # "5.1.1"
    diagnostic: str  # "550 5.1.1 <bob@b.test>: User unknown" (what the remote said, or ours)
    remote: str | None = None  # the MX that answered
    diagnostic_type: str = "smtp"


def wants_report(recipient: QueueRecipient, action: str) -> bool:
    notify = tuple(n.upper() for n in recipient.notify) if recipient.notify is not None else None
    if notify is None:
        return True  # RFC 3461 §4.1: no NOTIFY means FAILURE (and DELAY at our discretion)
    if "NEVER" in notify:
        return False
    if action == FAILED:
        return "FAILURE" in notify
    return action == DELAYED and "DELAY" in notify


def may_notify(message: QueueMessage) -> bool:
    """Whether this message may cause a DSN at all (never to <>, never about a DSN)."""
    return bool(message.sender) and message.kind is not MessageKind.DSN


def _safe(text: str, limit: int = MAX_DIAGNOSTIC) -> str:
    out = "".join(c if (c.isprintable() and c not in "\r\n") else " " for c in text)
    return " ".join(out.split())[:limit]


def rfc5322_date(when: datetime) -> str:
    days = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
    months = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
    offset = when.utcoffset()
    minutes = int(offset.total_seconds()) // 60 if offset is not None else 0
    sign = "+" if minutes >= 0 else "-"
    minutes = abs(minutes)
    return (
        f"{days[when.weekday()]}, {when.day:02d} {months[when.month - 1]} {when.year:04d} "
        f"{when.hour:02d}:{when.minute:02d}:{when.second:02d} {sign}{minutes // 60:02d}{minutes % 60:02d}"
    )


def _date(ts: float) -> str:
    return rfc5322_date(datetime.fromtimestamp(ts, timezone.utc))


def header_block(data: bytes) -> bytes:
    """The original's header fields (without the empty separator line), CRLF line endings."""
    for sep in (b"\r\n\r\n", b"\n\n"):
        end = data.find(sep)
        if end >= 0:
            block = data[:end]
            break
    else:
        block = data
    block = block.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    return block + b"\r\n" if block else b""


def _human(action: str, entries: list[DsnEntry], hostname: str, until: float | None) -> str:
    lines = [f"This is the mail system at host {hostname}.", ""]
    if action == FAILED:
        lines += [
            "I'm sorry to have to inform you that your message could not",
            "be delivered to one or more recipients. It's attached below.",
            "",
            "The mail system",
            "",
        ]
    else:
        lines += [
            "####################################################################",
            "# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #",
            "####################################################################",
            "",
            "Your message could not be delivered yet. The mail system will keep",
            f"trying until {_date(until) if until else 'it expires'}.",
            "",
            "The mail system",
            "",
        ]
    for entry in entries:
        where = f" (host {_safe(entry.remote, 255)})" if entry.remote else ""
        lines.append(f"<{entry.recipient.address}>{where}: {_safe(entry.diagnostic)}")
    return "\r\n".join(lines) + "\r\n"


def _report_header(
    *, message: QueueMessage, action: str, hostname: str, now: float, dsn_id: str, boundary: str, eight_bit: bool
) -> str:
    """The DSN's own header fields and the MIME preamble (RFC 6522), up to the first boundary."""
    subject = "Undelivered Mail Returned to Sender" if action == FAILED else "Delayed Mail (still being retried)"
    head = [
        f"From: Mail Delivery System <MAILER-DAEMON@{hostname}>",
        f"To: <{message.sender}>",
        f"Subject: {subject}",
        f"Date: {_date(now)}",
        f"Message-ID: <{dsn_id}.dsn@{hostname}>",
        "Auto-Submitted: auto-replied",
        "MIME-Version: 1.0",
        f'Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary="{boundary}"',
        "Content-Transfer-Encoding: 8bit" if eight_bit else "Content-Transfer-Encoding: 7bit",
        "",
        "This is a MIME-encapsulated message.",
        "",
    ]
    return "\r\n".join(head)


def _per_message_fields(message: QueueMessage, hostname: str) -> list[str]:
    """The per-message block of ``message/delivery-status`` (RFC 3464 §2.2)."""
    fields = [
        f"Reporting-MTA: dns; {hostname}",
        f"X-Merpati-Queue-ID: {message.queue_id}",
    ]
    if message.envid:
        fields.append(f"Original-Envelope-Id: {_safe(message.envid, 100)}")
    fields.append(f"Arrival-Date: {_date(message.created)}")
    return fields


def _per_recipient_fields(entry: DsnEntry, now: float, retry_until: float | None) -> list[str]:
    """One recipient's block of ``message/delivery-status`` (RFC 3464 §2.3), ORCPT per RFC 3461."""
    rcpt = entry.recipient
    kind = "utf-8" if not rcpt.address.isascii() else "rfc822"
    fields = [f"Final-Recipient: {kind}; {rcpt.address}"]
    if rcpt.orcpt and ";" in rcpt.orcpt:
        otype, _, oaddr = rcpt.orcpt.partition(";")
        fields.append(f"Original-Recipient: {_safe(otype, 20)}; {_safe(oaddr, 300)}")
    fields.append(f"Action: {entry.action}")
    fields.append(f"Status: {entry.status}")
    if entry.remote:
        fields.append(f"Remote-MTA: dns; {_safe(entry.remote, 255)}")
    fields.append(f"Diagnostic-Code: {entry.diagnostic_type}; {_safe(entry.diagnostic)}")
    fields.append(f"Last-Attempt-Date: {_date(now)}")
    if entry.action == DELAYED and retry_until is not None:
        fields.append(f"Will-Retry-Until: {_date(retry_until)}")
    return fields


def _delivery_status(
    message: QueueMessage, entries: list[DsnEntry], hostname: str, now: float, retry_until: float | None
) -> str:
    """The ``message/delivery-status`` body: the per-message block, then one block per recipient."""
    fields = _per_message_fields(message, hostname)
    for entry in entries:
        fields.append("")
        fields += _per_recipient_fields(entry, now, retry_until)
    return "\r\n".join(fields) + "\r\n"


@dataclass(frozen=True, slots=True)
class _Returned:
    """What goes back of the original (RFC 3462 §2, RFC 3461 §4.3 RET)."""

    content: bytes
    content_type: str
    description: str


def _returned_content(message: QueueMessage, data: bytes) -> _Returned:
    """The whole original (CRLF) for ``RET=FULL`` within MAX_FULL_RETURN, else its header block."""
    if message.ret == "FULL" and len(data) <= MAX_FULL_RETURN:
        whole = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        return _Returned(whole, "message/rfc822", "Undelivered Message")
    return _Returned(header_block(data), "text/rfc822-headers", "Undelivered Message Headers")


def _mime_part(boundary: str, description: str, content_type: str, content: bytes) -> bytes:
    """One body part of the report: the boundary line, its two header fields, then ``content``."""
    head = f"\r\n--{boundary}\r\nContent-Description: {description}\r\nContent-Type: {content_type}\r\n\r\n"
    return head.encode("utf-8") + content


def compose(
    *,
    message: QueueMessage,
    data: bytes,
    entries: list[DsnEntry],
    hostname: str,
    now: float,
    retry_until: float | None = None,
    queue_id: str | None = None,
) -> NewMessage | None:
    """The DSN to enqueue for ``entries`` (all of one action), or None when none is due."""
    if not entries or not may_notify(message):
        return None
    action = entries[0].action
    entries = [e for e in entries if wants_report(e.recipient, e.action)]
    if not entries:
        return None
    boundary = f"{secrets.token_hex(8)}/{hostname}"
    dsn_id = queue_id or f"{message.queue_id}.{secrets.token_hex(4)}"
    utf8 = not message.sender.isascii() or any(not e.recipient.address.isascii() for e in entries)
    human = _human(action, entries, hostname, retry_until)
    status = _delivery_status(message, entries, hostname, now, retry_until)
    returned = _returned_content(message, data)
    parts = b"".join(
        (
            _mime_part(boundary, "Notification", "text/plain; charset=utf-8", human.encode("utf-8")),
            _mime_part(boundary, "Delivery report", "message/delivery-status", status.encode("utf-8")),
            _mime_part(boundary, returned.description, returned.content_type, returned.content),
            f"\r\n--{boundary}--\r\n".encode("utf-8"),
        )
    )
    # 8-bit returned content (or a non-ASCII host name) makes the whole report 8bit (RFC 2045 §6.4)
    eight_bit = utf8 or not parts.isascii()
    header = _report_header(
        message=message, action=action, hostname=hostname, now=now, dsn_id=dsn_id, boundary=boundary,
        eight_bit=eight_bit,
    )
    body = header.encode("utf-8") + parts
    return NewMessage(
        queue_id=dsn_id,
        sender="",
        recipients=[NewRecipient(message.sender)],
        data=body,
        smtputf8=utf8,
        body_type="8BITMIME" if eight_bit else None,
        kind=MessageKind.DSN,
    )
