"""SQLite units of work on messages: deliver, append, copy/move, flags, expunge, reads.

Every write returns ``(result, changes)`` and runs inside the writer's SAVEPOINT (raising
undoes it all), on the group-committing writer thread: durable when the caller's await
returns. Quota usage lives in the mailbox rows (``rows``): the UPDATE that allocates UIDs or
records an expunge also moves the mailbox's message count and size.
"""

from __future__ import annotations

import json
from typing import Any

from merpati.storage import common
from merpati.storage.api import InvalidInput, NotFound
from merpati.storage.changes import Change, Expunged, FlagsChanged, MessageAdded, payload_flags
from merpati.storage.models import INBOX, FlagMode, Mailbox, MessageMeta
from merpati.storage.sqlite.search import insert_doc
from merpati.storage.sqlite.rows import (
    DELETED,
    MAILBOX_COLS,
    MESSAGE_COLS,
    Conn,
    Result,
    check_quota,
    chunks,
    mailbox_by_id,
    mailbox,
    meta,
)

_MAILBOX_COLS_M = ", ".join("m." + c.strip() for c in MAILBOX_COLS.split(","))


def _file(
    conn: Conn, pairs: list[tuple[common.PreparedDelivery, Mailbox]], limits: dict[int, tuple[int, int]]
) -> Result:
    """Insert prepared messages into their (existing) mailboxes: quota first, then UIDs/MODSEQs.
    ``limits``: the quota limits of the accounts, where the caller read them already."""
    adds: dict[int, tuple[int, int]] = {}
    for d, mb in pairs:
        b, n = adds.get(mb.account_id, (0, 0))
        adds[mb.account_id] = (b + len(d.data), n + 1)
    check_quota(conn, adds, limits)
    metas: list[MessageMeta] = []
    changes: list[Change] = []
    savedate_us, _ = common.now_parts()
    for d, mb in pairs:
        uid, modseq = conn.execute(
            "UPDATE mailboxes SET uidnext = uidnext + 1, highestmodseq = highestmodseq + 1, "
            "msg_count = msg_count + 1, msg_bytes = msg_bytes + ? WHERE id = ? RETURNING uidnext - 1, highestmodseq",
            (len(d.data), mb.id),
        ).fetchone()
        search_id = insert_doc(conn, d.doc) if d.doc is not None else None  # the search index
        cur = conn.execute(
            "INSERT INTO messages (mailbox_id, uid, modseq, flags, seen, deleted, internaldate_us, internaldate_tz, "
            "savedate_us, size, subject, message_id, from_addr, date_hdr, preview, search_id) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                mb.id, uid, modseq, json.dumps(common.flags_sorted(d.flags)), common.SEEN in d.flags,
                DELETED in d.flags, d.internaldate_us, d.internaldate_tz, savedate_us, len(d.data), *d.search,
                search_id,
            ),
        )
        msg_id = int(cur.lastrowid or 0)
        conn.execute(
            "INSERT INTO message_blobs (message_id, data, parsed, envelope) VALUES (?, ?, ?, ?)",
            (msg_id, d.data, d.parsed, d.envelope),
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


def deliver(conn: Conn, rows: list[common.PreparedDelivery]) -> Result:
    """File every prepared delivery (missing mailbox → INBOX); any error undoes the whole call."""
    resolved: dict[tuple[int, str], Mailbox] = {}
    limits: dict[int, tuple[int, int]] = {}
    pairs = []
    for d in rows:
        mb = resolved.get((d.account_id, d.mailbox))
        if mb is None:
            # The named mailbox, else INBOX, with the account's quota limits: one statement.
            row = conn.execute(
                f"SELECT {_MAILBOX_COLS_M}, a.quota_bytes, a.quota_messages FROM mailboxes m "
                "JOIN accounts a ON a.id = m.account_id WHERE m.account_id = ? AND m.name IN (?, 'INBOX') "
                "ORDER BY m.name = 'INBOX' LIMIT 1",
                (d.account_id, common.lookup_mailbox_name(d.mailbox) or INBOX),
            ).fetchone()
            if row is None:
                raise NotFound(f"no account {d.account_id}")
            mb = mailbox(row)
            resolved[(d.account_id, d.mailbox)] = mb
            limits[d.account_id] = (row[-2], row[-1])
        pairs.append((d, mb))
    return _file(conn, pairs, limits)


def append(conn: Conn, mailbox_id: int, rows: list[common.PreparedDelivery]) -> Result:
    mb = mailbox_by_id(conn, mailbox_id)
    return _file(conn, [(d, mb) for d in rows], {})


def list_messages(conn: Conn, mailbox_id: int, uid_min: int, uid_max: int | None) -> list[MessageMeta]:
    mailbox_by_id(conn, mailbox_id)
    rows = conn.execute(
        f"SELECT {MESSAGE_COLS} FROM messages WHERE mailbox_id = ? AND uid >= ? AND uid <= ? ORDER BY uid",
        (mailbox_id, uid_min, uid_max if uid_max is not None else 2**62),
    )
    return [meta(r) for r in rows]


def list_messages_changed(
    conn: Conn, mailbox_id: int, uid_min: int, uid_max: int | None, changedsince: int
) -> list[MessageMeta]:
    mailbox_by_id(conn, mailbox_id)
    rows = conn.execute(
        f"SELECT {MESSAGE_COLS} FROM messages WHERE mailbox_id = ? AND modseq > ? AND uid >= ? AND uid <= ? "
        "ORDER BY uid",
        (mailbox_id, changedsince, uid_min, uid_max if uid_max is not None else 2**62),
    )
    return [meta(r) for r in rows]


def expunged_since(conn: Conn, mailbox_id: int, modseq: int, uid_min: int, uid_max: int | None) -> list[int]:
    mailbox_by_id(conn, mailbox_id)
    rows = conn.execute(
        "SELECT uid FROM expunged WHERE mailbox_id = ? AND modseq > ? AND uid >= ? AND uid <= ? ORDER BY uid",
        (mailbox_id, modseq, uid_min, uid_max if uid_max is not None else 2**62),
    )
    return [r[0] for r in rows]


def read_blob(conn: Conn, mailbox_id: int, uid: int, column: str) -> Any:
    """One column of a message's blob row ("data", "parsed" or "envelope"); NotFound if no message."""
    assert column in ("data", "parsed", "envelope")
    row = conn.execute(
        f"SELECT b.{column} FROM messages m JOIN message_blobs b ON b.message_id = m.id "
        "WHERE m.mailbox_id = ? AND m.uid = ?",
        (mailbox_id, uid),
    ).fetchone()
    if row is None:
        raise NotFound(f"no message {uid} in mailbox {mailbox_id}")
    return row[0]


def read_blobs(conn: Conn, mailbox_id: int, uids: list[int], column: str) -> list[tuple[int, Any]]:
    """[(uid, column value)] of the UIDs that exist, ascending; NotFound for a missing mailbox."""
    assert column in ("data", "parsed")
    mailbox_by_id(conn, mailbox_id)
    out: list[tuple[int, Any]] = []
    for chunk in chunks(uids):
        out += conn.execute(
            f"SELECT m.uid, b.{column} FROM messages m JOIN message_blobs b ON b.message_id = m.id "
            f"WHERE m.mailbox_id = ? AND m.uid IN ({','.join('?' * len(chunk))}) ORDER BY m.uid",
            (mailbox_id, *chunk),
        ).fetchall()
    return out


def _select_uids(conn: Conn, mailbox_id: int, uids: list[int], cols: str) -> list[Any]:
    rows: list[Any] = []
    for chunk in chunks(uids):
        rows += conn.execute(
            f"SELECT {cols} FROM messages WHERE mailbox_id = ? AND uid IN ({','.join('?' * len(chunk))}) ORDER BY uid",
            (mailbox_id, *chunk),
        ).fetchall()
    return rows


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


def store_flags(conn: Conn, mailbox_id: int, uids: list[int], flags: frozenset[str], mode: FlagMode) -> Result:
    mb = mailbox_by_id(conn, mailbox_id)
    changed: list[tuple[int, frozenset[str]]] = []
    metas = [meta(r) for r in _select_uids(conn, mailbox_id, uids, MESSAGE_COLS)]
    for m in metas:
        new = common.apply_flags(m.flags, flags, mode)
        if new != m.flags:
            changed.append((m.id, new))
    if not changed:
        return [], []
    modseq = conn.execute(
        "UPDATE mailboxes SET highestmodseq = highestmodseq + 1 WHERE id = ? RETURNING highestmodseq", (mailbox_id,)
    ).fetchone()[0]
    conn.executemany(
        "UPDATE messages SET flags = ?, seen = ?, deleted = ?, modseq = ? WHERE id = ?",
        [(json.dumps(common.flags_sorted(f)), common.SEEN in f, DELETED in f, modseq, mid) for mid, f in changed],
    )
    new_by_id = dict(changed)
    out = [
        MessageMeta(
            id=m.id, mailbox_id=m.mailbox_id, uid=m.uid, modseq=modseq, flags=new_by_id[m.id],
            internaldate=m.internaldate, savedate=m.savedate, size=m.size,
        )
        for m in metas
        if m.id in new_by_id
    ]
    return out, flag_events(mb.account_id, mailbox_id, modseq, [(m.uid, m.flags) for m in out])


def store_flags_conditional(
    conn: Conn, mailbox_id: int, uids: list[int], flags: frozenset[str], mode: FlagMode, unchangedsince: int
) -> Result:
    """STORE (UNCHANGEDSINCE n), RFC 7162 §3.1.3, in one write transaction (BEGIN IMMEDIATE:
    nobody changes a MODSEQ between the check and the change): messages whose MODSEQ is above
    ``unchangedsince`` are left alone and returned as failed; the rest go through store_flags.
    Result: ((changed metas, failed uids ascending), changes)."""
    mailbox_by_id(conn, mailbox_id)
    failed = [r[0] for r in _select_uids(conn, mailbox_id, uids, "uid, modseq") if r[1] > unchangedsince]
    gone = set(failed)
    out, events = store_flags(conn, mailbox_id, [u for u in uids if u not in gone], flags, mode)
    return (out, failed), events


def _record_expunge(conn: Conn, mb: Mailbox, removed: list[int], freed: int) -> tuple[int, list[Change]]:
    """Take one new MODSEQ for the removal of ``removed`` (ascending, ``freed`` bytes in all)
    and record it (QRESYNC)."""
    modseq = conn.execute(
        "UPDATE mailboxes SET highestmodseq = highestmodseq + 1, msg_count = msg_count - ?, "
        "msg_bytes = msg_bytes - ? WHERE id = ? RETURNING highestmodseq",
        (len(removed), freed, mb.id),
    ).fetchone()[0]
    conn.executemany(
        "INSERT OR REPLACE INTO expunged (mailbox_id, uid, modseq) VALUES (?, ?, ?)",
        [(mb.id, u, modseq) for u in removed],
    )
    return modseq, [Expunged(mb.account_id, mb.id, part, modseq) for part in common.split_uids(removed)]


def expunge(conn: Conn, mailbox_id: int, uids: list[int]) -> Result:
    mb = mailbox_by_id(conn, mailbox_id)
    removed: list[int] = []
    freed = 0
    for chunk in chunks(uids):
        for uid, size in conn.execute(
            f"DELETE FROM messages WHERE mailbox_id = ? AND uid IN ({','.join('?' * len(chunk))}) RETURNING uid, size",
            (mailbox_id, *chunk),
        ):
            removed.append(uid)
            freed += size
    if not removed:
        return [], []
    removed.sort()
    _modseq, events = _record_expunge(conn, mb, removed, freed)
    return removed, events


def copy_messages(conn: Conn, src_id: int, uids: list[int], dst_id: int, move: bool) -> Result:
    """COPY (move=False) or MOVE (move=True) of the existing ``uids``: [(src uid, dst uid)].

    A copy duplicates the message row and its blob row; a move re-files the same rows in
    place (new mailbox, UID, MODSEQ and save date; the message id and bytes stay), records
    the source expunge and publishes MessageAdded then Expunged.
    """
    src = mailbox_by_id(conn, src_id)
    dst = mailbox_by_id(conn, dst_id)
    if move and src.id == dst.id:
        raise InvalidInput("cannot move messages into the mailbox they are in")
    rows = _select_uids(conn, src_id, uids, "id, uid, size, flags")
    if not rows:
        return [], []
    total, n = sum(r[2] for r in rows), len(rows)
    if not move or src.account_id != dst.account_id:
        check_quota(conn, {dst.account_id: (total, n)}, {})
    first_uid, first_modseq = conn.execute(
        "UPDATE mailboxes SET uidnext = uidnext + ?, highestmodseq = highestmodseq + ?, msg_count = msg_count + ?, "
        "msg_bytes = msg_bytes + ? WHERE id = ? RETURNING uidnext - ?, highestmodseq - ? + 1",
        (n, n, n, total, dst.id, n, n),
    ).fetchone()
    savedate_us, _ = common.now_parts()
    pairs: list[tuple[int, int]] = []
    changes: list[Change] = []
    for i, (msg_id, uid, _size, flags_json) in enumerate(rows):
        new_uid, new_modseq = first_uid + i, first_modseq + i
        if move:
            conn.execute(
                "UPDATE messages SET mailbox_id = ?, uid = ?, modseq = ?, savedate_us = ? WHERE id = ?",
                (dst.id, new_uid, new_modseq, savedate_us, msg_id),
            )
        else:
            cur = conn.execute(
                "INSERT INTO messages (mailbox_id, uid, modseq, flags, seen, deleted, internaldate_us, "
                "internaldate_tz, savedate_us, size, subject, message_id, from_addr, date_hdr, preview, search_id) "
                "SELECT ?, ?, ?, flags, seen, deleted, internaldate_us, internaldate_tz, ?, size, subject, "
                "message_id, from_addr, date_hdr, preview, search_id FROM messages WHERE id = ?",
                (dst.id, new_uid, new_modseq, savedate_us, msg_id),
            )
            conn.execute(
                "INSERT INTO message_blobs (message_id, data, parsed, envelope) "
                "SELECT ?, data, parsed, envelope FROM message_blobs WHERE message_id = ?",
                (int(cur.lastrowid or 0), msg_id),
            )
        pairs.append((uid, new_uid))
        changes.append(MessageAdded(dst.account_id, dst.id, new_uid, new_modseq, payload_flags(json.loads(flags_json))))
    if move:
        _modseq, expunged = _record_expunge(conn, src, [uid for uid, _ in pairs], total)
        changes += expunged
    return pairs, changes
