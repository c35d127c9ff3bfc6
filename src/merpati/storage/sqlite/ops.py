"""SQLite units of work: plain functions of a connection, run on the writer or a reader thread.

Write functions return ``(result, changes)``; they run inside the writer's SAVEPOINT, so
raising undoes everything they did. Read functions return the result. Every statement is
parameterised; no caller text is ever formatted into SQL.
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
from merpati.storage.sqlite import messages
from merpati.storage.sqlite import search as search_ops  # noqa: F401  (SEARCH/SORT/THREAD, search_store)
from merpati.storage.sqlite.messages import (  # noqa: F401  (the store's namespace of units of work)
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
from merpati.storage.sqlite.rows import ACCOUNT_COLS as _ACCOUNT_COLS
from merpati.storage.sqlite.rows import MAILBOX_COLS as _MAILBOX_COLS
from merpati.storage.sqlite.rows import Conn, Result, usage
from merpati.storage.sqlite.rows import account as _account
from merpati.storage.sqlite.rows import insert_mailbox as _insert_mailbox
from merpati.storage.sqlite.rows import mailbox as _mailbox
from merpati.storage.sqlite.rows import mailbox_by_id as _mailbox_by_id
from merpati.storage.sqlite.rows import mailbox_by_name as _mailbox_by_name


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
    _insert_mailbox(conn, account_id, INBOX, None, new_account=True)
    for name, use in DEFAULT_SPECIAL_MAILBOXES:
        _insert_mailbox(conn, account_id, name, use, new_account=True)
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


def list_mailboxes(conn: Conn, account_id: int) -> list[Mailbox]:
    rows = conn.execute(
        f"SELECT {_MAILBOX_COLS} FROM mailboxes WHERE account_id = ? ORDER BY name <> 'INBOX', name",
        (account_id,),
    )
    return [_mailbox(r) for r in rows]


def get_mailbox(conn: Conn, account_id: int, name: str) -> Mailbox | None:
    return _mailbox_by_name(conn, account_id, name)


def get_mailbox_by_id(conn: Conn, mailbox_id: int) -> Mailbox | None:
    row = conn.execute(f"SELECT {_MAILBOX_COLS} FROM mailboxes WHERE id = ?", (mailbox_id,)).fetchone()
    return _mailbox(row) if row else None


def _create_superiors(conn: Conn, account_id: int, name: str) -> list[Change]:
    changes: list[Change] = []
    for sup in common.superiors(name):
        if _mailbox_by_name(conn, account_id, sup) is None:
            mb = _insert_mailbox(conn, account_id, sup, None)
            changes.append(MailboxChanged(account_id, mb.id, "created", payload_name(sup)))
    return changes


def create_mailbox(conn: Conn, account_id: int, name: str, special_use: SpecialUse | None) -> Result:
    name = common.new_mailbox_name(name)
    if special_use is not None:
        special_use = SpecialUse(special_use)
    if not conn.execute("SELECT 1 FROM accounts WHERE id = ?", (account_id,)).fetchone():
        raise NotFound(f"no account {account_id}")
    if _mailbox_by_name(conn, account_id, name) is not None:
        raise AlreadyExists(f"mailbox {name!r} exists")
    changes = _create_superiors(conn, account_id, name)
    mb = _insert_mailbox(conn, account_id, name, special_use)
    return mb, changes + [MailboxChanged(account_id, mb.id, "created", payload_name(name))]


def delete_mailbox(conn: Conn, account_id: int, name: str) -> Result:
    """Delete one mailbox and its messages; inferiors stay (see MailStore.delete_mailbox)."""
    mb = _mailbox_by_name(conn, account_id, name)
    if mb is None:
        raise NotFound(f"no mailbox {name!r}")
    if mb.name == INBOX:
        raise InvalidInput("INBOX cannot be deleted")
    if mb.subscribed:  # RFC 9051 §6.3.7: the subscription outlives the mailbox
        conn.execute("INSERT OR IGNORE INTO subscriptions (account_id, name) VALUES (?, ?)", (account_id, mb.name))
    conn.execute("DELETE FROM mailboxes WHERE id = ?", (mb.id,))  # cascades: messages, blobs, expunged
    return None, [MailboxChanged(account_id, mb.id, "deleted", payload_name(mb.name))]


def rename_mailbox(conn: Conn, account_id: int, old: str, new: str) -> Result:
    """RENAME (RFC 9051 §6.3.6); see MailStore.rename_mailbox for the rules."""
    mb = _mailbox_by_name(conn, account_id, old)
    if mb is None:
        raise NotFound(f"no mailbox {old!r}")
    new = common.new_mailbox_name(new)
    if new == mb.name:
        return mb, []
    if _mailbox_by_name(conn, account_id, new) is not None:
        raise AlreadyExists(f"mailbox {new!r} exists")
    if mb.name == INBOX:
        return _rename_inbox(conn, mb, new)
    if new.startswith(mb.name + "/"):
        raise InvalidInput("a mailbox cannot be moved under itself")
    prefix = mb.name + "/"
    renamed = [(mb.id, mb.name, new)] + [
        (cid, cname, new + "/" + cname[len(prefix):])
        for cid, cname in conn.execute(
            "SELECT id, name FROM mailboxes WHERE account_id = ? AND substr(name, 1, ?) = ? ORDER BY id",
            (account_id, len(prefix), prefix),
        ).fetchall()
    ]
    moving = {i for i, _o, _t in renamed}
    for _id, _old, target in renamed[1:]:
        common.normalize_mailbox_name(target)  # still within the length limit
        clash = _mailbox_by_name(conn, account_id, target)
        if clash is not None and clash.id not in moving:
            raise AlreadyExists(f"mailbox {target!r} exists")
    # Two steps, so that no intermediate name collides with one not renamed yet ("\x01" cannot
    # start a stored name: control characters are refused).
    conn.executemany("UPDATE mailboxes SET name = ? WHERE id = ?", [(f"\x01{i}", i) for i, _o, _t in renamed])
    conn.executemany("UPDATE mailboxes SET name = ? WHERE id = ?", [(t, i) for i, _o, t in renamed])
    _rename_subscriptions(conn, account_id, mb.name, new)
    changes = _create_superiors(conn, account_id, new)
    changes += [MailboxChanged(account_id, i, "renamed", payload_name(t)) for i, _o, t in renamed]
    return _mailbox_by_id(conn, mb.id), changes


def _rename_subscriptions(conn: Conn, account_id: int, old: str, new: str) -> None:
    """Subscribed names without a mailbox under ``old/`` follow the rename; a renamed mailbox
    landing on such a name takes the subscription over (the invariant of migration 0003)."""
    prefix = old + "/"
    subs = conn.execute(
        "DELETE FROM subscriptions WHERE account_id = ? AND substr(name, 1, ?) = ? RETURNING name",
        (account_id, len(prefix), prefix),
    ).fetchall()
    for (name,) in subs:
        conn.execute(
            "INSERT OR IGNORE INTO subscriptions (account_id, name) VALUES (?, ?)", (account_id, new + name[len(old):])
        )
    conn.execute(
        "UPDATE mailboxes SET subscribed = 1 WHERE account_id = ? AND name IN "
        "(SELECT name FROM subscriptions WHERE account_id = ?)",
        (account_id, account_id),
    )
    conn.execute(
        "DELETE FROM subscriptions WHERE account_id = ? AND name IN (SELECT name FROM mailboxes WHERE account_id = ?)",
        (account_id, account_id),
    )


def _rename_inbox(conn: Conn, inbox: Mailbox, new: str) -> Result:
    """INBOX → new: a new mailbox receives every INBOX message (new UIDs); INBOX stays, empty."""
    changes = _create_superiors(conn, inbox.account_id, new)
    target = _insert_mailbox(conn, inbox.account_id, new, None)
    changes.append(MailboxChanged(inbox.account_id, target.id, "created", payload_name(new)))
    uids = [r[0] for r in conn.execute("SELECT uid FROM messages WHERE mailbox_id = ? ORDER BY uid", (inbox.id,))]
    if uids:
        _pairs, moved = messages.copy_messages(conn, inbox.id, uids, target.id, True)
        changes += moved
    return _mailbox_by_id(conn, target.id), changes


def mailbox_status(conn: Conn, mailbox_id: int) -> MailboxStatus:
    mb = _mailbox_by_id(conn, mailbox_id)
    count, unseen, size, deleted = conn.execute(
        "SELECT count(*), coalesce(sum(1 - seen), 0), coalesce(sum(size), 0), coalesce(sum(deleted), 0) "
        "FROM messages WHERE mailbox_id = ?",
        (mailbox_id,),
    ).fetchone()
    return MailboxStatus(mailbox=mb, messages=count, unseen=unseen, size=size, deleted=deleted)


# -- \Recent watermark (migration 0008) -------------------------------------------------------


def claim_recent(conn: Conn, mailbox_id: int, upto_uid: int) -> Result:
    """Raise ``recent_uid`` to ``upto_uid`` (never above the last UID given out); return the
    previous value. Atomic: the writer is the database's only writer while it runs."""
    row = conn.execute("SELECT recent_uid, uidnext FROM mailboxes WHERE id = ?", (mailbox_id,)).fetchone()
    if row is None:
        raise NotFound(f"no mailbox {mailbox_id}")
    previous, uidnext = row
    upto = min(upto_uid, uidnext - 1)
    if upto > previous:
        conn.execute("UPDATE mailboxes SET recent_uid = ? WHERE id = ?", (upto, mailbox_id))
    return previous, []


def peek_recent(conn: Conn, mailbox_id: int) -> int:
    row = conn.execute("SELECT recent_uid FROM mailboxes WHERE id = ?", (mailbox_id,)).fetchone()
    if row is None:
        raise NotFound(f"no mailbox {mailbox_id}")
    return int(row[0])


# -- subscriptions ----------------------------------------------------------------------------


def _require_account(conn: Conn, account_id: int) -> None:
    if not conn.execute("SELECT 1 FROM accounts WHERE id = ?", (account_id,)).fetchone():
        raise NotFound(f"no account {account_id}")


def _mailbox_id_of(conn: Conn, account_id: int, name: str) -> int:
    row = conn.execute("SELECT id FROM mailboxes WHERE account_id = ? AND name = ?", (account_id, name)).fetchone()
    return int(row[0]) if row else 0


def subscribe(conn: Conn, account_id: int, name: str) -> Result:
    _require_account(conn, account_id)
    mailbox_id = _mailbox_id_of(conn, account_id, name)
    if mailbox_id:
        cur = conn.execute("UPDATE mailboxes SET subscribed = 1 WHERE id = ? AND subscribed = 0", (mailbox_id,))
    else:
        cur = conn.execute("INSERT OR IGNORE INTO subscriptions (account_id, name) VALUES (?, ?)", (account_id, name))
    if cur.rowcount == 0:
        return None, []
    return None, [MailboxChanged(account_id, mailbox_id, "subscribed", payload_name(name))]


def unsubscribe(conn: Conn, account_id: int, name: str | None) -> Result:
    if name is None:
        raise NotFound("not subscribed")
    mailbox_id = _mailbox_id_of(conn, account_id, name)
    changed = conn.execute(
        "UPDATE mailboxes SET subscribed = 0 WHERE id = ? AND subscribed <> 0", (mailbox_id,)
    ).rowcount
    changed += conn.execute("DELETE FROM subscriptions WHERE account_id = ? AND name = ?", (account_id, name)).rowcount
    if not changed:
        raise NotFound(f"{name!r} is not subscribed")
    return None, [MailboxChanged(account_id, mailbox_id, "unsubscribed", payload_name(name))]


def list_subscriptions(conn: Conn, account_id: int) -> list[str]:
    rows = conn.execute(
        "SELECT name FROM (SELECT name FROM mailboxes WHERE account_id = ? AND subscribed <> 0 "
        "UNION SELECT name FROM subscriptions WHERE account_id = ?) ORDER BY name <> 'INBOX', name",
        (account_id, account_id),
    )
    return [r[0] for r in rows]


# -- quota ------------------------------------------------------------------------------------


def get_quota(conn: Conn, account_id: int) -> QuotaUsage:
    row = conn.execute("SELECT quota_bytes, quota_messages FROM accounts WHERE id = ?", (account_id,)).fetchone()
    if row is None:
        raise NotFound(f"no account {account_id}")
    used_bytes, used_messages = usage(conn, account_id)
    return QuotaUsage(used_bytes, row[0], used_messages, row[1])


def set_quota(conn: Conn, account_id: int, limit_bytes: int | None, limit_messages: int | None) -> Result:
    row = conn.execute(
        "UPDATE accounts SET quota_bytes = coalesce(?, quota_bytes), quota_messages = coalesce(?, quota_messages) "
        "WHERE id = ? RETURNING quota_bytes, quota_messages",
        (limit_bytes, limit_messages, account_id),
    ).fetchone()
    if row is None:
        raise NotFound(f"no account {account_id}")
    used_bytes, used_messages = usage(conn, account_id)
    return QuotaUsage(used_bytes, row[0], used_messages, row[1]), []
