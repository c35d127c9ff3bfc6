"""Change events, published on the change feed only after the change is committed.

Sessions (IMAP IDLE, POP3) subscribe per account and turn these into untagged responses at
safe points. With PostgreSQL the same events travel between nodes over LISTEN/NOTIFY, so every
event must be JSON-serialisable (``to_json``/``change_from_json``).

What each event tells an IMAP session (RFC 9051 §7.5.1 safe points are the session's job):

* ``MessageAdded``: a new message ``uid`` with ``modseq`` in ``mailbox_id`` (deliver, append,
  copy, move, INBOX rename). ``flags`` are its flags (sorted), or None when not carried.
* ``FlagsChanged``: every message of ``uids`` now has a MODSEQ of ``modseq``; when ``flags``
  is not None, every one of them has exactly those flags (sorted). A store groups a flag change
  into one event per distinct resulting flag set, and sets ``flags`` to None only when the set
  is too long for a notification: then the session reads the flags (``list_messages``).
* ``Expunged``: those UIDs are gone from ``mailbox_id`` at ``modseq`` (expunge, move, INBOX
  rename); ``expunged_since`` gives the same UIDs to QRESYNC clients later.
* ``MailboxChanged``: ``kind`` is "created", "deleted", "renamed" (``name`` is the new name),
  "subscribed" or "unsubscribed" (``mailbox_id`` 0 when no mailbox has that name). ``name``
  is the mailbox's (new) name or the subscription's name, None when it was too long to carry.

The payload fields (``flags``, ``name``) are not part of an event's equality: two events
about the same change compare equal whether or not one of them carries the payload.
Events carry at most ``common.MAX_UIDS_PER_EVENT`` UIDs; bigger changes are split.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Union

# Longest flag list or name (in characters of JSON) carried inside one event; beyond it the
# field is None and the session reads the store (PostgreSQL NOTIFY payloads stay < 8000 bytes).
MAX_PAYLOAD_CHARS = 2000


@dataclass(frozen=True, slots=True)
class MessageAdded:
    account_id: int
    mailbox_id: int
    uid: int
    modseq: int
    flags: tuple[str, ...] | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class FlagsChanged:
    account_id: int
    mailbox_id: int
    uids: tuple[int, ...]
    modseq: int
    flags: tuple[str, ...] | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class Expunged:
    account_id: int
    mailbox_id: int
    uids: tuple[int, ...]
    modseq: int


@dataclass(frozen=True, slots=True)
class MailboxChanged:
    """A mailbox was created, deleted, renamed or (un)subscribed."""

    account_id: int
    mailbox_id: int
    kind: str  # "created" | "deleted" | "renamed" | "subscribed" | "unsubscribed"
    name: str | None = field(default=None, compare=False)


Change = Union[MessageAdded, FlagsChanged, Expunged, MailboxChanged]

_KINDS: dict[str, type] = {c.__name__: c for c in (MessageAdded, FlagsChanged, Expunged, MailboxChanged)}


def payload_flags(flags: frozenset[str] | tuple[str, ...] | list[str]) -> tuple[str, ...] | None:
    """The ``flags`` field for an event: sorted, or None when too long to carry."""
    out = tuple(sorted(flags))
    return out if sum(len(f) + 3 for f in out) <= MAX_PAYLOAD_CHARS else None


def payload_name(name: str) -> str | None:
    return name if len(name) * 2 <= MAX_PAYLOAD_CHARS else None


def change_to_json(change: Change) -> str:
    return json.dumps({"t": type(change).__name__, **asdict(change)}, separators=(",", ":"))


def change_from_json(text: str) -> Change:
    raw = json.loads(text)
    cls = _KINDS[raw.pop("t")]
    if "uids" in raw:
        raw["uids"] = tuple(raw["uids"])
    if raw.get("flags") is not None:
        raw["flags"] = tuple(raw["flags"])
    return cls(**raw)  # type: ignore[no-any-return]
