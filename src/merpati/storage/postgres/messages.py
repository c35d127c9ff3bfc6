"""PostgreSQL units of work on messages: deliver, append, copy/move, flags, expunge, reads.

Each write runs in one transaction (``PgStore._tx``) with its notifications; lock order as in
``rows``: accounts → counters → mailboxes (ascending) → messages. Quota usage lives in the
mailbox rows: the UPDATE that allocates UIDs or records an expunge also moves the mailbox's
message count and size. An account with a quota limit is locked before its usage is checked.
"""

from __future__ import annotations

from typing import Any

from merpati.storage import common
from merpati.storage.api import InvalidInput, NotFound
from merpati.storage.changes import Change, Expunged, FlagsChanged, MessageAdded, payload_flags
from merpati.storage.models import INBOX, FlagMode, Mailbox, MessageMeta
from merpati.storage.postgres.search import insert_doc
from merpati.storage.postgres.rows import (
    DELETED,
    MAILBOX_COLS,
    MESSAGE_COLS,
    Conn,
    Result,
    Retry,
    check_quota,
    lock_limited,
    lock_mailboxes,
    mailbox,
    mailbox_by_id,
    meta,
)


async def _file(
    conn: Conn, pairs: list[tuple[common.PreparedDelivery, Mailbox]], limited: set[int] | None
) -> Result:
    """Insert prepared messages into their mailboxes: quota first (locking the accounts that
    have a limit), then the mailboxes in id order, then one UID and MODSEQ per message.
    ``limited``: the accounts known to have a quota limit (None: not known, look them all up)."""
    adds: dict[int, tuple[int, int]] = {}
    for d, mb in pairs:
        b, n = adds.get(mb.account_id, (0, 0))
        adds[mb.account_id] = (b + len(d.data), n + 1)
    candidates = set(adds) if limited is None else limited
    if candidates:
        await check_quota(conn, adds, await lock_limited(conn, candidates))
    ids = {mb.id for _d, mb in pairs}
    if len(ids) > 1:
        await lock_mailboxes(conn, ids)
    savedate_us, _ = common.now_parts()
    metas: list[MessageMeta] = []
    changes: list[Change] = []
    for d, mb in pairs:
        row = await conn.fetchrow(
            "UPDATE mailboxes SET uidnext = uidnext + 1, highestmodseq = highestmodseq + 1, "
            "msg_count = msg_count + 1, msg_bytes = msg_bytes + $2 WHERE id = $1 RETURNING uidnext - 1, highestmodseq",
            mb.id, len(d.data),
        )
        if row is None:
            raise Retry()  # deleted since we resolved it
        uid, modseq = row
        search_id = await insert_doc(conn, d.doc) if d.doc is not None else None  # the search index
        msg_id = await conn.fetchval(
            "WITH m AS (INSERT INTO messages (mailbox_id, uid, modseq, flags, seen, deleted, internaldate_us, "
            "internaldate_tz, savedate_us, size, subject, message_id, from_addr, date_hdr, preview, search_id) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $19) RETURNING id) "
            "INSERT INTO message_blobs (message_id, data, parsed, envelope) SELECT id, $16, $17, $18 FROM m "
            "RETURNING message_id",
            mb.id, uid, modseq, common.flags_sorted(d.flags), common.SEEN in d.flags, DELETED in d.flags,
            d.internaldate_us, d.internaldate_tz, savedate_us, len(d.data), *d.search, d.data, d.parsed,
            d.envelope, search_id,
        )
        metas.append(
            MessageMeta(
                id=msg_id, mailbox_id=mb.id, uid=uid, modseq=modseq, flags=d.flags,
                internaldate=common.parts_to_dt(d.internaldate_us, d.internaldate_tz),
                savedate=common.parts_to_dt(savedate_us, 0), size=len(d.data),
            )
        )
        changes.append(MessageAdded(mb.account_id, mb.id, uid, modseq, payload_flags(d.flags)))
    return metas, changes


_MAILBOX_COLS_M = ", ".join("m." + c.strip() for c in MAILBOX_COLS.split(","))


async def _delivery_target(conn: Conn, account_id: int, name: str) -> tuple[Mailbox, bool] | None:
    """The named mailbox of the account, or its INBOX when there is no such mailbox, and
    whether the account has a quota limit: one statement."""
    norm = common.lookup_mailbox_name(name) or INBOX
    row = await conn.fetchrow(
        f"SELECT {_MAILBOX_COLS_M}, a.quota_bytes > 0 OR a.quota_messages > 0 FROM mailboxes m "
        "JOIN accounts a ON a.id = m.account_id WHERE m.account_id = $1 AND m.name IN ($2, 'INBOX') "
        "ORDER BY m.name = 'INBOX' LIMIT 1",
        account_id, norm,
    )
    return (mailbox(row), bool(row[-1])) if row else None


async def deliver(conn: Conn, rows: list[common.PreparedDelivery]) -> Result:
    resolved: dict[tuple[int, str], Mailbox] = {}
    limited: set[int] = set()
    pairs = []
    for d in rows:
        mb = resolved.get((d.account_id, d.mailbox))
        if mb is None:
            target = await _delivery_target(conn, d.account_id, d.mailbox)
            if target is None:
                raise NotFound(f"no account {d.account_id}")
            mb, has_limit = target
            resolved[(d.account_id, d.mailbox)] = mb
            if has_limit:
                limited.add(d.account_id)
        pairs.append((d, mb))
    return await _file(conn, pairs, limited)


async def append(conn: Conn, mailbox_id: int, rows: list[common.PreparedDelivery]) -> Result:
    mb = await mailbox_by_id(conn, mailbox_id)
    return await _file(conn, [(d, mb) for d in rows], None)


async def list_messages(conn: Conn, mailbox_id: int, uid_min: int, uid_max: int | None) -> list[MessageMeta]:
    await mailbox_by_id(conn, mailbox_id)
    rows = await conn.fetch(
        f"SELECT {MESSAGE_COLS} FROM messages WHERE mailbox_id = $1 AND uid >= $2 AND uid <= $3 ORDER BY uid",
        mailbox_id, uid_min, uid_max if uid_max is not None else 2**62,
    )
    return [meta(r) for r in rows]


async def list_messages_changed(
    conn: Conn, mailbox_id: int, uid_min: int, uid_max: int | None, changedsince: int
) -> list[MessageMeta]:
    await mailbox_by_id(conn, mailbox_id)
    rows = await conn.fetch(
        f"SELECT {MESSAGE_COLS} FROM messages WHERE mailbox_id = $1 AND modseq > $2 AND uid >= $3 AND uid <= $4 "
        "ORDER BY uid",
        mailbox_id, changedsince, uid_min, uid_max if uid_max is not None else 2**62,
    )
    return [meta(r) for r in rows]


async def expunged_since(conn: Conn, mailbox_id: int, modseq: int, uid_min: int, uid_max: int | None) -> list[int]:
    await mailbox_by_id(conn, mailbox_id)
    rows = await conn.fetch(
        "SELECT uid FROM expunged WHERE mailbox_id = $1 AND modseq > $2 AND uid >= $3 AND uid <= $4 ORDER BY uid",
        mailbox_id, modseq, uid_min, uid_max if uid_max is not None else 2**62,
    )
    return [r[0] for r in rows]


async def read_blob(conn: Conn, mailbox_id: int, uid: int, column: str) -> Any:
    """One column of a message's blob row ("data", "parsed" or "envelope"); NotFound if no message."""
    assert column in ("data", "parsed", "envelope")
    row = await conn.fetchrow(
        f"SELECT b.{column} FROM messages m JOIN message_blobs b ON b.message_id = m.id "
        "WHERE m.mailbox_id = $1 AND m.uid = $2",
        mailbox_id, uid,
    )
    if row is None:
        raise NotFound(f"no message {uid} in mailbox {mailbox_id}")
    return row[0]


async def read_blobs(conn: Conn, mailbox_id: int, uids: list[int], column: str) -> list[tuple[int, Any]]:
    """[(uid, column value)] of the UIDs that exist, ascending; NotFound for a missing mailbox."""
    assert column in ("data", "parsed")
    await mailbox_by_id(conn, mailbox_id)
    rows = await conn.fetch(
        f"SELECT m.uid, b.{column} FROM messages m JOIN message_blobs b ON b.message_id = m.id "
        "WHERE m.mailbox_id = $1 AND m.uid = ANY($2::bigint[]) ORDER BY m.uid",
        mailbox_id, uids,
    )
    return [(r[0], r[1]) for r in rows]


def flag_events(account_id: int, mailbox_id: int, modseq: int, changed: list[tuple[int, frozenset[str]]]) -> list[Change]:
    """One FlagsChanged per distinct resulting flag set (UIDs ascending), split to stay small."""
    groups: dict[frozenset[str], list[int]] = {}
    for uid, flags in changed:
        groups.setdefault(flags, []).append(uid)
    events: list[Change] = []
    for flags, uids in groups.items():
        payload = payload_flags(flags)
        events += [FlagsChanged(account_id, mailbox_id, part, modseq, payload) for part in common.split_uids(uids)]
    return events


async def store_flags(conn: Conn, mailbox_id: int, uids: list[int], flags: frozenset[str], mode: FlagMode) -> Result:
    mb = await mailbox_by_id(conn, mailbox_id, lock=True)
    rows = await conn.fetch(
        f"SELECT {MESSAGE_COLS} FROM messages WHERE mailbox_id = $1 AND uid = ANY($2::bigint[]) ORDER BY uid",
        mailbox_id, uids,
    )
    changed = []
    for m in map(meta, rows):
        new = common.apply_flags(m.flags, flags, mode)
        if new != m.flags:
            changed.append((m, new))
    if not changed:
        return [], []
    modseq = await conn.fetchval(
        "UPDATE mailboxes SET highestmodseq = highestmodseq + 1 WHERE id = $1 RETURNING highestmodseq", mailbox_id
    )
    await conn.executemany(
        "UPDATE messages SET flags = $1, seen = $2, deleted = $3, modseq = $4 WHERE id = $5",
        [(common.flags_sorted(f), common.SEEN in f, DELETED in f, modseq, m.id) for m, f in changed],
    )
    out = [
        MessageMeta(
            id=m.id, mailbox_id=m.mailbox_id, uid=m.uid, modseq=modseq, flags=f,
            internaldate=m.internaldate, savedate=m.savedate, size=m.size,
        )
        for m, f in changed
    ]
    return out, flag_events(mb.account_id, mailbox_id, modseq, [(m.uid, m.flags) for m in out])


async def store_flags_conditional(
    conn: Conn, mailbox_id: int, uids: list[int], flags: frozenset[str], mode: FlagMode, unchangedsince: int
) -> Result:
    """STORE (UNCHANGEDSINCE n), RFC 7162 §3.1.3, in one transaction: the mailbox row is locked
    first (every MODSEQ change of its messages takes that lock), then messages whose MODSEQ is
    above ``unchangedsince`` are left alone and returned as failed; the rest go through
    store_flags. Result: ((changed metas, failed uids ascending), changes)."""
    await mailbox_by_id(conn, mailbox_id, lock=True)
    rows = await conn.fetch(
        "SELECT uid FROM messages WHERE mailbox_id = $1 AND uid = ANY($2::bigint[]) AND modseq > $3 ORDER BY uid",
        mailbox_id, uids, unchangedsince,
    )
    failed = [r[0] for r in rows]
    gone = set(failed)
    out, events = await store_flags(conn, mailbox_id, [u for u in uids if u not in gone], flags, mode)
    return (out, failed), events


async def _record_expunge(conn: Conn, mb: Mailbox, removed: list[int], freed: int) -> list[Change]:
    """One new MODSEQ for the removal of ``removed`` (ascending, ``freed`` bytes in all),
    recorded for QRESYNC."""
    modseq = await conn.fetchval(
        "UPDATE mailboxes SET highestmodseq = highestmodseq + 1, msg_count = msg_count - $2, "
        "msg_bytes = msg_bytes - $3 WHERE id = $1 RETURNING highestmodseq",
        mb.id, len(removed), freed,
    )
    await conn.execute(
        "INSERT INTO expunged (mailbox_id, uid, modseq) SELECT $1, u, $3 FROM unnest($2::bigint[]) AS u "
        "ON CONFLICT (mailbox_id, uid) DO UPDATE SET modseq = EXCLUDED.modseq",
        mb.id, removed, modseq,
    )
    return [Expunged(mb.account_id, mb.id, part, modseq) for part in common.split_uids(removed)]


async def _account_of(conn: Conn, mailbox_id: int) -> int:
    account_id = await conn.fetchval("SELECT account_id FROM mailboxes WHERE id = $1", mailbox_id)
    if account_id is None:
        raise NotFound(f"no mailbox {mailbox_id}")
    return int(account_id)


async def expunge(conn: Conn, mailbox_id: int, uids: list[int]) -> Result:
    mb = await mailbox_by_id(conn, mailbox_id, lock=True)
    rows = await conn.fetch(
        "DELETE FROM messages WHERE mailbox_id = $1 AND uid = ANY($2::bigint[]) RETURNING uid, size", mailbox_id, uids
    )
    if not rows:
        return [], []
    removed = sorted(r[0] for r in rows)
    return removed, await _record_expunge(conn, mb, removed, sum(r[1] for r in rows))


async def copy_messages(conn: Conn, src_id: int, uids: list[int], dst_id: int, move: bool) -> Result:
    """COPY (move=False) or MOVE (move=True) of the existing ``uids``: [(src uid, dst uid)].

    A copy inserts new message and blob rows in one statement; a move re-files the same rows
    in place (new mailbox, UID, MODSEQ, save date), records the source expunge, and publishes
    MessageAdded then Expunged.
    """
    src_account, dst_account = await _account_of(conn, src_id), await _account_of(conn, dst_id)
    if move and src_id == dst_id:
        raise InvalidInput("cannot move messages into the mailbox they are in")
    adding = not move or src_account != dst_account  # a move within one account adds nothing
    locked = await lock_limited(conn, [dst_account]) if adding else {}
    await lock_mailboxes(conn, {src_id, dst_id})
    src = await mailbox_by_id(conn, src_id)
    dst = await mailbox_by_id(conn, dst_id)
    rows = await conn.fetch(
        "SELECT id, uid, size, flags FROM messages WHERE mailbox_id = $1 AND uid = ANY($2::bigint[]) ORDER BY uid",
        src_id, uids,
    )
    if not rows:
        return [], []
    total, n = sum(r[2] for r in rows), len(rows)
    if locked:
        await check_quota(conn, {dst.account_id: (total, n)}, locked)
    first_uid, first_modseq = await conn.fetchrow(
        "UPDATE mailboxes SET uidnext = uidnext + $1, highestmodseq = highestmodseq + $1, msg_count = msg_count + $1, "
        "msg_bytes = msg_bytes + $3 WHERE id = $2 RETURNING uidnext - $1, highestmodseq - $1 + 1",
        n, dst.id, total,
    )
    savedate_us, _ = common.now_parts()
    ids = [r[0] for r in rows]
    new_uids = [first_uid + i for i in range(n)]
    new_modseqs = [first_modseq + i for i in range(n)]
    if move:
        await conn.execute(
            "UPDATE messages m SET mailbox_id = $1, uid = u.new_uid, modseq = u.new_modseq, savedate_us = $5 "
            "FROM unnest($2::bigint[], $3::bigint[], $4::bigint[]) AS u(old_id, new_uid, new_modseq) "
            "WHERE m.id = u.old_id",
            dst.id, ids, new_uids, new_modseqs, savedate_us,
        )
    else:
        await conn.execute(
            "WITH src AS (SELECT m.*, u.new_uid, u.new_modseq "
            "  FROM unnest($2::bigint[], $3::bigint[], $4::bigint[]) AS u(old_id, new_uid, new_modseq) "
            "  JOIN messages m ON m.id = u.old_id), "
            "ins AS (INSERT INTO messages (mailbox_id, uid, modseq, flags, seen, deleted, internaldate_us, "
            "  internaldate_tz, savedate_us, size, subject, message_id, from_addr, date_hdr, preview, search_id) "
            "  SELECT $1, new_uid, new_modseq, flags, seen, deleted, internaldate_us, internaldate_tz, $5, size, "
            "  subject, message_id, from_addr, date_hdr, preview, search_id FROM src RETURNING id, uid) "
            "INSERT INTO message_blobs (message_id, data, parsed, envelope) "
            "SELECT ins.id, b.data, b.parsed, b.envelope FROM ins JOIN src ON src.new_uid = ins.uid "
            "JOIN message_blobs b ON b.message_id = src.id",
            dst.id, ids, new_uids, new_modseqs, savedate_us,
        )
    pairs = [(r[1], new_uid) for r, new_uid in zip(rows, new_uids, strict=True)]
    changes: list[Change] = [
        MessageAdded(dst.account_id, dst.id, new_uid, modseq, payload_flags(r[3]))
        for r, new_uid, modseq in zip(rows, new_uids, new_modseqs, strict=True)
    ]
    if move:
        changes += await _record_expunge(conn, src, [uid for uid, _ in pairs], total)
    return pairs, changes
