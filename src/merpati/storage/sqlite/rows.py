"""SQLite row helpers shared by the units of work (``ops``, ``messages``): column lists, row →
model conversion, mailbox lookups and UIDVALIDITY allocation, and quota checks.

Quota usage (RFC 9208) is the sum of ``mailboxes.msg_count``/``msg_bytes`` over the account's
mailboxes; those counters change in the same UPDATE that allocates UIDs (deliver, append,
copy, move) or records an expunge, so keeping them costs no statement of its own."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from merpati.storage import common
from merpati.storage.api import NotFound, OverQuota
from merpati.storage.changes import Change
from merpati.storage.models import Account, Mailbox, MessageMeta, SpecialUse

Conn = sqlite3.Connection
Result = tuple[Any, list[Change]]

MAILBOX_COLS = "id, account_id, name, uidvalidity, uidnext, highestmodseq, special_use, subscribed"
MESSAGE_COLS = "id, mailbox_id, uid, modseq, flags, internaldate_us, internaldate_tz, savedate_us, size"
ACCOUNT_COLS = "id, address, password_hash, quota_bytes, quota_messages"
DELETED = "\\Deleted"


def account(row: Any) -> Account:
    return Account(id=row[0], address=row[1], password_hash=row[2], quota_bytes=row[3], quota_messages=row[4])


def mailbox(row: Any) -> Mailbox:
    return Mailbox(
        id=row[0],
        account_id=row[1],
        name=row[2],
        uidvalidity=row[3],
        uidnext=row[4],
        highestmodseq=row[5],
        special_use=SpecialUse(row[6]) if row[6] else None,
        subscribed=bool(row[7]),
    )


_FLAG_SETS: dict[str, frozenset[str]] = {}  # stored flags text -> set: few distinct values recur


def _flags(text: str) -> frozenset[str]:
    flags = _FLAG_SETS.get(text)
    if flags is None:
        flags = frozenset(json.loads(text))
        if len(_FLAG_SETS) >= 4096:
            _FLAG_SETS.clear()
        _FLAG_SETS[text] = flags
    return flags


def meta(row: Any) -> MessageMeta:
    return MessageMeta(
        id=row[0],
        mailbox_id=row[1],
        uid=row[2],
        modseq=row[3],
        flags=_flags(row[4]),
        internaldate=common.parts_to_dt(row[5], row[6]),
        savedate=common.parts_to_dt(row[7], 0),
        size=row[8],
    )


def next_uidvalidity(conn: Conn) -> int:
    row = conn.execute(
        "UPDATE counters SET value = max(value + 1, ?) WHERE name = 'uidvalidity' RETURNING value",
        (common.uidvalidity_floor(),),
    ).fetchone()
    return int(row[0])


def insert_mailbox(
    conn: Conn, account_id: int, name: str, use: SpecialUse | None, *, new_account: bool = False
) -> Mailbox:
    """Insert a mailbox with a fresh UIDVALIDITY. It is subscribed when its name was (the name
    then leaves ``subscriptions``), or when it is one of a new account's mailboxes."""
    subscribed = new_account or conn.execute(
        "DELETE FROM subscriptions WHERE account_id = ? AND name = ? RETURNING 1", (account_id, name)
    ).fetchone() is not None
    cur = conn.execute(
        "INSERT INTO mailboxes (account_id, name, uidvalidity, special_use, subscribed) VALUES (?, ?, ?, ?, ?) "
        f"RETURNING {MAILBOX_COLS}",
        (account_id, name, next_uidvalidity(conn), use.value if use else None, subscribed),
    )
    return mailbox(cur.fetchone())


def mailbox_by_name(conn: Conn, account_id: int, name: str) -> Mailbox | None:
    norm = common.lookup_mailbox_name(name)
    if norm is None:
        return None
    row = conn.execute(
        f"SELECT {MAILBOX_COLS} FROM mailboxes WHERE account_id = ? AND name = ?", (account_id, norm)
    ).fetchone()
    return mailbox(row) if row else None


def mailbox_by_id(conn: Conn, mailbox_id: int) -> Mailbox:
    row = conn.execute(f"SELECT {MAILBOX_COLS} FROM mailboxes WHERE id = ?", (mailbox_id,)).fetchone()
    if row is None:
        raise NotFound(f"no mailbox {mailbox_id}")
    return mailbox(row)


def chunks(uids: list[int], size: int = 500) -> list[list[int]]:
    return [uids[i : i + size] for i in range(0, len(uids), size)]


def quota_limits(conn: Conn, account_id: int) -> tuple[int, int]:
    row = conn.execute("SELECT quota_bytes, quota_messages FROM accounts WHERE id = ?", (account_id,)).fetchone()
    if row is None:
        raise NotFound(f"no account {account_id}")
    return int(row[0]), int(row[1])


def usage(conn: Conn, account_id: int) -> tuple[int, int]:
    """(bytes, messages) stored in the account's mailboxes."""
    row = conn.execute(
        "SELECT coalesce(sum(msg_bytes), 0), coalesce(sum(msg_count), 0) FROM mailboxes WHERE account_id = ?",
        (account_id,),
    ).fetchone()
    return int(row[0]), int(row[1])


def check_quota(conn: Conn, adds: dict[int, tuple[int, int]], limits: dict[int, tuple[int, int]]) -> None:
    """Raise OverQuota naming every account that adding (bytes, messages) would take over a
    limit. ``limits`` holds the (bytes, messages) limits already read (others are read here);
    an account without limits costs nothing more."""
    over: list[int] = []
    for account_id in sorted(adds):
        add_bytes, add_messages = adds[account_id]
        if add_bytes <= 0 and add_messages <= 0:
            continue
        limit_bytes, limit_messages = limits.get(account_id) or quota_limits(conn, account_id)
        if not limit_bytes and not limit_messages:
            continue
        used_bytes, used_messages = usage(conn, account_id)
        if (limit_bytes and used_bytes + add_bytes > limit_bytes) or (
            limit_messages and used_messages + add_messages > limit_messages
        ):
            over.append(account_id)
    if over:
        raise OverQuota(over)
