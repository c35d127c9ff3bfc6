"""The outbound queue's storage contract: ``QueueStore``, its models, and the DKIM key table.

Theory of operation
-------------------
* A queued **message** holds the bytes once, the envelope sender and the RFC 3461 parameters
  (ENVID, RET). Its recipients are grouped per destination domain into **items**: an item is
  the unit of scheduling and of claiming (one SMTP transaction to one destination).
* ``enqueue`` is the durability point behind the submission ``250``: when it returns, the
  message and all its recipients are committed durably (SQLite ``synchronous=FULL``;
  PostgreSQL ``synchronous_commit=on``).
* **Claims.** ``claim(owner, now, lease, limit)`` hands out due items whose lease is free or
  expired and sets ``lease_owner``/``lease_until`` in the same transaction (PostgreSQL:
  ``FOR UPDATE SKIP LOCKED``; SQLite: one ``BEGIN IMMEDIATE`` writer, which serialises
  processes too). An item is held by at most one live owner; when a node dies its leases
  expire and another node takes the items over. The owner renews its leases while an
  attempt runs (``renew``).
* **Fencing.** ``record_attempt`` applies the outcome of one attempt only if the caller
  still holds the lease; it updates the recipients, schedules the next attempt (or finishes
  the item), releases the lease, and enqueues the notifications (DSNs) of that outcome, all
  in one transaction. A message disappears once none of its recipients is pending.
* **Fairness.** A claim takes up to half its ``limit`` (at least one) from items never
  attempted (``attempts = 0``, oldest first), then the rest by due time: new mail is not
  starved behind a backlog of retries that fell due before it (SECURITY-CASES STORE-08).
* **Corrupt entries** (SECURITY-CASES STORE-09). Stored rows are untrusted input: ``claim``
  reads each item's rows, and an item whose rows cannot be read or break the rules of
  ``queue_entries.entry_problem`` (an invalid or CR/LF-carrying address, an unknown state or kind, a size
  that is not the data's length, empty data, RET/BODY/NOTIFY outside their sets...) is not
  handed out but **quarantined** in the same transaction: leased to ``QUARANTINE_OWNER``
  until year 9999 (never due again, no migration needed), the reason in the ``last_text``
  of its pending recipients. ``claim`` logs each one at warning level. ``get`` and ``list``
  read corrupt rows leniently (for ``merpati queue list/show``); ``delete`` removes them.
* Times are seconds since the epoch (floats) given by the caller's clock, so the schedule is
  testable with a fake clock; the store keeps integer milliseconds.
* Errors: ``NotFound`` for an unknown queue id; ``TemporaryStoreError`` when the database is
  unavailable (the runner retries later; submission answers 451).
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol


class RecipientState(str, enum.Enum):
    QUEUED = "queued"  # waiting for (another) attempt
    DELIVERED = "delivered"  # the next hop accepted it
    FAILED = "failed"  # permanent failure, or expired: a DSN was (or is not) due
    # Never stored by Merpati: what ``get`` shows for a stored state that is none of the above
    # (a corrupt row; its item is quarantined when claimed).
    CORRUPT = "corrupt"


class Outcome(str, enum.Enum):
    """What one attempt did for one recipient."""

    DELIVERED = "delivered"
    DEFERRED = "deferred"  # temporary failure: retry on the schedule
    FAILED = "failed"  # permanent failure


class MessageKind(str, enum.Enum):
    MAIL = "mail"
    DSN = "dsn"  # a delivery status notification: never itself the subject of a DSN


@dataclass(frozen=True, slots=True)
class NewRecipient:
    address: str
    notify: tuple[str, ...] | None = None  # RFC 3461 NOTIFY (None: not given)
    orcpt: str | None = None  # RFC 3461 ORCPT, "rfc822;addr"


@dataclass(frozen=True, slots=True)
class NewMessage:
    """What ``enqueue`` stores. ``queue_id`` is the caller's (unique) id, shown by the CLI."""

    queue_id: str
    sender: str  # "" is the null reverse-path
    recipients: Sequence[NewRecipient]
    data: bytes
    envid: str | None = None
    ret: str | None = None  # "FULL" / "HDRS"
    smtputf8: bool = False
    body_type: str | None = None  # "8BITMIME", "7BIT"
    kind: MessageKind = MessageKind.MAIL
    origin: str = ""  # who submitted it (account address), or "" for relayed mail


@dataclass(frozen=True, slots=True)
class QueueRecipient:
    id: int
    address: str
    domain: str
    state: RecipientState
    notify: tuple[str, ...] | None = None
    orcpt: str | None = None
    last_code: int | None = None
    last_status: str | None = None  # enhanced status code, "4.4.1"
    last_text: str | None = None  # diagnostic (what the remote said, or why we gave up)
    remote: str | None = None  # the host that answered
    warned: bool = False  # a delay warning was sent


@dataclass(frozen=True, slots=True)
class QueueItem:
    id: int
    domain: str
    attempts: int
    next_attempt: float
    lease_owner: str | None
    lease_until: float

    @property
    def quarantined(self) -> bool:
        return self.lease_owner == QUARANTINE_OWNER


@dataclass(frozen=True, slots=True)
class QueueMessage:
    id: int
    queue_id: str
    sender: str
    created: float
    size: int
    kind: MessageKind
    origin: str
    envid: str | None
    ret: str | None
    smtputf8: bool
    body_type: str | None
    recipients: tuple[QueueRecipient, ...] = ()
    items: tuple[QueueItem, ...] = ()


@dataclass(frozen=True, slots=True)
class Claim:
    """One item handed to one owner: deliver ``recipients`` of ``message`` to ``item.domain``."""

    item: QueueItem
    message: QueueMessage
    recipients: tuple[QueueRecipient, ...]  # the item's pending recipients
    data: bytes


@dataclass(frozen=True, slots=True)
class RecipientResult:
    recipient_id: int
    outcome: Outcome
    code: int | None = None
    status: str | None = None
    text: str | None = None
    remote: str | None = None
    warned: bool = False  # a delay warning for it is part of this record


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """The outcome of one attempt on one claimed item, applied atomically."""

    item_id: int
    results: Sequence[RecipientResult]
    next_attempt: float | None  # None: nothing left to retry (every recipient is final)
    notifications: Sequence[NewMessage] = ()  # DSNs to enqueue in the same transaction
    count_attempt: bool = True


@dataclass(frozen=True, slots=True)
class DkimKey:
    domain: str
    selector: str
    algorithm: str  # "rsa-sha256" / "ed25519-sha256"
    private_key: str  # PEM (PKCS#8)
    public_key: str  # base64 for the p= tag of the TXT record
    created: float
    active: bool = True


@dataclass(frozen=True, slots=True)
class QueueSummary:
    queue_id: str
    sender: str
    created: float
    size: int
    kind: MessageKind
    pending: int  # recipients still queued
    next_attempt: float | None
    last_text: str | None
    domains: tuple[str, ...] = field(default=())
    quarantined: bool = False  # an item of it is quarantined as corrupt (STORE-09)


class LocalRunner(Protocol):
    """What ``OpsQueueStore`` needs from this process's queue runner to hand it new mail directly."""

    owner: str

    def lease_seconds(self) -> float: ...

    def has_capacity(self) -> bool: ...

    def accept(self, claims: list[Claim]) -> None: ...


class QueueStore(Protocol):
    """The outbound queue in the shared database. See the module docstring for the contract."""

    def on_enqueue(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (on the loop) after every committed enqueue in this process."""
        ...

    def attach_runner(self, runner: LocalRunner) -> None:
        """New mail enqueued in this process goes to ``runner`` already leased (no claim round)
        while it has capacity; otherwise it waits in the queue like any other."""
        ...

    async def enqueue(self, message: NewMessage, *, now: float) -> str:
        """Store the message durably with one item per recipient domain, due ``now``."""
        ...

    async def claim(self, owner: str, *, now: float, lease: float, limit: int) -> list[Claim]:
        """Up to ``limit`` due items not leased by a live owner, leased to ``owner`` until now+lease."""
        ...

    async def renew(self, owner: str, item_ids: Sequence[int], *, until: float) -> list[int]:
        """Extend the leases ``owner`` still holds; returns the ids actually renewed."""
        ...

    async def release(self, owner: str, item_ids: Sequence[int]) -> None:
        """Give leases back without an attempt (shutdown): the items are due again at once."""
        ...

    async def release_all(self, owner: str) -> int:
        """Give back every lease of ``owner`` (a restarted node whose owner id is stable)."""
        ...

    async def record_attempt(self, owner: str, record: AttemptRecord, *, now: float) -> bool:
        """Apply one attempt's outcome if ``owner`` still holds the item; False if it lost it."""
        ...

    async def get(self, queue_id: str) -> QueueMessage | None: ...

    async def read_data(self, queue_id: str) -> bytes: ...  # NotFound

    async def list(self, *, limit: int = 1000) -> list[QueueSummary]: ...

    async def retry(self, queue_id: str | None, *, now: float) -> int:
        """Make the message's items (every item when None) due now; returns how many."""
        ...

    async def delete(self, queue_id: str) -> None: ...  # NotFound; no DSN

    async def fail_pending(
        self, queue_id: str, *, text: str, status: str, notifications: Sequence[NewMessage], now: float
    ) -> int:
        """Mark every pending recipient failed (``queue bounce``) with the given DSNs; NotFound."""
        ...

    async def counts(self) -> dict[str, int]:
        """{"messages": n, "items": n, "recipients": n} still queued (for tests and the CLI)."""
        ...

    # -- DKIM keys (the signing keys of our domains) ------------------------------------------
    async def add_dkim_key(self, key: DkimKey) -> None: ...  # AlreadyExists for (domain, selector)

    async def get_dkim_key(self, domain: str) -> DkimKey | None:
        """The newest active key of the domain."""
        ...

    async def list_dkim_keys(self, domain: str | None = None) -> list[DkimKey]: ...


# -- shared by both backends ---------------------------------------------------------------------

MAX_RECIPIENTS = 10_000
MAX_FIELD = 2048


def to_ms(t: float) -> int:
    return int(round(t * 1000))


def from_ms(ms: int) -> float:
    return ms / 1000.0


def recipient_domain(address: str) -> str:
    """The destination of an address: its domain lower-cased (a literal ``[...]`` kept whole)."""
    return address.rpartition("@")[2].lower()


def notify_to_text(notify: tuple[str, ...] | None) -> str | None:
    return None if notify is None else ",".join(notify)


def notify_from_text(text: str | None) -> tuple[str, ...] | None:
    if text is None:
        return None
    return tuple(p for p in text.split(",") if p)


def _clean(text: str | None, what: str) -> str | None:
    from merpati.storage.api import InvalidInput

    if text is None:
        return None
    if not isinstance(text, str) or len(text) > MAX_FIELD or any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise InvalidInput(f"invalid {what}")
    return text


def check_new_message(message: NewMessage) -> None:
    """Refuse what the queue must never hold (a stored row is replayed to a remote later)."""
    from merpati.storage.api import InvalidInput

    if not message.recipients or len(message.recipients) > MAX_RECIPIENTS:
        raise InvalidInput("a queued message needs 1 to 10000 recipients")
    if not isinstance(message.data, (bytes, bytearray)):
        raise InvalidInput("message data must be bytes")
    _clean(message.queue_id, "queue id")
    _clean(message.sender, "sender")
    _clean(message.envid, "envid")
    _clean(message.origin, "origin")
    for rcpt in message.recipients:
        _clean(rcpt.address, "recipient")
        _clean(rcpt.orcpt, "orcpt")
        if "@" not in rcpt.address or not recipient_domain(rcpt.address):
            raise InvalidInput(f"recipient without a domain: {rcpt.address!r}")


def unique_recipients(message: NewMessage) -> list[tuple[NewRecipient, str]]:
    """The message's recipients, one per address (case-insensitive), each with its domain."""
    out: list[tuple[NewRecipient, str]] = []
    seen: set[str] = set()
    for rcpt in message.recipients:
        key = rcpt.address.lower()
        if key not in seen:
            seen.add(key)
            out.append((rcpt, recipient_domain(rcpt.address)))
    return out


def new_claims(
    message: NewMessage, message_id: int, now_ms: int, recipient_ids: Sequence[int], item_ids: dict[str, int],
    owner: str, until_ms: int,
) -> list[Claim]:
    """The claims of a message just inserted with its items leased to ``owner``, built from what
    was written (``recipient_ids`` in ``unique_recipients`` order): no read back of the data."""
    stored = QueueMessage(
        id=message_id, queue_id=message.queue_id, sender=message.sender, created=from_ms(now_ms),
        size=len(message.data), kind=MessageKind(message.kind), origin=message.origin, envid=message.envid,
        ret=message.ret, smtputf8=bool(message.smtputf8), body_type=message.body_type,
    )
    per_domain: dict[str, list[QueueRecipient]] = {}
    for (rcpt, domain), rid in zip(unique_recipients(message), recipient_ids):
        per_domain.setdefault(domain, []).append(QueueRecipient(
            id=rid, address=rcpt.address, domain=domain, state=RecipientState.QUEUED,
            notify=notify_from_text(notify_to_text(rcpt.notify)), orcpt=rcpt.orcpt,
        ))
    data = bytes(message.data)
    return [
        Claim(
            item=QueueItem(id=item_id, domain=domain, attempts=0, next_attempt=from_ms(now_ms),
                           lease_owner=owner, lease_until=from_ms(until_ms)),
            message=stored, recipients=tuple(per_domain.get(domain, ())), data=data,
        )
        for domain, item_id in sorted(item_ids.items(), key=lambda kv: kv[1])
    ]


def clean_text(text: str | None, limit: int = 1000) -> str | None:
    """Diagnostics from remote servers, made safe to store and re-serialise: printable, bounded."""
    if text is None:
        return None
    out = "".join(c if c.isprintable() else " " for c in text)
    return out[:limit]


# -- corrupt entries (STORE-09): checks and lenient readers in storage.queue_entries ----------

log = logging.getLogger("merpati.queue")

QUARANTINE_OWNER = "quarantine"  # the lease owner of quarantined items (runner owners hold a ":")
QUARANTINE_UNTIL_MS = 253_402_300_799_000  # 9999-12-31T23:59:59Z: the lease never expires
QUARANTINE_PREFIX = "quarantined: corrupt queue entry: "


def log_quarantined(quarantined: Sequence[tuple[int, str]]) -> None:
    for item_id, reason in quarantined:
        log.warning("queue item %d quarantined as corrupt (%s): not delivered, kept for an administrator "
                    "(merpati queue show/delete)", item_id, reason)


def fairness_share(limit: int) -> int:
    """How many of a claim's ``limit`` go first to items never attempted (see Fairness)."""
    return max(1, limit // 2)


class OpsQueueStore:
    """``QueueStore`` over a backend's ``read``/``write`` units of work and its ops module.

    ``write(fn, *args)`` runs ``fn(conn, *args)`` (returning ``(result, changes)``) in one
    durable write transaction; ``read(fn, *args)`` in one read transaction.
    """

    def __init__(self, ops: object, read: Callable[..., object], write: Callable[..., object]) -> None:
        self._ops = ops
        self._read = read
        self._write = write
        self._listeners: list[Callable[[], None]] = []
        self._runner: LocalRunner | None = None

    def on_enqueue(self, callback: Callable[[], None]) -> None:
        self._listeners.append(callback)

    def attach_runner(self, runner: LocalRunner) -> None:
        self._runner = runner

    def _notify(self) -> None:
        for callback in list(self._listeners):
            try:
                callback()
            except Exception:  # a listener must not fail a committed enqueue
                pass

    async def enqueue(self, message: NewMessage, *, now: float) -> str:
        check_new_message(message)
        runner = self._runner
        if runner is not None and runner.has_capacity():
            # Leased to our runner in the same transaction: it starts at once, no claim round.
            until = to_ms(now + runner.lease_seconds())
            claims = await self._write(self._ops.enqueue_claimed, message, to_ms(now), runner.owner, until)  # type: ignore[attr-defined,misc]
            runner.accept(claims)  # type: ignore[arg-type]
            return message.queue_id
        await self._write(self._ops.enqueue, message, to_ms(now))  # type: ignore[attr-defined,misc]
        self._notify()
        return message.queue_id

    async def claim(self, owner: str, *, now: float, lease: float, limit: int) -> list[Claim]:
        if limit <= 0:
            return []
        claims, quarantined = await self._write(self._ops.claim, owner, to_ms(now), to_ms(now + lease), int(limit))  # type: ignore[attr-defined,misc]
        log_quarantined(quarantined)  # committed: say so
        return claims  # type: ignore[no-any-return]

    async def renew(self, owner: str, item_ids: Sequence[int], *, until: float) -> list[int]:
        if not item_ids:
            return []
        return await self._write(self._ops.renew, owner, list(item_ids), to_ms(until))  # type: ignore[attr-defined,misc,no-any-return]

    async def release(self, owner: str, item_ids: Sequence[int]) -> None:
        if item_ids:
            await self._write(self._ops.release, owner, list(item_ids))  # type: ignore[attr-defined,misc]

    async def release_all(self, owner: str) -> int:
        return int(await self._write(self._ops.release_all, owner))  # type: ignore[attr-defined,misc,call-overload]

    async def record_attempt(self, owner: str, record: AttemptRecord, *, now: float) -> bool:
        for note in record.notifications:
            check_new_message(note)
        ok = await self._write(self._ops.record_attempt, owner, record, to_ms(now))  # type: ignore[attr-defined,misc]
        if ok and record.notifications:
            self._notify()
        return bool(ok)

    async def get(self, queue_id: str) -> QueueMessage | None:
        return await self._read(self._ops.get, queue_id)  # type: ignore[attr-defined,misc,no-any-return]

    async def read_data(self, queue_id: str) -> bytes:
        data = await self._read(self._ops.read_data, queue_id)  # type: ignore[attr-defined,misc]
        return data.encode("utf-8", "replace") if isinstance(data, str) else bytes(data)  # str: a corrupt row

    async def list(self, *, limit: int = 1000) -> list[QueueSummary]:
        return await self._read(self._ops.list_queue, int(limit))  # type: ignore[attr-defined,misc,no-any-return]

    async def retry(self, queue_id: str | None, *, now: float) -> int:
        return await self._write(self._ops.retry, queue_id, to_ms(now))  # type: ignore[attr-defined,misc,no-any-return]

    async def delete(self, queue_id: str) -> None:
        await self._write(self._ops.delete, queue_id)  # type: ignore[attr-defined,misc]

    async def fail_pending(
        self, queue_id: str, *, text: str, status: str, notifications: Sequence[NewMessage], now: float
    ) -> int:
        for note in notifications:
            check_new_message(note)
        count = await self._write(self._ops.fail_pending, queue_id, clean_text(text), status, list(notifications), to_ms(now))  # type: ignore[attr-defined,misc]
        if notifications:
            self._notify()
        return int(count)  # type: ignore[call-overload]

    async def counts(self) -> dict[str, int]:
        return await self._read(self._ops.counts)  # type: ignore[attr-defined,misc,no-any-return]

    async def add_dkim_key(self, key: DkimKey) -> None:
        await self._write(self._ops.add_dkim_key, key)  # type: ignore[attr-defined,misc]

    async def get_dkim_key(self, domain: str) -> DkimKey | None:
        return await self._read(self._ops.get_dkim_key, domain.lower())  # type: ignore[attr-defined,misc,no-any-return]

    async def list_dkim_keys(self, domain: str | None = None) -> list[DkimKey]:
        return await self._read(self._ops.list_dkim_keys, domain.lower() if domain else None)  # type: ignore[attr-defined,misc,no-any-return]
