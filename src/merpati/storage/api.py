"""The storage contract: one async ``MailStore`` protocol, implemented by every backend.

Theory of operation
-------------------
* Every method is ``async``. SQLite runs on worker threads (one thread hop per unit of work,
  never per statement); PostgreSQL uses asyncpg.
* ``deliver`` is the durability point behind SMTP's ``250``: when it returns, every message of
  the batch is committed durably (SQLite WAL with ``synchronous=FULL`` for that commit;
  PostgreSQL with ``synchronous_commit=on``), or none is. Concurrent ``deliver`` calls share
  commits (group commit) but never skip the fsync.
* UIDs in a mailbox only grow; UIDVALIDITY never changes for a mailbox's life; MODSEQ only grows
  (per mailbox, HIGHESTMODSEQ = the largest MODSEQ given out there).
* After a commit the store publishes ``Change`` events on ``changes`` (never before).
* Errors: ``NotFound`` and ``AlreadyExists`` for the caller's mistakes; ``TemporaryStoreError``
  for anything that may succeed later (database down or locked): SMTP answers 451, never 550.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Protocol

from merpati.storage.changes import Change
from merpati.storage.models import (
    Account,
    Alias,
    Delivery,
    FlagMode,
    Mailbox,
    MailboxStatus,
    MessageEnvelope,
    MessageMeta,
    SpecialUse,
)

if False:  # pragma: no cover - typing only, avoids importing mime at runtime here
    from merpati.mime import ParsedMessage


class StoreError(Exception):
    """Base of storage errors."""


class NotFound(StoreError):
    pass


class AlreadyExists(StoreError):
    pass


class TemporaryStoreError(StoreError):
    """The store cannot answer now (database unreachable, locked, disk full); retry later."""


class InvalidInput(StoreError, ValueError):
    """The caller passed something the store refuses to hold: a name with control characters
    or invalid UTF-8, a naive datetime, an empty alias, deleting INBOX. A permanent error."""


class FeedOverflow(StoreError):
    """Raised by a change-feed subscription that fell too far behind: events were dropped.

    The subscriber must resync its view from the store (e.g. re-read the mailbox) and may then
    keep iterating the same subscription, which carries on with the events after the overflow.
    """


class ChangeFeed(Protocol):
    """Committed changes, per account. In-process for one node; LISTEN/NOTIFY across nodes."""

    def subscribe(self, account_id: int) -> AsyncIterator[Change]:
        """Yield changes of that account from now on until the iterator is closed."""
        ...

    async def publish(self, changes: Sequence[Change]) -> None: ...


class MailStore(Protocol):
    changes: ChangeFeed

    async def close(self) -> None: ...

    # -- domains ------------------------------------------------------------------------
    async def add_domain(self, name: str) -> None: ...  # AlreadyExists
    async def remove_domain(self, name: str) -> None: ...  # NotFound; removes its accounts and aliases too
    async def list_domains(self) -> list[str]: ...
    async def has_domain(self, name: str) -> bool: ...

    # -- accounts (address "local@domain"; the domain must exist, else NotFound) -------------
    async def create_account(self, address: str, password_hash: str) -> Account:
        """Create the account with INBOX and the special-use mailboxes (models.DEFAULT_SPECIAL_MAILBOXES)."""
        ...

    async def delete_account(self, address: str) -> None: ...  # NotFound; deletes its mail
    async def get_account(self, address: str) -> Account | None: ...  # case-insensitive match
    async def get_account_by_id(self, account_id: int) -> Account | None: ...
    async def list_accounts(self, domain: str | None = None) -> list[Account]: ...
    async def set_password(self, address: str, password_hash: str) -> None: ...  # NotFound

    # -- aliases ("@domain" is the domain's catch-all) -----------------------------------
    async def add_alias(self, source: str, targets: Sequence[str]) -> Alias:
        """Add targets to the alias (creating it); the source's domain must exist."""
        ...

    async def remove_alias(self, source: str, targets: Sequence[str] = ()) -> None:
        """Remove the given targets, or the whole alias when none are given. NotFound."""
        ...

    async def get_alias(self, source: str) -> Alias | None: ...
    async def list_aliases(self, domain: str | None = None) -> list[Alias]: ...

    # -- mailboxes -------------------------------------------------------------------------
    async def list_mailboxes(self, account_id: int) -> list[Mailbox]: ...
    async def get_mailbox(self, account_id: int, name: str) -> Mailbox | None: ...  # "inbox" matches INBOX
    async def create_mailbox(
        self, account_id: int, name: str, *, special_use: SpecialUse | None = None
    ) -> Mailbox: ...  # AlreadyExists
    async def delete_mailbox(self, account_id: int, name: str) -> None: ...  # NotFound; not INBOX
    async def rename_mailbox(self, account_id: int, old: str, new: str) -> Mailbox: ...
    async def mailbox_status(self, mailbox_id: int) -> MailboxStatus: ...

    # -- messages --------------------------------------------------------------------------
    async def deliver(self, deliveries: Sequence[Delivery]) -> list[MessageMeta]:
        """Commit every delivery durably and atomically (all or none); return their metadata in order."""
        ...

    async def list_messages(
        self, mailbox_id: int, *, uid_min: int = 1, uid_max: int | None = None
    ) -> list[MessageMeta]: ...  # ordered by UID

    async def read_message(self, mailbox_id: int, uid: int) -> bytes: ...  # NotFound
    async def get_parsed(self, mailbox_id: int, uid: int) -> ParsedMessage: ...  # NotFound

    async def get_envelope(self, mailbox_id: int, uid: int) -> MessageEnvelope | None:
        """The SMTP envelope stored with the message by ``deliver`` (``Delivery.envelope``),
        exactly as given: sender, recipient and the RFC 3461 DSN parameters (ORCPT, NOTIFY,
        RET, ENVID) for the queue to honour later. None when the message has none (delivered
        without one, imported, appended, or stored before schema version 2). NotFound when
        there is no such message."""
        ...

    async def store_flags(
        self, mailbox_id: int, uids: Sequence[int], flags: frozenset[str], *, mode: FlagMode
    ) -> list[MessageMeta]:
        """Change flags; every message whose flags changed gets a new MODSEQ. Returns the changed ones."""
        ...

    async def expunge(self, mailbox_id: int, uids: Sequence[int]) -> list[int]:
        """Remove those messages durably; return the UIDs actually removed."""
        ...
