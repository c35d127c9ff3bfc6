"""PostgreSQL units of work of the outbound queue (``storage.queue_api``).

Claims take due, unleased items with ``FOR UPDATE SKIP LOCKED`` inside the same statement
that leases them, so two nodes claiming at once get disjoint sets without waiting on each
other; the lease (``lease_until_ms``) outlives the transaction, so a node that dies mid-attempt
lets its items become due again when the lease expires. Every statement is parameterised.
"""

from __future__ import annotations

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

Conn = Any
Result = tuple[Any, list[Any]]

_MSG_COLS = "id, queue_id, sender, created_ms, size, kind, origin, envid, ret, smtputf8, body_type"
_RCPT_COLS = "id, address, domain, state, notify, orcpt, last_code, last_status, last_text, remote, warned"
_ITEM_COLS = "id, domain, attempts, next_attempt_ms, lease_owner, lease_until_ms"
_DKIM_COLS = "domain, selector, algorithm, private_key, public_key, created_ms, active"
_STATE = {
    Outcome.DELIVERED: RecipientState.DELIVERED.value,
    Outcome.FAILED: RecipientState.FAILED.value,
    Outcome.DEFERRED: RecipientState.QUEUED.value,
}


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


async def insert_message(
    conn: Conn, message: NewMessage, now_ms: int, lease: tuple[str, int] | None = None
) -> tuple[int, list[int], dict[str, int]]:
    """Insert the message, its recipients (one per address) and one item per domain (leased to
    ``lease`` = (owner, until_ms) when given), in three statements whatever the recipient count.
    Returns (message id, recipient ids, item ids)."""
    message_id = await conn.fetchval(
        "INSERT INTO queue_messages (queue_id, kind, sender, origin, envid, ret, smtputf8, body_type, "
        "created_ms, size, data) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) "
        "ON CONFLICT (queue_id) DO NOTHING RETURNING id",
        message.queue_id, MessageKind(message.kind).value, message.sender, message.origin, message.envid,
        message.ret, bool(message.smtputf8), message.body_type, now_ms, len(message.data), bytes(message.data),
    )
    if message_id is None:
        raise AlreadyExists(f"queue id {message.queue_id} exists")
    rcpts = unique_recipients(message)
    rows = await conn.fetch(
        "INSERT INTO queue_recipients (message_id, domain, address, notify, orcpt) "
        "SELECT $1, d, a, n, o FROM unnest($2::text[], $3::text[], $4::text[], $5::text[]) AS t(d, a, n, o) "
        "RETURNING id, address",
        message_id, [d for _, d in rcpts], [r.address for r, _ in rcpts],
        [notify_to_text(r.notify) for r, _ in rcpts], [r.orcpt for r, _ in rcpts],
    )
    by_address = {row[1]: int(row[0]) for row in rows}  # addresses are unique within the message
    domains = list(dict.fromkeys(d for _, d in rcpts))
    owner, until_ms = lease if lease is not None else (None, 0)
    rows = await conn.fetch(
        "INSERT INTO queue_items (message_id, domain, next_attempt_ms, lease_owner, lease_until_ms) "
        "SELECT $1, d, $3, $4, $5 FROM unnest($2::text[]) AS t(d) RETURNING id, domain",
        message_id, domains, now_ms, owner, until_ms,
    )
    return int(message_id), [by_address[r.address] for r, _ in rcpts], {row[1]: int(row[0]) for row in rows}


async def enqueue(conn: Conn, message: NewMessage, now_ms: int) -> Result:
    await insert_message(conn, message, now_ms)
    return message.queue_id, []


async def claim(conn: Conn, owner: str, now_ms: int, until_ms: int, limit: int) -> Result:
    """Lease up to ``limit`` due items: first up to ``fairness_share`` never attempted, then by
    due time. Corrupt items are quarantined instead; returns (claims, [(item id, reason)])."""
    claims: list[Claim] = []
    quarantined: list[tuple[int, str]] = []
    messages: dict[int, Any] = {}
    taken = 0  # quarantined items count too: one claim reads at most ``limit`` items
    for fresh_only, count in ((True, fairness_share(limit)), (False, limit)):
        count = min(count, limit - taken)
        if count <= 0:
            break
        rows = await conn.fetch(  # leased rows are not due any more: the second round skips them
            f"UPDATE queue_items SET lease_owner = $1, lease_until_ms = $2 WHERE id IN ("
            "  SELECT id FROM queue_items WHERE next_attempt_ms <= $3 AND lease_until_ms <= $3 "
            + ("AND attempts = 0 " if fresh_only else "")
            + "  ORDER BY next_attempt_ms, id LIMIT $4 FOR UPDATE SKIP LOCKED) "
            f"RETURNING {_ITEM_COLS}, message_id",
            owner, until_ms, now_ms, count,
        )
        taken += len(rows)
        for row in sorted(rows, key=lambda r: (r[3], r[0])):
            message_id = row[6]
            if message_id not in messages:
                messages[message_id] = await conn.fetchrow(
                    f"SELECT {_MSG_COLS}, data FROM queue_messages WHERE id = $1", message_id
                )
            mrow = messages[message_id]
            rrows = await conn.fetch(
                f"SELECT {_RCPT_COLS} FROM queue_recipients WHERE message_id = $1 AND domain = $2 ORDER BY id",
                message_id, row[1],
            )
            got: Claim | str = "the message row is missing" if mrow is None else checked_claim(
                lambda: (_item(row), _message(mrow), [_recipient(r) for r in rrows], mrow[11])  # noqa: B023
            )
            if isinstance(got, str):
                await _quarantine(conn, row[0], got)
                quarantined.append((row[0], got))
            else:
                claims.append(got)
    return (claims, quarantined), []


async def _quarantine(conn: Conn, item_id: int, reason: str) -> None:
    """Keep the item for a human: leased to nobody alive until year 9999, the reason noted."""
    row = await conn.fetchrow(
        "UPDATE queue_items SET lease_owner = $1, lease_until_ms = $2 WHERE id = $3 RETURNING message_id, domain",
        QUARANTINE_OWNER, QUARANTINE_UNTIL_MS, item_id,
    )
    await conn.execute(
        "UPDATE queue_recipients SET last_text = $1 WHERE message_id = $2 AND domain = $3 "
        "AND state NOT IN ('delivered', 'failed')",
        clean_text(QUARANTINE_PREFIX + reason), row[0], row[1],
    )


async def enqueue_claimed(conn: Conn, message: NewMessage, now_ms: int, owner: str, until_ms: int) -> Result:
    """Enqueue with every item already leased to ``owner`` (the local runner takes it at once)."""
    message_id, recipient_ids, items = await insert_message(conn, message, now_ms, lease=(owner, until_ms))
    return new_claims(message, message_id, now_ms, recipient_ids, items, owner, until_ms), []


async def renew(conn: Conn, owner: str, item_ids: Sequence[int], until_ms: int) -> Result:
    rows = await conn.fetch(
        "UPDATE queue_items SET lease_until_ms = $1 WHERE id = ANY($2::bigint[]) AND lease_owner = $3 RETURNING id",
        until_ms, list(item_ids), owner,
    )
    return [r[0] for r in rows], []


async def release(conn: Conn, owner: str, item_ids: Sequence[int]) -> Result:
    await conn.execute(
        "UPDATE queue_items SET lease_owner = NULL, lease_until_ms = 0 WHERE id = ANY($1::bigint[]) AND lease_owner = $2",
        list(item_ids), owner,
    )
    return None, []


async def release_all(conn: Conn, owner: str) -> Result:
    status = await conn.execute(
        "UPDATE queue_items SET lease_owner = NULL, lease_until_ms = 0 WHERE lease_owner = $1", owner
    )
    return int(status.split()[-1]), []


async def _collect(conn: Conn, message_id: int) -> None:
    if await conn.fetchval("SELECT 1 FROM queue_items WHERE message_id = $1 LIMIT 1", message_id) is None:
        await conn.execute("DELETE FROM queue_messages WHERE id = $1", message_id)


async def record_attempt(conn: Conn, owner: str, record: AttemptRecord, now_ms: int) -> Result:
    row = await conn.fetchrow(
        "SELECT message_id, domain, attempts FROM queue_items WHERE id = $1 AND lease_owner = $2 FOR UPDATE",
        record.item_id, owner,
    )
    if row is None:
        return False, []
    message_id, domain, attempts = row
    if record.results:
        await conn.executemany(
            "UPDATE queue_recipients SET state = $1, last_code = $2, last_status = $3, last_text = $4, remote = $5, "
            "warned = warned OR $6 WHERE id = $7 AND message_id = $8 AND state = 'queued'",
            [
                (
                    _STATE[Outcome(r.outcome)], r.code, r.status, clean_text(r.text), clean_text(r.remote, 255),
                    bool(r.warned), r.recipient_id, message_id,
                )
                for r in record.results
            ],
        )
    pending = await conn.fetchval(
        "SELECT count(*) FROM queue_recipients WHERE message_id = $1 AND domain = $2 AND state = 'queued'",
        message_id, domain,
    )
    if record.next_attempt is None or pending == 0:
        await conn.execute("DELETE FROM queue_items WHERE id = $1", record.item_id)
    else:
        await conn.execute(
            "UPDATE queue_items SET attempts = $1, next_attempt_ms = $2, lease_owner = NULL, lease_until_ms = 0 "
            "WHERE id = $3",
            attempts + (1 if record.count_attempt else 0), int(round(record.next_attempt * 1000)), record.item_id,
        )
    for note in record.notifications:
        await insert_message(conn, note, now_ms)
    await _collect(conn, message_id)
    return True, []


async def get(conn: Conn, queue_id: str) -> QueueMessage | None:
    row = await conn.fetchrow(f"SELECT {_MSG_COLS} FROM queue_messages WHERE queue_id = $1", queue_id)
    if row is None:
        return None
    rcpts = tuple(
        lenient_recipient(r)
        for r in await conn.fetch(f"SELECT {_RCPT_COLS} FROM queue_recipients WHERE message_id = $1 ORDER BY id", row[0])
    )
    items = tuple(
        lenient_item(r)
        for r in await conn.fetch(f"SELECT {_ITEM_COLS} FROM queue_items WHERE message_id = $1 ORDER BY id", row[0])
    )
    return lenient_message(row, rcpts, items)


async def read_data(conn: Conn, queue_id: str) -> bytes:
    data = await conn.fetchval("SELECT data FROM queue_messages WHERE queue_id = $1", queue_id)
    if data is None:
        raise NotFound(f"no queued message {queue_id!r}")
    return bytes(data)


async def list_queue(conn: Conn, limit: int) -> list[QueueSummary]:
    rows = await conn.fetch(
        "SELECT m.queue_id, m.sender, m.created_ms, m.size, m.kind, "
        "(SELECT count(*) FROM queue_recipients r WHERE r.message_id = m.id AND r.state = 'queued'), "
        "(SELECT min(next_attempt_ms) FROM queue_items i WHERE i.message_id = m.id), "
        "(SELECT last_text FROM queue_recipients r WHERE r.message_id = m.id AND r.last_text IS NOT NULL "
        " ORDER BY r.last_text LIKE 'quarantined: %' DESC, r.id DESC LIMIT 1), "
        "(SELECT string_agg(domain, ',') FROM queue_items i WHERE i.message_id = m.id), "
        "EXISTS (SELECT 1 FROM queue_items i WHERE i.message_id = m.id AND i.lease_owner = $1) "
        "FROM queue_messages m ORDER BY m.created_ms, m.id LIMIT $2",
        QUARANTINE_OWNER, limit,
    )
    return [summary(r) for r in rows]


async def retry(conn: Conn, queue_id: str | None, now_ms: int) -> Result:
    if queue_id is None:
        status = await conn.execute(
            "UPDATE queue_items SET next_attempt_ms = $1 WHERE next_attempt_ms > $1", now_ms
        )
        return int(status.split()[-1]), []
    message_id = await conn.fetchval("SELECT id FROM queue_messages WHERE queue_id = $1", queue_id)
    if message_id is None:
        raise NotFound(f"no queued message {queue_id!r}")
    status = await conn.execute("UPDATE queue_items SET next_attempt_ms = $1 WHERE message_id = $2", now_ms, message_id)
    return int(status.split()[-1]), []


async def delete(conn: Conn, queue_id: str) -> Result:
    status = await conn.execute("DELETE FROM queue_messages WHERE queue_id = $1", queue_id)
    if status.split()[-1] == "0":
        raise NotFound(f"no queued message {queue_id!r}")
    return None, []


async def fail_pending(
    conn: Conn, queue_id: str, text: str, status: str, notifications: list[NewMessage], now_ms: int
) -> Result:
    message_id = await conn.fetchval("SELECT id FROM queue_messages WHERE queue_id = $1 FOR UPDATE", queue_id)
    if message_id is None:
        raise NotFound(f"no queued message {queue_id!r}")
    done = await conn.execute(
        "UPDATE queue_recipients SET state = 'failed', last_code = 550, last_status = $1, last_text = $2 "
        "WHERE message_id = $3 AND state = 'queued'",
        status, text, message_id,
    )
    await conn.execute("DELETE FROM queue_items WHERE message_id = $1", message_id)
    for note in notifications:
        await insert_message(conn, note, now_ms)
    await _collect(conn, message_id)
    return int(done.split()[-1]), []


async def counts(conn: Conn) -> dict[str, int]:
    return {
        "messages": await conn.fetchval("SELECT count(*) FROM queue_messages"),
        "items": await conn.fetchval("SELECT count(*) FROM queue_items"),
        "recipients": await conn.fetchval("SELECT count(*) FROM queue_recipients WHERE state = 'queued'"),
    }


async def add_dkim_key(conn: Conn, key: DkimKey) -> Result:
    inserted = await conn.fetchval(
        "INSERT INTO dkim_keys (domain, selector, algorithm, private_key, public_key, created_ms, active) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (domain, selector) DO NOTHING RETURNING id",
        key.domain.lower(), key.selector, key.algorithm, key.private_key, key.public_key,
        int(key.created * 1000), bool(key.active),
    )
    if inserted is None:
        raise AlreadyExists(f"DKIM key {key.selector}._domainkey.{key.domain} exists")
    return None, []


async def get_dkim_key(conn: Conn, domain: str) -> DkimKey | None:
    row = await conn.fetchrow(
        f"SELECT {_DKIM_COLS} FROM dkim_keys WHERE domain = $1 AND active ORDER BY created_ms DESC, id DESC LIMIT 1",
        domain,
    )
    return _dkim(row) if row else None


async def list_dkim_keys(conn: Conn, domain: str | None) -> list[DkimKey]:
    if domain is None:
        rows = await conn.fetch(f"SELECT {_DKIM_COLS} FROM dkim_keys ORDER BY domain, created_ms")
    else:
        rows = await conn.fetch(f"SELECT {_DKIM_COLS} FROM dkim_keys WHERE domain = $1 ORDER BY created_ms", domain)
    return [_dkim(r) for r in rows]
