"""PostgreSQL row helpers shared by the units of work (``ops``, ``messages``): column lists, row →
model conversion, mailbox lookups, UIDVALIDITY allocation, account locks and quota usage.

Lock order, everywhere: account rows (ascending id) → counters row → mailbox rows (ascending
id) → message rows, so concurrent writers never wait on each other in a cycle.
"""

from __future__ import annotations

from typing import Any

from merpati.storage import common
from merpati.storage.api import AlreadyExists, NotFound, OverQuota
from merpati.storage.changes import Change
from merpati.storage.models import Account, Mailbox, MessageMeta, SpecialUse

Conn = Any  # asyncpg.Connection
Result = tuple[Any, list[Change]]

MAILBOX_COLS = "id, account_id, name, uidvalidity, uidnext, highestmodseq, special_use, subscribed"
MESSAGE_COLS = "id, mailbox_id, uid, modseq, flags, internaldate_us, internaldate_tz, savedate_us, size"
ACCOUNT_COLS = "id, address, password_hash, quota_bytes, quota_messages"
DELETED = "\\Deleted"


class Retry(Exception):
    """A concurrent change invalidated what this transaction read; run it again."""


def account(r: Any) -> Account:
    return Account(id=r[0], address=r[1], password_hash=r[2], quota_bytes=r[3], quota_messages=r[4])


def mailbox(r: Any) -> Mailbox:
    return Mailbox(
        id=r[0], account_id=r[1], name=r[2], uidvalidity=r[3], uidnext=r[4], highestmodseq=r[5],
        special_use=SpecialUse(r[6]) if r[6] else None, subscribed=bool(r[7]),
    )


def meta(r: Any) -> MessageMeta:
    return MessageMeta(
        id=r[0], mailbox_id=r[1], uid=r[2], modseq=r[3], flags=frozenset(r[4]),
        internaldate=common.parts_to_dt(r[5], r[6]), savedate=common.parts_to_dt(r[7], 0), size=r[8],
    )


def count_of(status: str) -> int:
    """The row count of an asyncpg command status ("UPDATE 3", "INSERT 0 1")."""
    return int(status.rsplit(" ", 1)[-1])


async def insert_mailbox(
    conn: Conn, account_id: int, name: str, use: SpecialUse | None, *, new_account: bool = False
) -> Mailbox:
    """Insert a mailbox with a fresh UIDVALIDITY; subscribed when its name was (the name then
    leaves ``subscriptions``) or when it is one of a new account's mailboxes. AlreadyExists."""
    subscribed = new_account or await conn.fetchval(
        "DELETE FROM subscriptions WHERE account_id = $1 AND name = $2 RETURNING true", account_id, name
    ) is not None
    uidvalidity = await conn.fetchval(
        "UPDATE counters SET value = GREATEST(value + 1, $1) WHERE name = 'uidvalidity' RETURNING value",
        common.uidvalidity_floor(),
    )
    row = await conn.fetchrow(
        "INSERT INTO mailboxes (account_id, name, uidvalidity, special_use, subscribed) VALUES ($1, $2, $3, $4, $5) "
        f"ON CONFLICT (account_id, name) DO NOTHING RETURNING {MAILBOX_COLS}",
        account_id, name, uidvalidity, use.value if use else None, subscribed,
    )
    if row is None:
        raise AlreadyExists(f"mailbox {name!r} exists")
    return mailbox(row)


async def mailbox_by_name(conn: Conn, account_id: int, name: str) -> Mailbox | None:
    norm = common.lookup_mailbox_name(name)
    if norm is None:
        return None
    row = await conn.fetchrow(
        f"SELECT {MAILBOX_COLS} FROM mailboxes WHERE account_id = $1 AND name = $2", account_id, norm
    )
    return mailbox(row) if row else None


async def mailbox_by_id(conn: Conn, mailbox_id: int, *, lock: bool = False) -> Mailbox:
    row = await conn.fetchrow(
        f"SELECT {MAILBOX_COLS} FROM mailboxes WHERE id = $1" + (" FOR UPDATE" if lock else ""), mailbox_id
    )
    if row is None:
        raise NotFound(f"no mailbox {mailbox_id}")
    return mailbox(row)


async def lock_accounts(conn: Conn, account_ids: set[int] | list[int]) -> None:
    """Lock account rows (ascending id) before any mailbox row: see the lock order above."""
    ids = sorted(set(account_ids))
    got = await conn.fetch(
        "SELECT id FROM accounts WHERE id = ANY($1::bigint[]) ORDER BY id FOR NO KEY UPDATE", ids
    )
    if len(got) != len(ids):
        raise NotFound(f"no account among {ids}")


async def lock_mailboxes(conn: Conn, mailbox_ids: set[int] | list[int]) -> None:
    ids = sorted(set(mailbox_ids))
    got = await conn.fetch("SELECT id FROM mailboxes WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE", ids)
    if len(got) != len(ids):
        raise Retry()  # a mailbox vanished since it was resolved: resolve again (or NotFound then)


async def charge(conn: Conn, deltas: dict[int, tuple[int, int]]) -> None:
    """Add (bytes, messages) to each account's usage, in ascending account order (this locks the
    rows, or they are locked already). OverQuota names every account an addition takes over a
    limit (the transaction then rolls back); NotFound for a missing account."""
    over: list[int] = []
    for account_id in sorted(deltas):
        add_bytes, add_messages = deltas[account_id]
        if add_bytes == 0 and add_messages == 0:
            continue
        row = await conn.fetchrow(
            "UPDATE accounts SET used_bytes = used_bytes + $1, used_messages = used_messages + $2 WHERE id = $3 "
            "RETURNING used_bytes, used_messages, quota_bytes, quota_messages",
            add_bytes, add_messages, account_id,
        )
        if row is None:
            raise NotFound(f"no account {account_id}")
        used_bytes, used_messages, quota_bytes, quota_messages = row
        if add_bytes > 0 or add_messages > 0:
            if (quota_bytes and used_bytes > quota_bytes) or (quota_messages and used_messages > quota_messages):
                over.append(account_id)
    if over:
        raise OverQuota(over)
