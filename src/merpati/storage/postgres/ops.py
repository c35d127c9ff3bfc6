"""PostgreSQL units of work: async functions of an asyncpg connection inside a transaction.

Write functions return ``(result, changes)``; the store runs each in one transaction and
queues its changes with ``pg_notify`` in that same transaction. Lock order, everywhere:
counters row → mailbox rows (ascending id) → message rows, so concurrent writers never
deadlock on each other. Every statement is parameterised.
"""

from __future__ import annotations

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

Conn = Any  # asyncpg.Connection
Result = tuple[Any, list[Change]]

_MAILBOX_COLS = "id, account_id, name, uidvalidity, uidnext, highestmodseq, special_use, subscribed"
_MESSAGE_COLS = "id, mailbox_id, uid, modseq, flags, internaldate_us, internaldate_tz, savedate_us, size"
_ACCOUNT_COLS = "id, address, password_hash, quota_bytes, quota_messages"


class Retry(Exception):
    """A concurrent change invalidated what this transaction read; run it again."""


def _account(r: Any) -> Account:
    return Account(id=r[0], address=r[1], password_hash=r[2], quota_bytes=r[3], quota_messages=r[4])


def _mailbox(r: Any) -> Mailbox:
    return Mailbox(
        id=r[0], account_id=r[1], name=r[2], uidvalidity=r[3], uidnext=r[4], highestmodseq=r[5],
        special_use=SpecialUse(r[6]) if r[6] else None, subscribed=bool(r[7]),
    )


def _meta(r: Any) -> MessageMeta:
    return MessageMeta(
        id=r[0], mailbox_id=r[1], uid=r[2], modseq=r[3], flags=frozenset(r[4]),
        internaldate=common.parts_to_dt(r[5], r[6]), savedate=common.parts_to_dt(r[7], 0), size=r[8],
    )


# -- domains ----------------------------------------------------------------------------------


async def add_domain(conn: Conn, name: str) -> Result:
    name = common.normalize_domain(name)
    status = await conn.execute("INSERT INTO domains (name) VALUES ($1) ON CONFLICT (name) DO NOTHING", name)
    if status.endswith(" 0"):
        raise AlreadyExists(f"domain {name} exists")
    return None, []


async def remove_domain(conn: Conn, name: str) -> Result:
    key = common.lookup_domain(name)
    domain_id = await conn.fetchval("SELECT id FROM domains WHERE name = $1 FOR UPDATE", key) if key else None
    if domain_id is None:
        raise NotFound(f"no domain {name!r}")
    rows = await conn.fetch(
        "SELECT a.id, m.id FROM accounts a JOIN mailboxes m ON m.account_id = a.id WHERE a.domain_id = $1",
        domain_id,
    )
    await conn.execute("DELETE FROM domains WHERE id = $1", domain_id)
    return None, [MailboxChanged(r[0], r[1], "deleted") for r in rows]


async def list_domains(conn: Conn) -> list[str]:
    return [r[0] for r in await conn.fetch("SELECT name FROM domains ORDER BY name COLLATE \"C\"")]


async def has_domain(conn: Conn, name: str) -> bool:
    key = common.lookup_domain(name)
    return key is not None and await conn.fetchval("SELECT 1 FROM domains WHERE name = $1", key) is not None


async def _domain_id(conn: Conn, domain: str) -> int:
    # FOR SHARE: a concurrent remove_domain waits for us (or we for it), never half of each.
    domain_id = await conn.fetchval("SELECT id FROM domains WHERE name = $1 FOR SHARE", domain)
    if domain_id is None:
        raise NotFound(f"no domain {domain!r}")
    return int(domain_id)


# -- accounts ---------------------------------------------------------------------------------


async def create_account(conn: Conn, address: str, password_hash: str) -> Result:
    stored, key, domain = common.normalize_address(address)
    if not isinstance(password_hash, str) or "\x00" in password_hash:
        raise InvalidInput("invalid password hash")
    domain_id = await _domain_id(conn, domain)
    row = await conn.fetchrow(
        "INSERT INTO accounts (domain_id, address, address_key, password_hash) VALUES ($1, $2, $3, $4) "
        f"ON CONFLICT (address_key) DO NOTHING RETURNING {_ACCOUNT_COLS}",
        domain_id, stored, key, password_hash,
    )
    if row is None:
        raise AlreadyExists(f"account {stored} exists")
    await _insert_mailbox(conn, row[0], INBOX, None)
    for name, use in DEFAULT_SPECIAL_MAILBOXES:
        await _insert_mailbox(conn, row[0], name, use)
    return _account(row), []


async def _account_row(conn: Conn, address: str, *, lock: bool = False) -> Any:
    key = common.lookup_key(address)
    if key is None:
        return None
    return await conn.fetchrow(
        f"SELECT {_ACCOUNT_COLS} FROM accounts WHERE address_key = $1" + (" FOR UPDATE" if lock else ""), key
    )


async def delete_account(conn: Conn, address: str) -> Result:
    row = await _account_row(conn, address, lock=True)
    if row is None:
        raise NotFound(f"no account {address!r}")
    mbs = await conn.fetch("SELECT id FROM mailboxes WHERE account_id = $1", row[0])
    await conn.execute("DELETE FROM accounts WHERE id = $1", row[0])
    return None, [MailboxChanged(row[0], r[0], "deleted") for r in mbs]


async def get_account(conn: Conn, address: str) -> Account | None:
    row = await _account_row(conn, address)
    return _account(row) if row else None


async def get_account_by_id(conn: Conn, account_id: int) -> Account | None:
    row = await conn.fetchrow(f"SELECT {_ACCOUNT_COLS} FROM accounts WHERE id = $1", account_id)
    return _account(row) if row else None


async def list_accounts(conn: Conn, domain: str | None) -> list[Account]:
    if domain is None:
        rows = await conn.fetch(f"SELECT {_ACCOUNT_COLS} FROM accounts ORDER BY address_key COLLATE \"C\"")
    else:
        rows = await conn.fetch(
            f"SELECT {_ACCOUNT_COLS} FROM accounts WHERE domain_id = "
            "(SELECT id FROM domains WHERE name = $1) ORDER BY address_key COLLATE \"C\"",
            common.lookup_domain(domain),
        )
    return [_account(r) for r in rows]


async def set_password(conn: Conn, address: str, password_hash: str) -> Result:
    if not isinstance(password_hash, str) or "\x00" in password_hash:
        raise InvalidInput("invalid password hash")
    key = common.lookup_key(address)
    status = await conn.execute("UPDATE accounts SET password_hash = $1 WHERE address_key = $2", password_hash, key)
    if key is None or status.endswith(" 0"):
        raise NotFound(f"no account {address!r}")
    return None, []


# -- aliases ----------------------------------------------------------------------------------


async def _alias(conn: Conn, alias_id: int, source: str) -> Alias:
    rows = await conn.fetch("SELECT target FROM alias_targets WHERE alias_id = $1 ORDER BY position", alias_id)
    return Alias(source=source, targets=tuple(r[0] for r in rows))


async def add_alias(conn: Conn, source: str, targets: Sequence[str]) -> Result:
    stored, key, domain = common.normalize_alias_source(source)
    new = common.normalize_targets(targets)
    if not new:
        raise InvalidInput("an alias needs at least one target")
    domain_id = await _domain_id(conn, domain)
    await conn.execute(
        "INSERT INTO aliases (domain_id, source, source_key) VALUES ($1, $2, $3) ON CONFLICT (source_key) DO NOTHING",
        domain_id, stored, key,
    )
    row = await conn.fetchrow("SELECT id, source FROM aliases WHERE source_key = $1 FOR UPDATE", key)
    alias_id = row[0]
    pos = await conn.fetchval("SELECT coalesce(max(position), 0) FROM alias_targets WHERE alias_id = $1", alias_id)
    for target, tkey in new:
        pos += 1
        await conn.execute(
            "INSERT INTO alias_targets (alias_id, position, target, target_key) VALUES ($1, $2, $3, $4) "
            "ON CONFLICT (alias_id, target_key) DO NOTHING",
            alias_id, pos, target, tkey,
        )
    return await _alias(conn, alias_id, row[1]), []


async def remove_alias(conn: Conn, source: str, targets: Sequence[str]) -> Result:
    key = common.lookup_key(source)
    alias_id = await conn.fetchval("SELECT id FROM aliases WHERE source_key = $1 FOR UPDATE", key) if key else None
    if alias_id is None:
        raise NotFound(f"no alias {source!r}")
    if not targets:
        await conn.execute("DELETE FROM aliases WHERE id = $1", alias_id)
        return None, []
    for target, tkey in common.normalize_targets(targets):
        status = await conn.execute("DELETE FROM alias_targets WHERE alias_id = $1 AND target_key = $2", alias_id, tkey)
        if status.endswith(" 0"):
            raise NotFound(f"{target!r} is not a target of {source!r}")
    if await conn.fetchval("SELECT 1 FROM alias_targets WHERE alias_id = $1 LIMIT 1", alias_id) is None:
        await conn.execute("DELETE FROM aliases WHERE id = $1", alias_id)
    return None, []


async def get_alias(conn: Conn, source: str) -> Alias | None:
    key = common.lookup_key(source)
    row = await conn.fetchrow("SELECT id, source FROM aliases WHERE source_key = $1", key) if key else None
    return await _alias(conn, row[0], row[1]) if row else None


async def list_aliases(conn: Conn, domain: str | None) -> list[Alias]:
    if domain is None:
        rows = await conn.fetch("SELECT id, source FROM aliases ORDER BY source_key COLLATE \"C\"")
    else:
        rows = await conn.fetch(
            "SELECT id, source FROM aliases WHERE domain_id = (SELECT id FROM domains WHERE name = $1) "
            "ORDER BY source_key COLLATE \"C\"",
            common.lookup_domain(domain),
        )
    return [await _alias(conn, r[0], r[1]) for r in rows]


# -- mailboxes --------------------------------------------------------------------------------


async def _insert_mailbox(conn: Conn, account_id: int, name: str, use: SpecialUse | None) -> Mailbox:
    uidvalidity = await conn.fetchval(
        "UPDATE counters SET value = GREATEST(value + 1, $1) WHERE name = 'uidvalidity' RETURNING value",
        common.uidvalidity_floor(),
    )
    row = await conn.fetchrow(
        "INSERT INTO mailboxes (account_id, name, uidvalidity, special_use) VALUES ($1, $2, $3, $4) "
        f"ON CONFLICT (account_id, name) DO NOTHING RETURNING {_MAILBOX_COLS}",
        account_id, name, uidvalidity, use.value if use else None,
    )
    if row is None:
        raise AlreadyExists(f"mailbox {name!r} exists")
    return _mailbox(row)


async def _mailbox_by_name(conn: Conn, account_id: int, name: str) -> Mailbox | None:
    norm = common.lookup_mailbox_name(name)
    if norm is None:
        return None
    row = await conn.fetchrow(
        f"SELECT {_MAILBOX_COLS} FROM mailboxes WHERE account_id = $1 AND name = $2", account_id, norm
    )
    return _mailbox(row) if row else None


async def _mailbox_by_id(conn: Conn, mailbox_id: int, *, lock: bool = False) -> Mailbox:
    row = await conn.fetchrow(
        f"SELECT {_MAILBOX_COLS} FROM mailboxes WHERE id = $1" + (" FOR UPDATE" if lock else ""), mailbox_id
    )
    if row is None:
        raise NotFound(f"no mailbox {mailbox_id}")
    return _mailbox(row)


async def list_mailboxes(conn: Conn, account_id: int) -> list[Mailbox]:
    rows = await conn.fetch(
        f"SELECT {_MAILBOX_COLS} FROM mailboxes WHERE account_id = $1 "
        "ORDER BY name <> 'INBOX', name COLLATE \"C\"",
        account_id,
    )
    return [_mailbox(r) for r in rows]


async def get_mailbox(conn: Conn, account_id: int, name: str) -> Mailbox | None:
    return await _mailbox_by_name(conn, account_id, name)


async def create_mailbox(conn: Conn, account_id: int, name: str, special_use: SpecialUse | None) -> Result:
    name = common.normalize_mailbox_name(name)
    if special_use is not None:
        special_use = SpecialUse(special_use)
    if await conn.fetchval("SELECT 1 FROM accounts WHERE id = $1 FOR SHARE", account_id) is None:
        raise NotFound(f"no account {account_id}")
    mb = await _insert_mailbox(conn, account_id, name, special_use)
    return mb, [MailboxChanged(account_id, mb.id, "created")]


async def delete_mailbox(conn: Conn, account_id: int, name: str) -> Result:
    mb = await _mailbox_by_name(conn, account_id, name)
    if mb is None:
        raise NotFound(f"no mailbox {name!r}")
    if mb.name == INBOX:
        raise InvalidInput("INBOX cannot be deleted")
    await conn.execute("DELETE FROM mailboxes WHERE id = $1", mb.id)
    return None, [MailboxChanged(account_id, mb.id, "deleted")]


async def rename_mailbox(conn: Conn, account_id: int, old: str, new: str) -> Result:
    mb = await _mailbox_by_name(conn, account_id, old)
    if mb is None:
        raise NotFound(f"no mailbox {old!r}")
    new = common.normalize_mailbox_name(new)
    if mb.name == INBOX:
        raise InvalidInput("renaming INBOX is not supported")
    if new == mb.name:
        return mb, []
    if new.startswith(mb.name + "/"):
        raise InvalidInput("a mailbox cannot be moved under itself")
    if await _mailbox_by_name(conn, account_id, new) is not None:
        raise AlreadyExists(f"mailbox {new!r} exists")
    prefix = mb.name + "/"
    children = await conn.fetch(
        "SELECT id, name FROM mailboxes WHERE account_id = $1 AND substr(name, 1, $2) = $3 ORDER BY id",
        account_id, len(prefix), prefix,
    )
    await conn.execute("UPDATE mailboxes SET name = $1 WHERE id = $2", new, mb.id)
    changes: list[Change] = [MailboxChanged(account_id, mb.id, "renamed")]
    for child_id, child_name in children:
        child_new = new + "/" + child_name[len(prefix):]
        if await _mailbox_by_name(conn, account_id, child_new) is not None:
            raise AlreadyExists(f"mailbox {child_new!r} exists")
        await conn.execute("UPDATE mailboxes SET name = $1 WHERE id = $2", child_new, child_id)
        changes.append(MailboxChanged(account_id, child_id, "renamed"))
    return await _mailbox_by_id(conn, mb.id), changes


async def mailbox_status(conn: Conn, mailbox_id: int) -> MailboxStatus:
    mb = await _mailbox_by_id(conn, mailbox_id)
    row = await conn.fetchrow(
        "SELECT count(*), count(*) FILTER (WHERE NOT seen), coalesce(sum(size), 0) FROM messages WHERE mailbox_id = $1",
        mailbox_id,
    )
    return MailboxStatus(mailbox=mb, messages=row[0], unseen=row[1], size=int(row[2]))


# -- messages ---------------------------------------------------------------------------------


async def _delivery_target(conn: Conn, account_id: int, name: str) -> Mailbox | None:
    """The named mailbox of the account, or its INBOX when there is no such mailbox."""
    norm = common.lookup_mailbox_name(name) or INBOX
    row = await conn.fetchrow(
        f"SELECT {_MAILBOX_COLS} FROM mailboxes WHERE account_id = $1 AND name IN ($2, 'INBOX') "
        "ORDER BY name = 'INBOX' LIMIT 1",
        account_id, norm,
    )
    return _mailbox(row) if row else None


async def deliver(conn: Conn, rows: list[common.PreparedDelivery]) -> Result:
    # Resolve each target (missing mailbox → INBOX); several mailboxes are locked in id order
    # first (one is locked by its UPDATE below), so concurrent batches cannot deadlock.
    targets: list[Mailbox] = []
    resolved: dict[tuple[int, str], Mailbox] = {}
    for d in rows:
        mb = resolved.get((d.account_id, d.mailbox))
        if mb is None:
            mb = await _delivery_target(conn, d.account_id, d.mailbox)
            if mb is None:
                raise NotFound(f"no account {d.account_id}")
            resolved[(d.account_id, d.mailbox)] = mb
        targets.append(mb)
    ids = sorted({mb.id for mb in targets})
    if len(ids) > 1:
        locked = await conn.fetch("SELECT id FROM mailboxes WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE", ids)
        if len(locked) != len(ids):
            raise Retry()  # a mailbox vanished meanwhile: resolve again
    savedate_us, _ = common.now_parts()
    metas: list[MessageMeta] = []
    changes: list[Change] = []
    for d, mb in zip(rows, targets, strict=True):
        row = await conn.fetchrow(
            "UPDATE mailboxes SET uidnext = uidnext + 1, highestmodseq = highestmodseq + 1 "
            "WHERE id = $1 RETURNING uidnext - 1, highestmodseq",
            mb.id,
        )
        if row is None:
            raise Retry()  # deleted since we resolved it
        uid, modseq = row
        msg_id = await conn.fetchval(
            "WITH m AS (INSERT INTO messages (mailbox_id, uid, modseq, flags, seen, internaldate_us, "
            "internaldate_tz, savedate_us, size, subject, message_id, from_addr, date_hdr, preview) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING id) "
            "INSERT INTO message_blobs (message_id, data, parsed, envelope) SELECT id, $15, $16, $17 FROM m "
            "RETURNING message_id",
            mb.id, uid, modseq, common.flags_sorted(d.flags), common.SEEN in d.flags,
            d.internaldate_us, d.internaldate_tz, savedate_us, len(d.data), *d.search, d.data, d.parsed,
            d.envelope,
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


async def list_messages(conn: Conn, mailbox_id: int, uid_min: int, uid_max: int | None) -> list[MessageMeta]:
    await _mailbox_by_id(conn, mailbox_id)
    rows = await conn.fetch(
        f"SELECT {_MESSAGE_COLS} FROM messages WHERE mailbox_id = $1 AND uid >= $2 AND uid <= $3 ORDER BY uid",
        mailbox_id, uid_min, uid_max if uid_max is not None else 2**62,
    )
    return [_meta(r) for r in rows]


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


async def store_flags(conn: Conn, mailbox_id: int, uids: list[int], flags: frozenset[str], mode: FlagMode) -> Result:
    mb = await _mailbox_by_id(conn, mailbox_id, lock=True)
    rows = await conn.fetch(
        f"SELECT {_MESSAGE_COLS} FROM messages WHERE mailbox_id = $1 AND uid = ANY($2::bigint[]) ORDER BY uid",
        mailbox_id, uids,
    )
    changed = []
    for m in map(_meta, rows):
        new = common.apply_flags(m.flags, flags, mode)
        if new != m.flags:
            changed.append((m, new))
    if not changed:
        return [], []
    modseq = await conn.fetchval(
        "UPDATE mailboxes SET highestmodseq = highestmodseq + 1 WHERE id = $1 RETURNING highestmodseq", mailbox_id
    )
    await conn.executemany(
        "UPDATE messages SET flags = $1, seen = $2, modseq = $3 WHERE id = $4",
        [(common.flags_sorted(f), common.SEEN in f, modseq, m.id) for m, f in changed],
    )
    out = [
        MessageMeta(
            id=m.id, mailbox_id=m.mailbox_id, uid=m.uid, modseq=modseq, flags=f,
            internaldate=m.internaldate, savedate=m.savedate, size=m.size,
        )
        for m, f in changed
    ]
    events: list[Change] = [
        FlagsChanged(mb.account_id, mailbox_id, part, modseq) for part in common.split_uids([m.uid for m in out])
    ]
    return out, events


async def expunge(conn: Conn, mailbox_id: int, uids: list[int]) -> Result:
    mb = await _mailbox_by_id(conn, mailbox_id, lock=True)
    removed = sorted(
        r[0]
        for r in await conn.fetch(
            "DELETE FROM messages WHERE mailbox_id = $1 AND uid = ANY($2::bigint[]) RETURNING uid", mailbox_id, uids
        )
    )
    if not removed:
        return [], []
    modseq = await conn.fetchval(
        "UPDATE mailboxes SET highestmodseq = highestmodseq + 1 WHERE id = $1 RETURNING highestmodseq", mailbox_id
    )
    await conn.execute(
        "INSERT INTO expunged (mailbox_id, uid, modseq) SELECT $1, u, $3 FROM unnest($2::bigint[]) AS u "
        "ON CONFLICT (mailbox_id, uid) DO UPDATE SET modseq = EXCLUDED.modseq",
        mailbox_id, removed, modseq,
    )
    return removed, [Expunged(mb.account_id, mailbox_id, part, modseq) for part in common.split_uids(removed)]
