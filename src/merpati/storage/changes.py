"""Change events, published on the change feed only after the change is committed.

Sessions (IMAP IDLE, POP3) subscribe per account and turn these into untagged responses at
safe points. With PostgreSQL the same events travel between nodes over LISTEN/NOTIFY, so every
event must be JSON-serialisable (``to_json``/``change_from_json``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Union


@dataclass(frozen=True, slots=True)
class MessageAdded:
    account_id: int
    mailbox_id: int
    uid: int
    modseq: int


@dataclass(frozen=True, slots=True)
class FlagsChanged:
    account_id: int
    mailbox_id: int
    uids: tuple[int, ...]
    modseq: int


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
    kind: str  # "created" | "deleted" | "renamed" | "subscribed"


Change = Union[MessageAdded, FlagsChanged, Expunged, MailboxChanged]

_KINDS: dict[str, type] = {c.__name__: c for c in (MessageAdded, FlagsChanged, Expunged, MailboxChanged)}


def change_to_json(change: Change) -> str:
    return json.dumps({"t": type(change).__name__, **asdict(change)}, separators=(",", ":"))


def change_from_json(text: str) -> Change:
    raw = json.loads(text)
    cls = _KINDS[raw.pop("t")]
    if "uids" in raw:
        raw["uids"] = tuple(raw["uids"])
    return cls(**raw)  # type: ignore[no-any-return]
