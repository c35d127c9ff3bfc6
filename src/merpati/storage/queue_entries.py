"""Queue rows read back as untrusted input (SECURITY-CASES STORE-09).

``checked_claim`` turns an item's rows into a ``Claim`` only when ``entry_problem`` finds
nothing wrong with them; otherwise the caller quarantines the item (lease owner
``QUARANTINE_OWNER`` until ``QUARANTINE_UNTIL_MS``, the reason after ``QUARANTINE_PREFIX`` in
the recipients' last text). The ``lenient_*`` readers turn any stored value into something the
admin commands can display, so ``queue list``/``show`` work on corrupt rows too.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from merpati.storage.queue_api import (
    MAX_FIELD,
    Claim,
    MessageKind,
    QueueItem,
    QueueMessage,
    QueueRecipient,
    QueueSummary,
    RecipientState,
    clean_text,
    from_ms,
    notify_from_text,
    recipient_domain,
)


# What reading a corrupt row can raise while turning it into models (never a database error).
UNREADABLE = (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError, UnicodeError)
_RET = frozenset({"FULL", "HDRS"})
_BODY = frozenset({"7BIT", "8BITMIME", "BINARYMIME"})
_NOTIFY = frozenset({"SUCCESS", "FAILURE", "DELAY"})
MAX_ATTEMPTS = 1_000_000


def _bad_text(value: object, *, empty: bool = True) -> bool:
    return (
        not isinstance(value, str) or (not empty and not value) or len(value) > MAX_FIELD
        or any(ord(c) < 32 or ord(c) == 127 for c in value)
    )


def _bad_address(value: object) -> bool:
    from merpati.core.address import AddressError, parse_address

    if _bad_text(value, empty=False):
        return True
    try:
        parse_address(value, allow_utf8=True, max_local_part=MAX_FIELD)  # type: ignore[arg-type]
    except AddressError:
        return True
    return False


def entry_problem(
    item: QueueItem, message: QueueMessage, recipients: Sequence[QueueRecipient], data: object
) -> str | None:
    """Why the rows of one item must not be delivered (None: they are sound). ``recipients``
    are all the item's recipients, whatever their state. The reason never quotes the rows."""
    if _bad_text(message.queue_id, empty=False):
        return "invalid queue id"
    if message.sender != "" and _bad_address(message.sender):
        return "the sender is not a valid address"
    if _bad_text(message.origin) or (message.envid is not None and _bad_text(message.envid)):
        return "invalid origin or ENVID"
    if message.ret is not None and message.ret not in _RET:
        return "RET is neither FULL nor HDRS"
    if message.body_type is not None and message.body_type not in _BODY:
        return "BODY is not 7BIT, 8BITMIME or BINARYMIME"
    if not isinstance(message.created, (int, float)) or not math.isfinite(message.created):
        return "invalid creation time"
    if not isinstance(data, bytes) or not data:
        return "the message data is empty or not bytes"
    if type(message.size) is not int or message.size != len(data):
        return "the stored size is not the length of the data (truncated?)"
    if _bad_text(item.domain, empty=False):
        return "invalid item domain"
    if type(item.attempts) is not int or not 0 <= item.attempts <= MAX_ATTEMPTS:
        return "attempt count out of range"
    for r in recipients:
        if r.state is RecipientState.CORRUPT:
            return f"recipient {r.id}: unknown state"
        if r.state is not RecipientState.QUEUED:
            continue
        if _bad_address(r.address):
            return f"recipient {r.id}: not a valid address"
        if r.domain != item.domain or recipient_domain(r.address) != item.domain:
            return f"recipient {r.id}: domain does not match its item"
        if r.notify is not None and r.notify != ("NEVER",) and (
            not set(r.notify) <= _NOTIFY or len(set(r.notify)) != len(r.notify)
        ):
            return f"recipient {r.id}: invalid NOTIFY"
        if r.orcpt is not None and _bad_text(r.orcpt):
            return f"recipient {r.id}: invalid ORCPT"
    return None


def checked_claim(read: Callable[[], tuple[QueueItem, QueueMessage, Sequence[QueueRecipient], object]]) -> Claim | str:
    """Build one claim with ``read`` (which turns the item's rows into models, strictly); a
    ``str`` is the reason the item is corrupt (quarantine it)."""
    try:
        item, message, recipients, data = read()
        problem = entry_problem(item, message, recipients, data)
    except UNREADABLE as exc:
        return f"unreadable row ({type(exc).__name__})"
    if problem is not None:
        return problem
    queued = tuple(r for r in recipients if r.state is RecipientState.QUEUED)
    return Claim(item=item, message=message, recipients=queued, data=data)  # type: ignore[arg-type]


def claim_problem(claim: Claim) -> str | None:
    """``entry_problem`` for a claim already built (the runner's check of mail handed over)."""
    try:
        return entry_problem(claim.item, claim.message, claim.recipients, claim.data)
    except UNREADABLE as exc:
        return f"unreadable ({type(exc).__name__})"


def lenient_text(value: object) -> str:
    """A stored value as printable text for display, whatever it holds."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return clean_text(value if isinstance(value, str) else str(value), MAX_FIELD) or ""


def lenient_ms(value: object) -> float:
    return from_ms(value) if type(value) is int else 0.0


def lenient_kind(value: object) -> MessageKind:
    try:
        return MessageKind(value)
    except ValueError:
        return MessageKind.MAIL


def lenient_state(value: object) -> RecipientState:
    """A stored state; an unknown one (or "corrupt" itself) is CORRUPT, which ``entry_problem`` refuses."""
    try:
        state = RecipientState(value)
    except ValueError:
        return RecipientState.CORRUPT
    return RecipientState.CORRUPT if state is RecipientState.CORRUPT else state


def lenient_message(row: Sequence[object], recipients: tuple[QueueRecipient, ...] = (),
                    items: tuple[QueueItem, ...] = ()) -> QueueMessage:
    """``_MSG_COLS`` → a message to show, even from a corrupt row (``merpati queue show``)."""
    def opt(v: object) -> str | None:
        return None if v is None else lenient_text(v)

    return QueueMessage(
        id=int(row[0]), queue_id=lenient_text(row[1]), sender=lenient_text(row[2]), created=lenient_ms(row[3]),  # type: ignore[call-overload]
        size=row[4] if type(row[4]) is int else -1, kind=lenient_kind(row[5]), origin=lenient_text(row[6]),  # type: ignore[arg-type]
        envid=opt(row[7]), ret=opt(row[8]), smtputf8=bool(row[9]), body_type=opt(row[10]),
        recipients=recipients, items=items,
    )


def lenient_recipient(row: Sequence[object]) -> QueueRecipient:
    def opt(v: object) -> str | None:
        return None if v is None else lenient_text(v)

    notify = None if row[4] is None else notify_from_text(lenient_text(row[4]))
    return QueueRecipient(
        id=int(row[0]), address=lenient_text(row[1]), domain=lenient_text(row[2]), state=lenient_state(row[3]),  # type: ignore[call-overload]
        notify=notify, orcpt=opt(row[5]), last_code=row[6] if type(row[6]) is int else None,
        last_status=opt(row[7]), last_text=opt(row[8]), remote=opt(row[9]), warned=bool(row[10]),
    )


def lenient_item(row: Sequence[object]) -> QueueItem:
    return QueueItem(
        id=int(row[0]), domain=lenient_text(row[1]), attempts=row[2] if type(row[2]) is int else -1,  # type: ignore[call-overload,arg-type]
        next_attempt=lenient_ms(row[3]), lease_owner=None if row[4] is None else lenient_text(row[4]),
        lease_until=lenient_ms(row[5]),
    )


def summary(row: Sequence[object]) -> QueueSummary:
    """A ``list_queue`` row (queue id, sender, created, size, kind, pending, next attempt, last
    text, domains joined by ",", quarantined) → its summary, leniently (rows may be corrupt)."""
    domains = "" if row[8] is None else lenient_text(row[8])
    return QueueSummary(
        queue_id=lenient_text(row[0]), sender=lenient_text(row[1]), created=lenient_ms(row[2]),
        size=row[3] if type(row[3]) is int else -1, kind=lenient_kind(row[4]), pending=int(row[5]),  # type: ignore[call-overload]
        next_attempt=lenient_ms(row[6]) if row[6] is not None else None,
        last_text=None if row[7] is None else lenient_text(row[7]),
        domains=tuple(d for d in domains.split(",") if d), quarantined=bool(row[9]),
    )
