"""SQLite units of work: plain functions of a connection, run on the writer or a reader thread.

Write functions return ``(result, changes)``; they run inside the writer's SAVEPOINT, so
raising undoes everything they did. Read functions return the result. Every statement is
parameterised; no caller text is ever formatted into SQL.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

from merpati.storage import common
from merpati.storage.api import AlreadyExists, InvalidInput, NotFound
from merpati.storage.changes import Change, Expunged, FlagsChanged, MailboxChanged, MessageAdded
from merpati.storage.models import (
    DEFAULT_SPECIAL_MAILBOXES,
    INBOX,
    Account,
    Alias,
    FlagMode,
    Mailbox,
    MailboxStatus,
    MessageMeta,
    SpecialUse,
)

Conn = sqlite3.Connection
Result = tuple[Any, list[Change]]

_MAILBOX_COLS = "id, account_id, name, uidvalidity, uidnext, highestmodseq, special_use, subscribed"
_MESSAGE_COLS = "id, mailbox_id, uid, modseq, flags, internaldate_us, internaldate_tz, savedate_us, size"
_ACCOUNT_COLS = "id, address, password_hash, quota_bytes, quota_messages"


def _account(row: Any) -> Account:
    return Account(id=row[0], address=row[1], password_hash=row[2], quota_bytes=row[3], quota_messages=row[4])


def _mailbox(row: Any) -> Mailbox:
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


def _meta(row: Any) -> MessageMeta:
    return MessageMeta(
        id=row[0],
        mailbox_id=row[1],
        uid=row[2],
        modseq=row[3],
        flags=frozenset(json.loads(row[4])),
        internaldate=common.parts_to_dt(row[5], row[6]),
        savedate=common.parts_to_dt(row[7], 0),
        size=row[8],
    )


# -- domains ----------------------------------------------------------------------------------


def add_domain(conn: Conn, name: str) -> Result:
    name = common.normalize_domain(name)
    if conn.execute("SELECT 1 FROM domains WHERE name = ?", (name,)).fetchone():
        raise AlreadyExists(f"domain {name} exists")
    conn.execute("INSERT INTO domains (name) VALUES (?)", (name,))
    return None, []


def remove_domain(conn: Conn, name: str) -> Result:
    key = common.lookup_domain(name)
    row = conn.execute("SELECT id FROM domains WHERE name = ?", (key,)).fetchone() if key else None
    if row is None:
        raise NotFound(f"no domain {name!r}")
    changes: list[Change] = []
    for acc_id, mb_id in conn.execute(
        "SELECT a.id, m.id FROM accounts a JOIN mailboxes m ON m.account_id = a.id WHERE a.domain_id = ?",
        (row[0],),
    ):
        changes.append(MailboxChanged(acc_id, mb_id, "deleted"))
    conn.execute("DELETE FROM domains WHERE id = ?", (row[0],))  # cascades: accounts, mail, aliases
    return None, changes


def list_domains(conn: Conn) -> list[str]:
    return [r[0] for r in conn.execute("SELECT name FROM domains ORDER BY name")]


def has_domain(conn: Conn, name: str) -> bool:
    key = common.lookup_domain(name)
    return key is not None and conn.execute("SELECT 1 FROM domains WHERE name = ?", (key,)).fetchone() is not None


def _domain_id(conn: Conn, domain: str) -> int:
    row = conn.execute("SELECT id FROM domains WHERE name = ?", (domain,)).fetchone()
    if row is None:
        raise NotFound(f"no domain {domain!r}")
    return int(row[0])


# -- accounts ---------------------------------------------------------------------------------


def create_account(conn: Conn, address: str, password_hash: str) -> Result:
    stored, key, domain = common.normalize_address(address)
    if not isinstance(password_hash, str) or "\x00" in password_hash:
        raise InvalidInput("invalid password hash")
    domain_id = _domain_id(conn, domain)
    if conn.execute("SELECT 1 FROM accounts WHERE address_key = ?", (key,)).fetchone():
        raise AlreadyExists(f"account {stored} exists")
    cur = conn.execute(
        "INSERT INTO accounts (domain_id, address, address_key, password_hash) VALUES (?, ?, ?, ?)",
        (domain_id, stored, key, password_hash),
    )
    account_id = int(cur.lastrowid or 0)
    _insert_mailbox(conn, account_id, INBOX, None)
    for name, use in DEFAULT_SPECIAL_MAILBOXES:
        _insert_mailbox(conn, account_id, name, use)
    row = conn.execute(f"SELECT {_ACCOUNT_COLS} FROM accounts WHERE id = ?", (account_id,)).fetchone()
    return _account(row), []


def _account_row(conn: Conn, address: str) -> Any:
    key = common.lookup_key(address)
    if key is None:
        return None
    return conn.execute(f"SELECT {_ACCOUNT_COLS} FROM accounts WHERE address_key = ?", (key,)).fetchone()


def delete_account(conn: Conn, address: str) -> Result:
    row = _account_row(conn, address)
    if row is None:
        raise NotFound(f"no account {address!r}")
    changes: list[Change] = [
        MailboxChanged(row[0], r[0], "deleted")
        for r in conn.execute("SELECT id FROM mailboxes WHERE account_id = ?", (row[0],))
    ]
    conn.execute("DELETE FROM accounts WHERE id = ?", (row[0],))
    return None, changes


def get_account(conn: Conn, address: str) -> Account | None:
    row = _account_row(conn, address)
    return _account(row) if row else None


def get_account_by_id(conn: Conn, account_id: int) -> Account | None:
    row = conn.execute(f"SELECT {_ACCOUNT_COLS} FROM accounts WHERE id = ?", (account_id,)).fetchone()
    return _account(row) if row else None


def list_accounts(conn: Conn, domain: str | None) -> list[Account]:
    if domain is None:
        rows = conn.execute(f"SELECT {_ACCOUNT_COLS} FROM accounts ORDER BY address_key")
    else:
        rows = conn.execute(
            f"SELECT {_ACCOUNT_COLS} FROM accounts WHERE domain_id = "
            "(SELECT id FROM domains WHERE name = ?) ORDER BY address_key",
            (common.lookup_domain(domain),),
        )
    return [_account(r) for r in rows]


def set_password(conn: Conn, address: str, password_hash: str) -> Result:
    if not isinstance(password_hash, str) or "\x00" in password_hash:
        raise InvalidInput("invalid password hash")
    row = _account_row(conn, address)
    if row is None:
        raise NotFound(f"no account {address!r}")
    conn.execute("UPDATE accounts SET password_hash = ? WHERE id = ?", (password_hash, row[0]))
    return None, []


# -- aliases ----------------------------------------------------------------------------------


def _alias(conn: Conn, alias_id: int, source: str) -> Alias:
    targets = conn.execute(
        "SELECT target FROM alias_targets WHERE alias_id = ? ORDER BY position", (alias_id,)
    ).fetchall()
    return Alias(source=source, targets=tuple(t[0] for t in targets))


def add_alias(conn: Conn, source: str, targets: Sequence[str]) -> Result:
    stored, key, domain = common.normalize_alias_source(source)
    new = common.normalize_targets(targets)
    if not new:
        raise InvalidInput("an alias needs at least one target")
    domain_id = _domain_id(conn, domain)
    row = conn.execute("SELECT id, source FROM aliases WHERE source_key = ?", (key,)).fetchone()
    if row is None:
        cur = conn.execute(
            "INSERT INTO aliases (domain_id, source, source_key) VALUES (?, ?, ?)", (domain_id, stored, key)
        )
        alias_id, stored_source = int(cur.lastrowid or 0), stored
    else:
        alias_id, stored_source = row
    pos = conn.execute(
        "SELECT coalesce(max(position), 0) FROM alias_targets WHERE alias_id = ?", (alias_id,)
    ).fetchone()[0]
    for target, tkey in new:
        if conn.execute(
            "SELECT 1 FROM alias_targets WHERE alias_id = ? AND target_key = ?", (alias_id, tkey)
        ).fetchone():
            continue
        pos += 1
        conn.execute(
            "INSERT INTO alias_targets (alias_id, position, target, target_key) VALUES (?, ?, ?, ?)",
            (alias_id, pos, target, tkey),
        )
    return _alias(conn, alias_id, stored_source), []


def remove_alias(conn: Conn, source: str, targets: Sequence[str]) -> Result:
    key = common.lookup_key(source)
    row = conn.execute("SELECT id FROM aliases WHERE source_key = ?", (key,)).fetchone() if key else None
    if row is None:
        raise NotFound(f"no alias {source!r}")
    if not targets:
        conn.execute("DELETE FROM aliases WHERE id = ?", (row[0],))
        return None, []
    for _target, tkey in common.normalize_targets(targets):
        cur = conn.execute("DELETE FROM alias_targets WHERE alias_id = ? AND target_key = ?", (row[0], tkey))
        if cur.rowcount == 0:
            raise NotFound(f"{_target!r} is not a target of {source!r}")
    if not conn.execute("SELECT 1 FROM alias_targets WHERE alias_id = ?", (row[0],)).fetchone():
        conn.execute("DELETE FROM aliases WHERE id = ?", (row[0],))
    return None, []


def get_alias(conn: Conn, source: str) -> Alias | None:
    key = common.lookup_key(source)
    row = conn.execute("SELECT id, source FROM aliases WHERE source_key = ?", (key,)).fetchone() if key else None
    return _alias(conn, row[0], row[1]) if row else None


def list_aliases(conn: Conn, domain: str | None) -> list[Alias]:
    if domain is None:
        rows = conn.execute("SELECT id, source FROM aliases ORDER BY source_key").fetchall()
    else:
        rows = conn.execute(
            "SELECT id, source FROM aliases WHERE domain_id = (SELECT id FROM domains WHERE name = ?) "
            "ORDER BY source_key",
            (common.lookup_domain(domain),),
        ).fetchall()
    return [_alias(conn, r[0], r[1]) for r in rows]


# -- mailboxes --------------------------------------------------------------------------------


def _next_uidvalidity(conn: Conn) -> int:
    row = conn.execute(
        "UPDATE counters SET value = max(value + 1, ?) WHERE name = 'uidvalidity' RETURNING value",
        (common.uidvalidity_floor(),),
    ).fetchone()
    return int(row[0])


def _insert_mailbox(conn: Conn, account_id: int, name: str, use: SpecialUse | None) -> Mailbox:
    cur = conn.execute(
        "INSERT INTO mailboxes (account_id, name, uidvalidity, special_use) VALUES (?, ?, ?, ?) "
        f"RETURNING {_MAILBOX_COLS}",
        (account_id, name, _next_uidvalidity(conn), use.value if use else None),
    )
    return _mailbox(cur.fetchone())


def _mailbox_by_name(conn: Conn, account_id: int, name: str) -> Mailbox | None:
    norm = common.lookup_mailbox_name(name)
    if norm is None:
        return None
    row = conn.execute(
        f"SELECT {_MAILBOX_COLS} FROM mailboxes WHERE account_id = ? AND name = ?", (account_id, norm)
    ).fetchone()
    return _mailbox(row) if row else None


def _mailbox_by_id(conn: Conn, mailbox_id: int) -> Mailbox:
    row = conn.execute(f"SELECT {_MAILBOX_COLS} FROM mailboxes WHERE id = ?", (mailbox_id,)).fetchone()
    if row is None:
        raise NotFound(f"no mailbox {mailbox_id}")
    return _mailbox(row)


def list_mailboxes(conn: Conn, account_id: int) -> list[Mailbox]:
    rows = conn.execute(
        f"SELECT {_MAILBOX_COLS} FROM mailboxes WHERE account_id = ? ORDER BY name <> 'INBOX', name",
        (account_id,),
    )
    return [_mailbox(r) for r in rows]


def get_mailbox(conn: Conn, account_id: int, name: str) -> Mailbox | None:
    return _mailbox_by_name(conn, account_id, name)


def create_mailbox(conn: Conn, account_id: int, name: str, special_use: SpecialUse | None) -> Result:
    name = common.normalize_mailbox_name(name)
    if special_use is not None:
        special_use = SpecialUse(special_use)
    if not conn.execute("SELECT 1 FROM accounts WHERE id = ?", (account_id,)).fetchone():
        raise NotFound(f"no account {account_id}")
    if _mailbox_by_name(conn, account_id, name) is not None:
        raise AlreadyExists(f"mailbox {name!r} exists")
    mb = _insert_mailbox(conn, account_id, name, special_use)
    return mb, [MailboxChanged(account_id, mb.id, "created")]


def delete_mailbox(conn: Conn, account_id: int, name: str) -> Result:
    mb = _mailbox_by_name(conn, account_id, name)
    if mb is None:
        raise NotFound(f"no mailbox {name!r}")
    if mb.name == INBOX:
        raise InvalidInput("INBOX cannot be deleted")
    conn.execute("DELETE FROM mailboxes WHERE id = ?", (mb.id,))
    return None, [MailboxChanged(account_id, mb.id, "deleted")]


def rename_mailbox(conn: Conn, account_id: int, old: str, new: str) -> Result:
    """Rename a mailbox and its children ("a" → "b" renames "a/x" → "b/x"); UIDVALIDITY is kept."""
    mb = _mailbox_by_name(conn, account_id, old)
    if mb is None:
        raise NotFound(f"no mailbox {old!r}")
    new = common.normalize_mailbox_name(new)
    if mb.name == INBOX:
        raise InvalidInput("renaming INBOX is not supported")
    if new == mb.name:
        return mb, []
    if new.startswith(mb.name + "/"):
        raise InvalidInput("a mailbox cannot be moved under itself")
    if _mailbox_by_name(conn, account_id, new) is not None:
        raise AlreadyExists(f"mailbox {new!r} exists")
    prefix = mb.name + "/"
    children = conn.execute(
        "SELECT id, name FROM mailboxes WHERE account_id = ? AND substr(name, 1, ?) = ?",
        (account_id, len(prefix), prefix),
    ).fetchall()
    changes: list[Change] = [MailboxChanged(account_id, mb.id, "renamed")]
    conn.execute("UPDATE mailboxes SET name = ? WHERE id = ?", (new, mb.id))
    for child_id, child_name in children:
        child_new = new + "/" + child_name[len(prefix):]
        if _mailbox_by_name(conn, account_id, child_new) is not None:
            raise AlreadyExists(f"mailbox {child_new!r} exists")
        conn.execute("UPDATE mailboxes SET name = ? WHERE id = ?", (child_new, child_id))
        changes.append(MailboxChanged(account_id, child_id, "renamed"))
    return _mailbox_by_id(conn, mb.id), changes


def mailbox_status(conn: Conn, mailbox_id: int) -> MailboxStatus:
    mb = _mailbox_by_id(conn, mailbox_id)
    count, unseen, size = conn.execute(
        "SELECT count(*), coalesce(sum(1 - seen), 0), coalesce(sum(size), 0) FROM messages WHERE mailbox_id = ?",
        (mailbox_id,),
    ).fetchone()
    return MailboxStatus(mailbox=mb, messages=count, unseen=unseen, size=size)


# -- messages ---------------------------------------------------------------------------------


def deliver(conn: Conn, rows: list[common.PreparedDelivery]) -> Result:
    """File every prepared delivery; any error undoes the whole call (the job's SAVEPOINT)."""
    metas: list[MessageMeta] = []
    changes: list[Change] = []
    savedate_us, _ = common.now_parts()
    resolved: dict[tuple[int, str], Mailbox] = {}
    for d in rows:
        mb = resolved.get((d.account_id, d.mailbox))
        if mb is None:
            mb = _mailbox_by_name(conn, d.account_id, d.mailbox) or _mailbox_by_name(conn, d.account_id, INBOX)
            if mb is None:
                raise NotFound(f"no account {d.account_id}")
            resolved[(d.account_id, d.mailbox)] = mb
        uid, modseq = conn.execute(
            "UPDATE mailboxes SET uidnext = uidnext + 1, highestmodseq = highestmodseq + 1 "
            "WHERE id = ? RETURNING uidnext - 1, highestmodseq",
            (mb.id,),
        ).fetchone()
        cur = conn.execute(
            "INSERT INTO messages (mailbox_id, uid, modseq, flags, seen, internaldate_us, internaldate_tz, "
            "savedate_us, size, subject, message_id, from_addr, date_hdr, preview) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                mb.id, uid, modseq, json.dumps(common.flags_sorted(d.flags)), common.SEEN in d.flags,
                d.internaldate_us, d.internaldate_tz, savedate_us, len(d.data), *d.search,
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
        changes.append(MessageAdded(d.account_id, mb.id, uid, modseq))
    return metas, changes


def list_messages(conn: Conn, mailbox_id: int, uid_min: int, uid_max: int | None) -> list[MessageMeta]:
    _mailbox_by_id(conn, mailbox_id)
    rows = conn.execute(
        f"SELECT {_MESSAGE_COLS} FROM messages WHERE mailbox_id = ? AND uid >= ? AND uid <= ? ORDER BY uid",
        (mailbox_id, uid_min, uid_max if uid_max is not None else 2**62),
    )
    return [_meta(r) for r in rows]


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


def store_flags(conn: Conn, mailbox_id: int, uids: list[int], flags: frozenset[str], mode: FlagMode) -> Result:
    mb = _mailbox_by_id(conn, mailbox_id)
    changed: list[tuple[int, frozenset[str]]] = []
    rows: list[Any] = []
    for chunk in _chunks(uids):
        rows += conn.execute(
            f"SELECT {_MESSAGE_COLS} FROM messages WHERE mailbox_id = ? AND uid IN ({','.join('?' * len(chunk))})",
            (mailbox_id, *chunk),
        ).fetchall()
    metas = sorted((_meta(r) for r in rows), key=lambda m: m.uid)
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
        "UPDATE messages SET flags = ?, seen = ?, modseq = ? WHERE id = ?",
        [(json.dumps(common.flags_sorted(f)), common.SEEN in f, modseq, mid) for mid, f in changed],
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
    events: list[Change] = [
        FlagsChanged(mb.account_id, mailbox_id, part, modseq) for part in common.split_uids([m.uid for m in out])
    ]
    return out, events


def expunge(conn: Conn, mailbox_id: int, uids: list[int]) -> Result:
    mb = _mailbox_by_id(conn, mailbox_id)
    removed: list[int] = []
    for chunk in _chunks(uids):
        removed += [
            r[0]
            for r in conn.execute(
                f"DELETE FROM messages WHERE mailbox_id = ? AND uid IN ({','.join('?' * len(chunk))}) RETURNING uid",
                (mailbox_id, *chunk),
            )
        ]
    if not removed:
        return [], []
    removed.sort()
    modseq = conn.execute(
        "UPDATE mailboxes SET highestmodseq = highestmodseq + 1 WHERE id = ? RETURNING highestmodseq", (mailbox_id,)
    ).fetchone()[0]
    conn.executemany(
        "INSERT OR REPLACE INTO expunged (mailbox_id, uid, modseq) VALUES (?, ?, ?)",
        [(mailbox_id, u, modseq) for u in removed],
    )
    return removed, [Expunged(mb.account_id, mailbox_id, part, modseq) for part in common.split_uids(removed)]


def _chunks(uids: list[int], size: int = 500) -> list[list[int]]:
    return [uids[i : i + size] for i in range(0, len(uids), size)]
