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
  for anything that may succeed later (database down or locked): SMTP answers 451, never 550;
  ``OverQuota`` when a change would take an account over its quota (RFC 9208).
* Every write (deliver, append, copy, move, expunge, flags, mailbox changes, subscriptions,
  quota) is one transaction, durable when the call returns (SQLite ``synchronous=FULL``
  through the writer's group commit; PostgreSQL ``synchronous_commit=on``), and its events
  are published after that commit.
* Per-account usage (bytes and messages, for QUOTA) is kept in the same transaction as every
  change that adds or removes messages; nothing scans mailboxes to compute it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Protocol

from merpati.storage.changes import Change
from merpati.storage.models import (
    Account,
    Alias,
    AppendMessage,
    Delivery,
    FlagMode,
    Mailbox,
    MailboxStatus,
    MessageEnvelope,
    MessageMeta,
    QuotaUsage,
    SpecialUse,
)

if False:  # pragma: no cover - typing only, avoids importing mime at runtime here
    from merpati.mime import ParsedMessage
    from merpati.storage.search import Query, SortKey
    from merpati.storage.threads import ThreadNode, ThreadRow


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


class OverQuota(StoreError):
    """The change would take one or more accounts over their quota (RFC 9208); nothing was stored.

    ``account_ids`` names every account of the call that would have gone over (sorted), so an
    all-or-none ``deliver`` of a batch lets the caller tell which recipients are full: answer
    those (e.g. SMTP ``452 4.2.2`` or ``552 5.2.2``) and ``deliver`` again without them. IMAP
    answers ``NO [OVERQUOTA]``. A permanent condition until mail is removed or the quota raised.
    """

    def __init__(self, account_ids: Sequence[int], message: str | None = None) -> None:
        self.account_ids: tuple[int, ...] = tuple(sorted(set(account_ids)))
        super().__init__(message or f"over quota: account(s) {', '.join(map(str, self.account_ids))}")


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


class MaildropLock(Protocol):
    """An exclusive lock on one account's POP3 maildrop (RFC 1939 §8: one session at a time).

    Exclusive across every session of every process and node sharing the database: PostgreSQL
    uses a session-level advisory lock on a connection the store keeps for its locks (a dead or
    disconnected holder's lock is released by PostgreSQL); SQLite an exclusive ``flock`` on a
    per-account file beside the database (released by the kernel when the holder's process
    dies; two stores in one process exclude each other too). The holder must ``release()`` it
    (in a ``finally``, or ``async with lock:``); releasing twice is harmless.

    ``held`` turns False if the store learns the lock was lost (PostgreSQL: its connection
    dropped; another session may now hold it). A POP3 session may check it before its UPDATE
    state; expunging by UID stays safe either way.
    """

    account_id: int

    @property
    def held(self) -> bool: ...

    async def release(self) -> None: ...

    async def __aenter__(self) -> MaildropLock: ...

    async def __aexit__(self, *exc: object) -> None: ...


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
    # Names are UTF-8 with "/" as the hierarchy delimiter; "INBOX" is case-insensitive (and so is
    # an "INBOX/" prefix). Names longer than common.MAX_MAILBOX_NAME_BYTES are InvalidInput.
    async def list_mailboxes(self, account_id: int) -> list[Mailbox]: ...
    async def get_mailbox(self, account_id: int, name: str) -> Mailbox | None: ...  # "inbox" matches INBOX

    async def get_mailbox_by_id(self, mailbox_id: int) -> Mailbox | None:
        """The mailbox with that id (its current name, UIDNEXT, HIGHESTMODSEQ...), or None."""
        ...

    async def create_mailbox(
        self, account_id: int, name: str, *, special_use: SpecialUse | None = None
    ) -> Mailbox:
        """Create the mailbox and any missing superior ("a/b/c" creates "a" and "a/b" too,
        RFC 9051 §6.3.4); a new mailbox gets a UIDVALIDITY no mailbox ever had. Publishes
        MailboxChanged("created") for each mailbox created. AlreadyExists when the name exists;
        NotFound for an unknown account. A new mailbox is not subscribed (IMAP CREATE does not
        subscribe); the mailboxes created with an account are."""
        ...

    async def delete_mailbox(self, account_id: int, name: str) -> None:
        """Delete the mailbox and its messages (RFC 9051 §6.3.5). NotFound; InvalidInput for INBOX.

        Inferior mailboxes are NOT deleted and deleting a mailbox that has some is permitted
        (RFC 9051 §6.3.5 allows it for a selectable mailbox): its name then remains only as a
        superior of the children, without a mailbox (IMAP LIST shows it ``\\NonExistent`` /
        ``\\Noselect`` with ``\\HasChildren``), and ``create_mailbox`` may create it again
        (with a new UIDVALIDITY). Subscriptions are kept (RFC 9051 §6.3.7: the server must not
        remove them unilaterally). The account's quota usage drops by the mailbox's messages.
        Publishes MailboxChanged("deleted")."""
        ...

    async def rename_mailbox(self, account_id: int, old: str, new: str) -> Mailbox:
        """RENAME with RFC 9051 §6.3.6 semantics; returns the mailbox now named ``new``.

        * Inferiors are renamed too ("a" → "b" renames "a/x" to "b/x"); missing superiors of
          ``new`` are created ("a" → "x/y" creates "x"). Subscriptions of the renamed names
          follow them. A renamed mailbox keeps its id, UIDVALIDITY, UIDs and MODSEQs (a mailbox
          created later under the old name gets a new UIDVALIDITY, so no client confuses them).
        * Renaming INBOX creates ``new`` (new id and UIDVALIDITY) and moves every INBOX message
          into it (new UIDs there, flags kept), leaving INBOX empty with the same UIDVALIDITY
          and a UIDNEXT that never goes back; inferiors of INBOX are not renamed.
        * AlreadyExists when ``new`` (or a renamed inferior's new name) exists (INBOX always
          does); NotFound when ``old`` does not; InvalidInput for a mailbox under itself or a
          name the store refuses (empty level, too long, control characters).
        * Publishes MailboxChanged("renamed", name=new name) per renamed mailbox, ("created")
          for created superiors; for INBOX: MailboxChanged("created"), MessageAdded for the new
          mailbox and Expunged for INBOX."""
        ...

    async def mailbox_status(self, mailbox_id: int) -> MailboxStatus:
        """MESSAGES, UNSEEN, SIZE, DELETED (and UIDNEXT, UIDVALIDITY, HIGHESTMODSEQ through
        ``mailbox``) from one snapshot. NotFound."""
        ...

    # -- IMAP4rev1 \Recent: one watermark per mailbox, shared by every process and node --------
    async def claim_recent(self, mailbox_id: int, upto_uid: int) -> int:
        """Atomically raise the mailbox's recent watermark (the highest UID already handed out as
        ``\\Recent``) to ``upto_uid`` if it is lower (never above UIDNEXT - 1, the last UID given
        out), and return the PREVIOUS watermark: the caller's recent messages are its UIDs
        above that value and up to ``upto_uid``. Concurrent claims (any process or node) never
        get the same UID. Durable, survives restarts; no change-feed event. A new mailbox starts
        at 0. NotFound for an unknown mailbox; InvalidInput for a negative UID."""
        ...

    async def peek_recent(self, mailbox_id: int) -> int:
        """The mailbox's recent watermark without claiming (EXAMINE, STATUS RECENT): messages
        with a UID above it are still ``\\Recent`` for whoever selects it next. NotFound."""
        ...

    # -- subscriptions (RFC 9051 §6.3.7-8): names, not mailboxes ----------------------------------
    async def subscribe(self, account_id: int, name: str) -> None:
        """Add ``name`` to the account's subscriptions; the mailbox need not exist (RFC 9051
        allows it). Idempotent. InvalidInput for a bad name; NotFound for an unknown account.
        Publishes MailboxChanged("subscribed") when the list changed."""
        ...

    async def unsubscribe(self, account_id: int, name: str) -> None:
        """Remove ``name`` from the subscriptions (NotFound when it is not subscribed, as
        RFC 9051 §6.3.8 makes that an error). Publishes MailboxChanged("unsubscribed")."""
        ...

    async def list_subscriptions(self, account_id: int) -> list[str]:
        """Subscribed names, INBOX first then by name, including names of no mailbox."""
        ...

    # -- messages --------------------------------------------------------------------------
    async def deliver(self, deliveries: Sequence[Delivery]) -> list[MessageMeta]:
        """Commit every delivery durably and atomically (all or none); return their metadata in order.

        Quota is enforced: when any account of the batch would go over its quota, nothing is
        stored and ``OverQuota(account_ids)`` names every such account. Publishes MessageAdded."""
        ...

    async def append(
        self,
        mailbox_id: int,
        data: bytes,
        parsed: ParsedMessage,
        *,
        flags: frozenset[str] = frozenset(),
        internaldate: datetime,
    ) -> MessageMeta:
        """IMAP APPEND: store one message into that mailbox (by id), durable before return.

        NotFound when the mailbox does not exist (IMAP answers ``[TRYCREATE]``); OverQuota.
        The result's uid is APPENDUID's (RFC 4315). Publishes MessageAdded."""
        ...

    async def append_many(self, mailbox_id: int, messages: Sequence[AppendMessage]) -> list[MessageMeta]:
        """MULTIAPPEND (RFC 3502): store every message in order, atomically (all or none), one
        durable commit; consecutive UIDs in the order given. NotFound; OverQuota."""
        ...

    async def list_messages(
        self,
        mailbox_id: int,
        *,
        uid_min: int = 1,
        uid_max: int | None = None,
        changedsince: int | None = None,
    ) -> list[MessageMeta]:
        """Messages of the mailbox ordered by UID, within [uid_min, uid_max]; with
        ``changedsince``, only those whose MODSEQ is greater (CONDSTORE CHANGEDSINCE, QRESYNC).
        NotFound for an unknown mailbox."""
        ...

    async def expunged_since(
        self, mailbox_id: int, modseq: int, *, uid_min: int = 1, uid_max: int | None = None
    ) -> list[int]:
        """UIDs (ascending, within [uid_min, uid_max]) expunged from the mailbox (expunge, move,
        INBOX rename) by a change whose MODSEQ is greater than ``modseq``: QRESYNC's VANISHED
        (EARLIER). Every expunge takes a new MODSEQ, so HIGHESTMODSEQ grows with it. NotFound."""
        ...

    async def read_message(self, mailbox_id: int, uid: int) -> bytes: ...  # NotFound
    async def get_parsed(self, mailbox_id: int, uid: int) -> ParsedMessage: ...  # NotFound

    async def read_messages(self, mailbox_id: int, uids: Sequence[int]) -> dict[int, bytes]:
        """The bytes of several messages in one unit of work: {uid: data} for the UIDs that
        exist (missing ones are simply absent). The caller bounds memory by asking for a
        chunk at a time (e.g. a few hundred UIDs or a few MB)."""
        ...

    async def get_parsed_many(self, mailbox_id: int, uids: Sequence[int]) -> dict[int, ParsedMessage]:
        """The stored parses of several messages in one unit of work (FETCH ENVELOPE,
        BODYSTRUCTURE, sections): {uid: parsed}; missing UIDs are absent."""
        ...

    async def get_envelope(self, mailbox_id: int, uid: int) -> MessageEnvelope | None:
        """The SMTP envelope stored with the message by ``deliver`` (``Delivery.envelope``),
        exactly as given: sender, recipient and the RFC 3461 DSN parameters (ORCPT, NOTIFY,
        RET, ENVID) for the queue to honour later. None when the message has none (delivered
        without one, imported, appended, or stored before schema version 2). NotFound when
        there is no such message."""
        ...

    async def store_flags(
        self,
        mailbox_id: int,
        uids: Sequence[int],
        flags: frozenset[str],
        *,
        mode: FlagMode,
        unchangedsince: int | None = None,
    ) -> list[MessageMeta]:
        """Change flags; every message whose flags changed gets a new MODSEQ. Returns the changed ones.
        ``unchangedsince``: as ``store_flags_conditional``, without telling which messages failed."""
        ...

    async def store_flags_conditional(
        self, mailbox_id: int, uids: Sequence[int], flags: frozenset[str], *, mode: FlagMode, unchangedsince: int
    ) -> tuple[list[MessageMeta], list[int]]:
        """CONDSTORE's STORE (UNCHANGEDSINCE n), RFC 7162 §3.1.3: in one transaction, change the
        flags of the messages of ``uids`` whose MODSEQ is <= ``unchangedsince`` and leave the
        others alone. Returns (the changed messages, as ``store_flags``; the UIDs that failed
        the condition, ascending). A concurrent change between a client's read and this call
        makes the message fail instead of being overwritten. NotFound for a missing mailbox."""
        ...

    async def copy_messages(
        self, src_mailbox_id: int, uids: Sequence[int], dst_mailbox_id: int
    ) -> list[tuple[int, int]]:
        """IMAP COPY: copy the messages of ``uids`` that exist into the destination, atomically
        and durably. Returns [(source uid, new destination uid)] in ascending source-UID order
        (COPYUID, RFC 4315); the destination UIDs are consecutive and ascending. Copies keep
        flags, internal date and bytes; they get new MODSEQs and a new save date (\\Recent is
        never stored). Both mailboxes may be the same. NotFound for a missing mailbox;
        OverQuota when the destination's account would go over. Publishes MessageAdded."""
        ...

    async def move_messages(
        self, src_mailbox_id: int, uids: Sequence[int], dst_mailbox_id: int
    ) -> list[tuple[int, int]]:
        """IMAP MOVE (RFC 6851): copy and expunge in one transaction; same result as
        ``copy_messages``. The source records the expunge (``expunged_since``) with a new MODSEQ.
        Publishes MessageAdded for the destination, then Expunged for the source. Moving into
        the same mailbox is InvalidInput; OverQuota only across accounts."""
        ...

    async def expunge(self, mailbox_id: int, uids: Sequence[int]) -> list[int]:
        """Remove those messages in one durable transaction (IMAP EXPUNGE, POP3 UPDATE); return
        the UIDs actually removed. They take one new MODSEQ, recorded for ``expunged_since``;
        quota usage drops; Expunged is published after the commit."""
        ...

    # -- SEARCH, SORT, THREAD (storage.search: the query AST and its exact semantics) -----------
    async def search(self, mailbox_id: int, query: Query) -> list[int]:
        """UIDs of the mailbox's messages matching ``query``, ascending, answered by the
        database (BODY/TEXT through the full-text index). The session turns sequence numbers,
        ``$``, ``*`` and \\Recent into UID sets first. NotFound; InvalidInput for a malformed or
        oversized query (storage.search.validate)."""
        ...

    async def sort(self, mailbox_id: int, query: Query, keys: Sequence[SortKey]) -> list[int]:
        """UIDs matching ``query`` in RFC 5256 / RFC 5957 SORT order of ``keys`` (ties by UID)."""
        ...

    async def thread(self, mailbox_id: int, query: Query, algorithm: str) -> list[ThreadNode]:
        """RFC 5256 THREAD ("ORDEREDSUBJECT" or "REFERENCES") of the messages matching
        ``query``, as a forest of UIDs; ``storage.threads.format_threads`` renders it."""
        ...

    async def thread_data(self, mailbox_id: int, uids: Sequence[int]) -> list[ThreadRow]:
        """What threading needs of those messages (storage.threads.ThreadRow), by UID."""
        ...

    # -- quota (RFC 9208): one quota root per account ----------------------------------------
    async def get_quota(self, account_id: int) -> QuotaUsage:
        """The account's usage and limits (0: no limit). NotFound."""
        ...

    async def set_quota(self, account_id: int, *, bytes: int | None = None, messages: int | None = None) -> QuotaUsage:
        """Set the storage limit in bytes and/or the message-count limit (0 removes a limit;
        None leaves it). Lowering a limit below usage removes nothing: further additions are
        refused. InvalidInput for a negative value; NotFound."""
        ...

    # -- POP3 --------------------------------------------------------------------------------
    async def lock_maildrop(self, account_id: int) -> MaildropLock | None:
        """Take the account's maildrop lock, or None at once when another session holds it
        (POP3 ``-ERR [IN-USE]``). Never waits for the holder. See ``MaildropLock``."""
        ...
