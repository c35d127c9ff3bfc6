"""PostgreSQL row helpers shared by the units of work (``ops``, ``messages``): column lists, row →
model conversion, mailbox lookups, UIDVALIDITY allocation, locks and quota checks.

Lock order, everywhere: account rows (ascending id) → counters row → mailbox rows (ascending
id) → message rows, so concurrent writers never wait on each other in a cycle. Account rows
are locked only by writes that add messages to an account that has a quota limit: they then
read the usage and add to it while no other such write of that account can.

Quota usage (RFC 9208) is the sum of ``mailboxes.msg_count``/``msg_bytes`` over the account's
mailboxes; those counters change in the same UPDATE that allocates UIDs or records an expunge.
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


async def lock_mailboxes(conn: Conn, mailbox_ids: set[int] | list[int]) -> None:
    ids = sorted(set(mailbox_ids))
    got = await conn.fetch("SELECT id FROM mailboxes WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE", ids)
    if len(got) != len(ids):
        raise Retry()  # a mailbox vanished since it was resolved: resolve again (or NotFound then)


async def lock_limited(conn: Conn, account_ids: set[int] | list[int]) -> dict[int, tuple[int, int]]:
    """Lock (ascending id, before any mailbox row) the accounts among ``account_ids`` that have
    a quota limit, and return their (bytes, messages) limits as read under the lock."""
    rows = await conn.fetch(
        "SELECT id, quota_bytes, quota_messages FROM accounts WHERE id = ANY($1::bigint[]) "
        "AND (quota_bytes > 0 OR quota_messages > 0) ORDER BY id FOR NO KEY UPDATE",
        sorted(set(account_ids)),
    )
    return {r[0]: (int(r[1]), int(r[2])) for r in rows}


async def usage(conn: Conn, account_id: int) -> tuple[int, int]:
    """(bytes, messages) stored in the account's mailboxes."""
    row = await conn.fetchrow(
        "SELECT coalesce(sum(msg_bytes), 0), coalesce(sum(msg_count), 0) FROM mailboxes WHERE account_id = $1",
        account_id,
    )
    return int(row[0]), int(row[1])


async def check_quota(conn: Conn, adds: dict[int, tuple[int, int]], locked: dict[int, tuple[int, int]]) -> None:
    """Raise OverQuota naming every account of ``locked`` (from ``lock_limited``) that adding
    (bytes, messages) would take over a limit."""
    over: list[int] = []
    for account_id in sorted(locked):
        add_bytes, add_messages = adds.get(account_id, (0, 0))
        if add_bytes <= 0 and add_messages <= 0:
            continue
        limit_bytes, limit_messages = locked[account_id]
        used_bytes, used_messages = await usage(conn, account_id)
        if (limit_bytes and used_bytes + add_bytes > limit_bytes) or (
            limit_messages and used_messages + add_messages > limit_messages
        ):
            over.append(account_id)
    if over:
        raise OverQuota(over)
