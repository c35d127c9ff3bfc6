"""PostgreSQL units of work: async functions of an asyncpg connection inside a transaction.

Write functions return ``(result, changes)``; the store runs each in one transaction and
queues its changes with ``pg_notify`` in that same transaction. Lock order, everywhere:
account rows (ascending id) → counters row → mailbox rows (ascending id) → message rows, so
concurrent writers never deadlock on each other (see ``rows``). Message units of work live in
``messages``; this module re-exports them, so it is the store's one namespace of units of work. Every statement is parameterised.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from merpati.storage import common
from merpati.storage.api import AlreadyExists, InvalidInput, NotFound
from merpati.storage.changes import Change, MailboxChanged, payload_name
from merpati.storage.models import (
    DEFAULT_SPECIAL_MAILBOXES,
    INBOX,
    Account,
    Alias,
    Mailbox,
    MailboxStatus,
    QuotaUsage,
    SpecialUse,
)
from merpati.storage.postgres import messages
from merpati.storage.postgres import search as search_ops  # noqa: F401  (SEARCH/SORT/THREAD, search_store)
from merpati.storage.postgres.messages import (  # noqa: F401  (the store's namespace of units of work)
    append,
    copy_messages,
    deliver,
    expunge,
    expunged_since,
    list_messages,
    list_messages_changed,
    read_blob,
    read_blobs,
    store_flags,
    store_flags_conditional,
)
from merpati.storage.postgres.rows import ACCOUNT_COLS as _ACCOUNT_COLS
from merpati.storage.postgres.rows import MAILBOX_COLS as _MAILBOX_COLS
from merpati.storage.postgres.rows import Conn, Result, Retry, count_of, usage
from merpati.storage.postgres.rows import account as _account
from merpati.storage.postgres.rows import insert_mailbox as _insert_mailbox
from merpati.storage.postgres.rows import mailbox as _mailbox
from merpati.storage.postgres.rows import mailbox_by_id as _mailbox_by_id
from merpati.storage.postgres.rows import mailbox_by_name as _mailbox_by_name


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
    await _insert_mailbox(conn, row[0], INBOX, None, new_account=True)
    for name, use in DEFAULT_SPECIAL_MAILBOXES:
        await _insert_mailbox(conn, row[0], name, use, new_account=True)
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


async def list_mailboxes(conn: Conn, account_id: int) -> list[Mailbox]:
    rows = await conn.fetch(
        f"SELECT {_MAILBOX_COLS} FROM mailboxes WHERE account_id = $1 "
        "ORDER BY name <> 'INBOX', name COLLATE \"C\"",
        account_id,
    )
    return [_mailbox(r) for r in rows]


async def get_mailbox(conn: Conn, account_id: int, name: str) -> Mailbox | None:
    return await _mailbox_by_name(conn, account_id, name)


async def get_mailbox_by_id(conn: Conn, mailbox_id: int) -> Mailbox | None:
    row = await conn.fetchrow(f"SELECT {_MAILBOX_COLS} FROM mailboxes WHERE id = $1", mailbox_id)
    return _mailbox(row) if row else None


async def _create_superiors(conn: Conn, account_id: int, name: str) -> list[Change]:
    changes: list[Change] = []
    for sup in common.superiors(name):
        if await _mailbox_by_name(conn, account_id, sup) is None:
            mb = await _insert_mailbox(conn, account_id, sup, None)
            changes.append(MailboxChanged(account_id, mb.id, "created", payload_name(sup)))
    return changes


async def create_mailbox(conn: Conn, account_id: int, name: str, special_use: SpecialUse | None) -> Result:
    name = common.new_mailbox_name(name)
    if special_use is not None:
        special_use = SpecialUse(special_use)
    if await conn.fetchval("SELECT 1 FROM accounts WHERE id = $1 FOR SHARE", account_id) is None:
        raise NotFound(f"no account {account_id}")
    if await _mailbox_by_name(conn, account_id, name) is not None:
        raise AlreadyExists(f"mailbox {name!r} exists")
    changes = await _create_superiors(conn, account_id, name)
    mb = await _insert_mailbox(conn, account_id, name, special_use)
    return mb, changes + [MailboxChanged(account_id, mb.id, "created", payload_name(name))]


async def delete_mailbox(conn: Conn, account_id: int, name: str) -> Result:
    """Delete one mailbox and its messages; inferiors stay (see MailStore.delete_mailbox)."""
    mb = await _mailbox_by_name(conn, account_id, name)
    if mb is None:
        raise NotFound(f"no mailbox {name!r}")
    if mb.name == INBOX:
        raise InvalidInput("INBOX cannot be deleted")
    if mb.subscribed:  # RFC 9051 §6.3.7: the subscription outlives the mailbox
        await conn.execute(
            "INSERT INTO subscriptions (account_id, name) VALUES ($1, $2) ON CONFLICT DO NOTHING", account_id, mb.name
        )
    await conn.execute("DELETE FROM mailboxes WHERE id = $1", mb.id)  # cascades: messages, blobs, expunged
    return None, [MailboxChanged(account_id, mb.id, "deleted", payload_name(mb.name))]


async def rename_mailbox(conn: Conn, account_id: int, old: str, new: str) -> Result:
    """RENAME (RFC 9051 §6.3.6); see MailStore.rename_mailbox for the rules."""
    mb = await _mailbox_by_name(conn, account_id, old)
    if mb is None:
        raise NotFound(f"no mailbox {old!r}")
    new = common.new_mailbox_name(new)
    if new == mb.name:
        return mb, []
    if await _mailbox_by_name(conn, account_id, new) is not None:
        raise AlreadyExists(f"mailbox {new!r} exists")
    if mb.name == INBOX:
        return await _rename_inbox(conn, mb, new)
    if new.startswith(mb.name + "/"):
        raise InvalidInput("a mailbox cannot be moved under itself")
    prefix = mb.name + "/"
    rows = await conn.fetch(
        "SELECT id, name FROM mailboxes WHERE account_id = $1 AND (id = $2 OR substr(name, 1, $3) = $4) "
        "ORDER BY id FOR UPDATE",
        account_id, mb.id, len(prefix), prefix,
    )
    renamed = [(r[0], r[1], new if r[0] == mb.id else new + "/" + r[1][len(prefix):]) for r in rows]
    if mb.id not in [r[0] for r in rows]:
        raise Retry()
    moving = {i for i, _o, _t in renamed}
    for _id, _old, target in renamed:
        common.normalize_mailbox_name(target)  # still within the length limit
        clash = await _mailbox_by_name(conn, account_id, target)
        if clash is not None and clash.id not in moving:
            raise AlreadyExists(f"mailbox {target!r} exists")
    # Two steps, so that no intermediate name collides with one not renamed yet ("\x01" cannot
    # start a stored name: control characters are refused).
    await conn.executemany("UPDATE mailboxes SET name = $1 WHERE id = $2", [(f"\x01{i}", i) for i, _o, _t in renamed])
    await conn.executemany("UPDATE mailboxes SET name = $1 WHERE id = $2", [(t, i) for i, _o, t in renamed])
    await _rename_subscriptions(conn, account_id, mb.name, new)
    changes = await _create_superiors(conn, account_id, new)
    changes += [MailboxChanged(account_id, i, "renamed", payload_name(t)) for i, _o, t in renamed]
    return await _mailbox_by_id(conn, mb.id), changes


async def _rename_subscriptions(conn: Conn, account_id: int, old: str, new: str) -> None:
    """Subscribed names without a mailbox under ``old/`` follow the rename; a renamed mailbox
    landing on such a name takes the subscription over (the invariant of migration 0003)."""
    prefix = old + "/"
    await conn.execute(
        "WITH gone AS (DELETE FROM subscriptions WHERE account_id = $1 AND substr(name, 1, $2) = $3 RETURNING name) "
        "INSERT INTO subscriptions (account_id, name) SELECT $1, $4 || substr(name, $5) FROM gone "
        "ON CONFLICT DO NOTHING",
        account_id, len(prefix), prefix, new, len(old) + 1,
    )
    await conn.execute(
        "WITH taken AS (DELETE FROM subscriptions s USING mailboxes m WHERE s.account_id = $1 "
        "AND m.account_id = $1 AND m.name = s.name RETURNING m.id) "
        "UPDATE mailboxes SET subscribed = true WHERE id IN (SELECT id FROM taken)",
        account_id,
    )


async def _rename_inbox(conn: Conn, inbox: Mailbox, new: str) -> Result:
    """INBOX → new: a new mailbox receives every INBOX message (new UIDs); INBOX stays, empty."""
    changes = await _create_superiors(conn, inbox.account_id, new)
    target = await _insert_mailbox(conn, inbox.account_id, new, None)
    changes.append(MailboxChanged(inbox.account_id, target.id, "created", payload_name(new)))
    uids = [r[0] for r in await conn.fetch("SELECT uid FROM messages WHERE mailbox_id = $1 ORDER BY uid", inbox.id)]
    if uids:
        _pairs, moved = await messages.copy_messages(conn, inbox.id, uids, target.id, True)
        changes += moved
    return await _mailbox_by_id(conn, target.id), changes


async def mailbox_status(conn: Conn, mailbox_id: int) -> MailboxStatus:
    mb = await _mailbox_by_id(conn, mailbox_id)
    row = await conn.fetchrow(
        "SELECT count(*), count(*) FILTER (WHERE NOT seen), coalesce(sum(size), 0), count(*) FILTER (WHERE deleted) "
        "FROM messages WHERE mailbox_id = $1",
        mailbox_id,
    )
    return MailboxStatus(mailbox=mb, messages=row[0], unseen=row[1], size=int(row[2]), deleted=row[3])


# -- \Recent watermark (migration 0008) -------------------------------------------------------


async def claim_recent(conn: Conn, mailbox_id: int, upto_uid: int) -> Result:
    """Raise ``recent_uid`` to ``upto_uid`` (never above the last UID given out); return the
    previous value. One statement: the row lock serialises concurrent claims of every node (a
    waiting claim reads the row as the previous one committed it), and nothing is written when
    the watermark is already there. Locks only this mailbox row (the lock order holds)."""
    previous = await conn.fetchval(
        "WITH old AS (SELECT id, recent_uid, least($2, uidnext - 1) AS upto FROM mailboxes WHERE id = $1 FOR UPDATE), "
        "upd AS (UPDATE mailboxes m SET recent_uid = old.upto FROM old WHERE m.id = old.id AND old.upto > old.recent_uid) "
        "SELECT recent_uid FROM old",
        mailbox_id, upto_uid,
    )
    if previous is None:
        raise NotFound(f"no mailbox {mailbox_id}")
    return int(previous), []


async def peek_recent(conn: Conn, mailbox_id: int) -> int:
    previous = await conn.fetchval("SELECT recent_uid FROM mailboxes WHERE id = $1", mailbox_id)
    if previous is None:
        raise NotFound(f"no mailbox {mailbox_id}")
    return int(previous)


# -- subscriptions ----------------------------------------------------------------------------


async def _mailbox_id_of(conn: Conn, account_id: int, name: str) -> int:
    mailbox_id = await conn.fetchval("SELECT id FROM mailboxes WHERE account_id = $1 AND name = $2", account_id, name)
    return int(mailbox_id) if mailbox_id else 0


async def subscribe(conn: Conn, account_id: int, name: str) -> Result:
    if await conn.fetchval("SELECT 1 FROM accounts WHERE id = $1 FOR SHARE", account_id) is None:
        raise NotFound(f"no account {account_id}")
    mailbox_id = await _mailbox_id_of(conn, account_id, name)
    if mailbox_id:
        status = await conn.execute(
            "UPDATE mailboxes SET subscribed = true WHERE id = $1 AND NOT subscribed", mailbox_id
        )
    else:
        status = await conn.execute(
            "INSERT INTO subscriptions (account_id, name) VALUES ($1, $2) ON CONFLICT DO NOTHING", account_id, name
        )
    if count_of(status) == 0:
        return None, []
    return None, [MailboxChanged(account_id, mailbox_id, "subscribed", payload_name(name))]


async def unsubscribe(conn: Conn, account_id: int, name: str | None) -> Result:
    if name is None:
        raise NotFound("not subscribed")
    mailbox_id = await _mailbox_id_of(conn, account_id, name)
    changed = count_of(
        await conn.execute("UPDATE mailboxes SET subscribed = false WHERE id = $1 AND subscribed", mailbox_id)
    )
    changed += count_of(
        await conn.execute("DELETE FROM subscriptions WHERE account_id = $1 AND name = $2", account_id, name)
    )
    if not changed:
        raise NotFound(f"{name!r} is not subscribed")
    return None, [MailboxChanged(account_id, mailbox_id, "unsubscribed", payload_name(name))]


async def list_subscriptions(conn: Conn, account_id: int) -> list[str]:
    rows = await conn.fetch(
        "SELECT name FROM (SELECT name FROM mailboxes WHERE account_id = $1 AND subscribed "
        "UNION SELECT name FROM subscriptions WHERE account_id = $1) s ORDER BY name <> 'INBOX', name COLLATE \"C\"",
        account_id,
    )
    return [r[0] for r in rows]


# -- quota ------------------------------------------------------------------------------------


async def get_quota(conn: Conn, account_id: int) -> QuotaUsage:
    row = await conn.fetchrow("SELECT quota_bytes, quota_messages FROM accounts WHERE id = $1", account_id)
    if row is None:
        raise NotFound(f"no account {account_id}")
    used_bytes, used_messages = await usage(conn, account_id)
    return QuotaUsage(used_bytes, int(row[0]), used_messages, int(row[1]))


async def set_quota(conn: Conn, account_id: int, limit_bytes: int | None, limit_messages: int | None) -> Result:
    row = await conn.fetchrow(
        "UPDATE accounts SET quota_bytes = coalesce($1, quota_bytes), quota_messages = coalesce($2, quota_messages) "
        "WHERE id = $3 RETURNING quota_bytes, quota_messages",
        limit_bytes, limit_messages, account_id,
    )
    if row is None:
        raise NotFound(f"no account {account_id}")
    used_bytes, used_messages = await usage(conn, account_id)
    return QuotaUsage(used_bytes, int(row[0]), used_messages, int(row[1])), []
