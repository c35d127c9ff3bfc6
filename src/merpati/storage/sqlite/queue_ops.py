"""SQLite units of work of the outbound queue (``storage.queue_api``).

Write functions return ``(result, changes)`` and run inside the writer's transaction (``BEGIN
IMMEDIATE``: one writer per database file, across processes too), so a claim's select and
update cannot interleave with another node's claim. Every statement is parameterised.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from merpati.storage.api import AlreadyExists, NotFound
from merpati.storage.queue_api import (
    QUARANTINE_OWNER,
    QUARANTINE_PREFIX,
    QUARANTINE_UNTIL_MS,
    AttemptRecord,
    Claim,
    DkimKey,
    MessageKind,
    NewMessage,
    Outcome,
    QueueItem,
    QueueMessage,
    QueueRecipient,
    QueueSummary,
    RecipientState,
    clean_text,
    fairness_share,
    from_ms,
    new_claims,
    notify_from_text,
    notify_to_text,
    unique_recipients,
)
from merpati.storage.queue_entries import (
    checked_claim,
    lenient_item,
    lenient_message,
    lenient_recipient,
    lenient_state,
    summary,
)

Conn = sqlite3.Connection
Result = tuple[Any, list[Any]]

_MSG_COLS = "id, queue_id, sender, created_ms, size, kind, origin, envid, ret, smtputf8, body_type"
_RCPT_COLS = "id, address, domain, state, notify, orcpt, last_code, last_status, last_text, remote, warned"
_ITEM_COLS = "id, domain, attempts, next_attempt_ms, lease_owner, lease_until_ms"
_DKIM_COLS = "domain, selector, algorithm, private_key, public_key, created_ms, active"


def _message(row: Any, recipients: tuple[QueueRecipient, ...] = (), items: tuple[QueueItem, ...] = ()) -> QueueMessage:
    return QueueMessage(
        id=row[0], queue_id=row[1], sender=row[2], created=from_ms(row[3]), size=row[4],
        kind=MessageKind(row[5]), origin=row[6], envid=row[7], ret=row[8], smtputf8=bool(row[9]),
        body_type=row[10], recipients=recipients, items=items,
    )


def _recipient(row: Any) -> QueueRecipient:
    return QueueRecipient(
        id=row[0], address=row[1], domain=row[2], state=lenient_state(row[3]),
        notify=notify_from_text(row[4]), orcpt=row[5], last_code=row[6], last_status=row[7],
        last_text=row[8], remote=row[9], warned=bool(row[10]),
    )


def _item(row: Any) -> QueueItem:
    return QueueItem(
        id=row[0], domain=row[1], attempts=row[2], next_attempt=from_ms(row[3]),
        lease_owner=row[4], lease_until=from_ms(row[5]),
    )


def _dkim(row: Any) -> DkimKey:
    return DkimKey(
        domain=row[0], selector=row[1], algorithm=row[2], private_key=row[3], public_key=row[4],
        created=from_ms(row[5]), active=bool(row[6]),
    )


def insert_message(conn: Conn, message: NewMessage, now_ms: int, lease: tuple[str, int] | None = None) -> tuple[int, list[int], dict[str, int]]:
    """Insert the message, its recipients (one per address) and one item per domain (leased to
    ``lease`` = (owner, until_ms) when given). Returns (message id, recipient ids, item ids)."""
    try:
        cur = conn.execute(
            "INSERT INTO queue_messages (queue_id, kind, sender, origin, envid, ret, smtputf8, body_type, "
            "created_ms, size, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                message.queue_id, MessageKind(message.kind).value, message.sender, message.origin, message.envid,
                message.ret, int(message.smtputf8), message.body_type, now_ms, len(message.data), bytes(message.data),
            ),
        )
    except sqlite3.IntegrityError:  # the only constraint a validated message can break: UNIQUE queue_id
        raise AlreadyExists(f"queue id {message.queue_id} exists") from None
    message_id = int(cur.lastrowid or 0)
    recipient_ids: list[int] = []
    items: dict[str, int] = {}
    owner, until_ms = lease if lease is not None else (None, 0)
    for rcpt, domain in unique_recipients(message):
        if domain not in items:
            items[domain] = 0
        cur = conn.execute(
            "INSERT INTO queue_recipients (message_id, domain, address, notify, orcpt) VALUES (?, ?, ?, ?, ?)",
            (message_id, domain, rcpt.address, notify_to_text(rcpt.notify), rcpt.orcpt),
        )
        recipient_ids.append(int(cur.lastrowid or 0))
    for domain in items:
        cur = conn.execute(
            "INSERT INTO queue_items (message_id, domain, next_attempt_ms, lease_owner, lease_until_ms) "
            "VALUES (?, ?, ?, ?, ?)",
            (message_id, domain, now_ms, owner, until_ms),
        )
        items[domain] = int(cur.lastrowid or 0)
    return message_id, recipient_ids, items


def enqueue(conn: Conn, message: NewMessage, now_ms: int) -> Result:
    insert_message(conn, message, now_ms)
    return message.queue_id, []


def claim(conn: Conn, owner: str, now_ms: int, until_ms: int, limit: int) -> Result:
    """Lease up to ``limit`` due items: first up to ``fairness_share`` never attempted, then by
    due time. Corrupt items are quarantined instead; returns (claims, [(item id, reason)])."""
    claims: list[Claim] = []
    quarantined: list[tuple[int, str]] = []
    taken = 0  # quarantined items count too: one claim reads at most ``limit`` items
    for fresh_only, count in ((True, fairness_share(limit)), (False, limit)):
        count = min(count, limit - taken)
        if count <= 0:
            break
        ids = [
            r[0]
            for r in conn.execute(
                "SELECT id FROM queue_items WHERE next_attempt_ms <= ? AND lease_until_ms <= ? "
                + ("AND attempts = 0 " if fresh_only else "")
                + "ORDER BY next_attempt_ms, id LIMIT ?",
                (now_ms, now_ms, count),
            )
        ]
        taken += len(ids)
        for item_id in ids:  # leased items are not due any more: the second round skips them
            conn.execute(
                "UPDATE queue_items SET lease_owner = ?, lease_until_ms = ? WHERE id = ?", (owner, until_ms, item_id)
            )
            got = _load_claim(conn, item_id)
            if isinstance(got, str):
                _quarantine(conn, item_id, got)
                quarantined.append((item_id, got))
            else:
                claims.append(got)
    return (claims, quarantined), []


def _quarantine(conn: Conn, item_id: int, reason: str) -> None:
    """Keep the item for a human: leased to nobody alive until year 9999, the reason noted."""
    conn.execute(
        "UPDATE queue_items SET lease_owner = ?, lease_until_ms = ? WHERE id = ?",
        (QUARANTINE_OWNER, QUARANTINE_UNTIL_MS, item_id),
    )
    conn.execute(
        "UPDATE queue_recipients SET last_text = ? WHERE state NOT IN ('delivered', 'failed') AND "
        "message_id = (SELECT message_id FROM queue_items WHERE id = ?) AND "
        "domain = (SELECT domain FROM queue_items WHERE id = ?)",
        (clean_text(QUARANTINE_PREFIX + reason), item_id, item_id),
    )


def enqueue_claimed(conn: Conn, message: NewMessage, now_ms: int, owner: str, until_ms: int) -> Result:
    """Enqueue with every item already leased to ``owner`` (the local runner takes it at once)."""
    message_id, recipient_ids, items = insert_message(conn, message, now_ms, lease=(owner, until_ms))
    return new_claims(message, message_id, now_ms, recipient_ids, items, owner, until_ms), []


def _load_claim(conn: Conn, item_id: int) -> Claim | str:
    """The claim of one item, or why its rows are corrupt (every recipient of the item is read,
    whatever its state, so an unknown state is seen)."""
    try:
        row = conn.execute(f"SELECT {_ITEM_COLS}, message_id FROM queue_items WHERE id = ?", (item_id,)).fetchone()
        mrow = conn.execute(f"SELECT {_MSG_COLS}, data FROM queue_messages WHERE id = ?", (row[6],)).fetchone()
        rrows = conn.execute(
            f"SELECT {_RCPT_COLS} FROM queue_recipients WHERE message_id = ? AND domain = ? ORDER BY id",
            (row[6], row[1]),
        ).fetchall()
    except sqlite3.OperationalError as exc:
        if "decode" in str(exc).lower():  # TEXT that is not UTF-8
            return "unreadable row (text that is not UTF-8)"
        raise
    if mrow is None:
        return "the message row is missing"
    return checked_claim(lambda: (_item(row), _message(mrow), [_recipient(r) for r in rrows], mrow[11]))


def renew(conn: Conn, owner: str, item_ids: Sequence[int], until_ms: int) -> Result:
    renewed = []
    for item_id in item_ids:
        cur = conn.execute(
            "UPDATE queue_items SET lease_until_ms = ? WHERE id = ? AND lease_owner = ?", (until_ms, item_id, owner)
        )
        if cur.rowcount:
            renewed.append(item_id)
    return renewed, []


def release(conn: Conn, owner: str, item_ids: Sequence[int]) -> Result:
    conn.executemany(
        "UPDATE queue_items SET lease_owner = NULL, lease_until_ms = 0 WHERE id = ? AND lease_owner = ?",
        [(i, owner) for i in item_ids],
    )
    return None, []


def release_all(conn: Conn, owner: str) -> Result:
    cur = conn.execute("UPDATE queue_items SET lease_owner = NULL, lease_until_ms = 0 WHERE lease_owner = ?", (owner,))
    return cur.rowcount, []


def _collect(conn: Conn, message_id: int) -> None:
    """Drop the message once none of its items is left."""
    if conn.execute("SELECT 1 FROM queue_items WHERE message_id = ? LIMIT 1", (message_id,)).fetchone() is None:
        conn.execute("DELETE FROM queue_messages WHERE id = ?", (message_id,))


def _apply_results(conn: Conn, message_id: int, record: AttemptRecord) -> None:
    for r in record.results:
        state = {
            Outcome.DELIVERED: RecipientState.DELIVERED,
            Outcome.FAILED: RecipientState.FAILED,
            Outcome.DEFERRED: RecipientState.QUEUED,
        }[Outcome(r.outcome)]
        conn.execute(
            "UPDATE queue_recipients SET state = ?, last_code = ?, last_status = ?, last_text = ?, remote = ?, "
            "warned = CASE WHEN ? THEN 1 ELSE warned END WHERE id = ? AND message_id = ? AND state = ?",
            (
                state.value, r.code, r.status, clean_text(r.text), clean_text(r.remote, 255), int(r.warned),
                r.recipient_id, message_id, RecipientState.QUEUED.value,
            ),
        )


def record_attempt(conn: Conn, owner: str, record: AttemptRecord, now_ms: int) -> Result:
    row = conn.execute(
        "SELECT message_id, domain, attempts FROM queue_items WHERE id = ? AND lease_owner = ?",
        (record.item_id, owner),
    ).fetchone()
    if row is None:
        return False, []
    message_id, domain, attempts = row
    _apply_results(conn, message_id, record)
    pending = conn.execute(
        "SELECT count(*) FROM queue_recipients WHERE message_id = ? AND domain = ? AND state = ?",
        (message_id, domain, RecipientState.QUEUED.value),
    ).fetchone()[0]
    if record.next_attempt is None or pending == 0:
        conn.execute("DELETE FROM queue_items WHERE id = ?", (record.item_id,))
    else:
        conn.execute(
            "UPDATE queue_items SET attempts = ?, next_attempt_ms = ?, lease_owner = NULL, lease_until_ms = 0 "
            "WHERE id = ?",
            (attempts + (1 if record.count_attempt else 0), int(round(record.next_attempt * 1000)), record.item_id),
        )
    for note in record.notifications:
        insert_message(conn, note, now_ms)
    _collect(conn, message_id)
    return True, []


def _message_row(conn: Conn, queue_id: str) -> Any:
    return conn.execute(f"SELECT {_MSG_COLS} FROM queue_messages WHERE queue_id = ?", (queue_id,)).fetchone()


def get(conn: Conn, queue_id: str) -> QueueMessage | None:
    row = _message_row(conn, queue_id)
    if row is None:
        return None
    rcpts = tuple(
        lenient_recipient(r)
        for r in conn.execute(f"SELECT {_RCPT_COLS} FROM queue_recipients WHERE message_id = ? ORDER BY id", (row[0],))
    )
    items = tuple(
        lenient_item(r)
        for r in conn.execute(f"SELECT {_ITEM_COLS} FROM queue_items WHERE message_id = ? ORDER BY id", (row[0],))
    )
    return lenient_message(row, rcpts, items)


def read_data(conn: Conn, queue_id: str) -> bytes:
    row = conn.execute("SELECT data FROM queue_messages WHERE queue_id = ?", (queue_id,)).fetchone()
    if row is None:
        raise NotFound(f"no queued message {queue_id!r}")
    return bytes(row[0])


def list_queue(conn: Conn, limit: int) -> list[QueueSummary]:
    rows = conn.execute(
        "SELECT m.queue_id, m.sender, m.created_ms, m.size, m.kind, "
        "(SELECT count(*) FROM queue_recipients r WHERE r.message_id = m.id AND r.state = 'queued'), "
        "(SELECT min(next_attempt_ms) FROM queue_items i WHERE i.message_id = m.id), "
        "(SELECT last_text FROM queue_recipients r WHERE r.message_id = m.id AND r.last_text IS NOT NULL "
        " ORDER BY r.last_text LIKE 'quarantined: %' DESC, r.id DESC LIMIT 1), "
        "(SELECT group_concat(domain, ',') FROM queue_items i WHERE i.message_id = m.id), "
        "EXISTS (SELECT 1 FROM queue_items i WHERE i.message_id = m.id AND i.lease_owner = ?) "
        "FROM queue_messages m ORDER BY m.created_ms, m.id LIMIT ?",
        (QUARANTINE_OWNER, limit),
    ).fetchall()
    return [summary(r) for r in rows]


def retry(conn: Conn, queue_id: str | None, now_ms: int) -> Result:
    if queue_id is None:
        cur = conn.execute("UPDATE queue_items SET next_attempt_ms = ? WHERE next_attempt_ms > ?", (now_ms, now_ms))
        return cur.rowcount, []
    row = _message_row(conn, queue_id)
    if row is None:
        raise NotFound(f"no queued message {queue_id!r}")
    cur = conn.execute("UPDATE queue_items SET next_attempt_ms = ? WHERE message_id = ?", (now_ms, row[0]))
    return cur.rowcount, []


def delete(conn: Conn, queue_id: str) -> Result:
    cur = conn.execute("DELETE FROM queue_messages WHERE queue_id = ?", (queue_id,))
    if not cur.rowcount:
        raise NotFound(f"no queued message {queue_id!r}")
    return None, []


def fail_pending(
    conn: Conn, queue_id: str, text: str, status: str, notifications: list[NewMessage], now_ms: int
) -> Result:
    row = _message_row(conn, queue_id)
    if row is None:
        raise NotFound(f"no queued message {queue_id!r}")
    cur = conn.execute(
        "UPDATE queue_recipients SET state = 'failed', last_code = 550, last_status = ?, last_text = ? "
        "WHERE message_id = ? AND state = 'queued'",
        (status, text, row[0]),
    )
    conn.execute("DELETE FROM queue_items WHERE message_id = ?", (row[0],))
    for note in notifications:
        insert_message(conn, note, now_ms)
    _collect(conn, row[0])
    return cur.rowcount, []


def counts(conn: Conn) -> dict[str, int]:
    return {
        "messages": conn.execute("SELECT count(*) FROM queue_messages").fetchone()[0],
        "items": conn.execute("SELECT count(*) FROM queue_items").fetchone()[0],
        "recipients": conn.execute("SELECT count(*) FROM queue_recipients WHERE state = 'queued'").fetchone()[0],
    }


def add_dkim_key(conn: Conn, key: DkimKey) -> Result:
    domain = key.domain.lower()
    if conn.execute("SELECT 1 FROM dkim_keys WHERE domain = ? AND selector = ?", (domain, key.selector)).fetchone():
        raise AlreadyExists(f"DKIM key {key.selector}._domainkey.{domain} exists")
    conn.execute(
        "INSERT INTO dkim_keys (domain, selector, algorithm, private_key, public_key, created_ms, active) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (domain, key.selector, key.algorithm, key.private_key, key.public_key, int(key.created * 1000), int(key.active)),
    )
    return None, []


def get_dkim_key(conn: Conn, domain: str) -> DkimKey | None:
    row = conn.execute(
        f"SELECT {_DKIM_COLS} FROM dkim_keys WHERE domain = ? AND active = 1 ORDER BY created_ms DESC, id DESC LIMIT 1",
        (domain,),
    ).fetchone()
    return _dkim(row) if row else None


def list_dkim_keys(conn: Conn, domain: str | None) -> list[DkimKey]:
    if domain is None:
        rows = conn.execute(f"SELECT {_DKIM_COLS} FROM dkim_keys ORDER BY domain, created_ms")
    else:
        rows = conn.execute(f"SELECT {_DKIM_COLS} FROM dkim_keys WHERE domain = ? ORDER BY created_ms", (domain,))
    return [_dkim(r) for r in rows]
