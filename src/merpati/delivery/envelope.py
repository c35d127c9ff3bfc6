"""What an SMTP session knows about one transaction, handed to the delivery pipeline."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class ClientInfo:
    ip: str
    port: int
    helo: str = ""
    esmtp: bool = False
    tls: bool = False
    authenticated_as: str | None = None
    reverse_name: str | None = None  # verified reverse DNS name, when known


@dataclass(frozen=True, slots=True)
class LocalRecipient:
    """One mailbox a message is filed into, with the address the client gave for it."""

    account_id: int
    mailbox_address: str  # the account's address: what Delivered-To names
    rcpt: str  # the RCPT TO address as given (after source-route stripping)


@dataclass(slots=True)
class Envelope:
    client: ClientInfo
    sender: str  # "" for the null reverse-path <>
    smtputf8: bool = False
    body_type: str | None = None
    ret: str | None = None  # DSN RET (RFC 3461), stored for the queue
    envid: str | None = None
    recipients: list[LocalRecipient] = field(default_factory=list)
    rcpt_params: dict[str, dict[str, object]] = field(default_factory=dict)  # rcpt → DSN NOTIFY/ORCPT
    received_at: datetime | None = None
    forward: list[str] = field(default_factory=list)  # remote alias targets: go to the outbound queue
