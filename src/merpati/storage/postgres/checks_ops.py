"""PostgreSQL units of work of the checks store (``storage.checks_api``): async functions of an
asyncpg connection inside the store's transaction. Token rows are written in ascending token
order so two concurrent learns for one account never deadlock.
"""

from __future__ import annotations

from typing import Any

from merpati.storage.api import NotFound

Conn = Any  # asyncpg.Connection
Result = tuple[Any, list[Any]]


async def greylist_check(conn: Conn, key: str, now: int, delay: int, expire: int) -> Result:
    # Insert-or-lock: concurrent first sightings on two nodes serialise on the row.
    await conn.execute(
        "INSERT INTO greylist (key, first_seen, last_seen, passed) VALUES ($1, $2, $2, $3) "
        "ON CONFLICT (key) DO NOTHING",
        key, now, delay <= 0,
    )
    row = await conn.fetchrow("SELECT first_seen, last_seen, passed FROM greylist WHERE key = $1 FOR UPDATE", key)
    first, last, passed = row[0], row[1], row[2]
    if last < now - expire:
        await conn.execute("UPDATE greylist SET first_seen = $2, last_seen = $2, passed = $3 WHERE key = $1",
                           key, now, delay <= 0)
        return (now, now, delay <= 0), []
    passed = bool(passed) or now - first >= delay
    await conn.execute("UPDATE greylist SET last_seen = $2, passed = $3 WHERE key = $1", key, now, passed)
    return (first, now, passed), []


async def greylist_expire(conn: Conn, before: int) -> Result:
    status = await conn.execute("DELETE FROM greylist WHERE last_seen < $1", before)
    return int(status.split()[-1]), []


async def bayes_totals(conn: Conn, account_id: int) -> tuple[int, int]:
    row = await conn.fetchrow("SELECT spam, ham FROM bayes_totals WHERE account_id = $1", account_id)
    return (row[0], row[1]) if row else (0, 0)


async def bayes_counts(conn: Conn, account_id: int, tokens: list[int]) -> tuple[int, int, dict[int, tuple[int, int]]]:
    spam, ham = await bayes_totals(conn, account_id)
    found: dict[int, tuple[int, int]] = {}
    if tokens and (spam or ham):
        rows = await conn.fetch(
            "SELECT token, spam, ham FROM bayes_tokens WHERE account_id = $1 AND token = ANY($2::bigint[])",
            account_id, tokens,
        )
        found = {r[0]: (r[1], r[2]) for r in rows}
    return spam, ham, found


async def bayes_table(conn: Conn, account_id: int, limit: int) -> tuple[int, int, dict[int, tuple[int, int]]] | None:
    spam, ham = await bayes_totals(conn, account_id)
    rows = await conn.fetch(
        "SELECT token, spam, ham FROM bayes_tokens WHERE account_id = $1 LIMIT $2", account_id, limit + 1
    )
    if len(rows) > limit:
        return None
    return spam, ham, {r[0]: (r[1], r[2]) for r in rows}


async def _apply(conn: Conn, account_id: int, tokens: list[int], spam: int, ham: int) -> None:
    if spam >= 0 and ham >= 0:
        await conn.execute(
            "INSERT INTO bayes_tokens (account_id, token, spam, ham) "
            "SELECT $1, t, $3, $4 FROM unnest($2::bigint[]) AS t ORDER BY t "
            "ON CONFLICT (account_id, token) DO UPDATE SET spam = bayes_tokens.spam + EXCLUDED.spam, "
            "ham = bayes_tokens.ham + EXCLUDED.ham",
            account_id, tokens, spam, ham,
        )
    else:
        await conn.execute(
            "UPDATE bayes_tokens SET spam = greatest(spam + $3, 0), ham = greatest(ham + $4, 0) "
            "WHERE account_id = $1 AND token = ANY($2::bigint[])",
            account_id, tokens, spam, ham,
        )
        await conn.execute("DELETE FROM bayes_tokens WHERE account_id = $1 AND spam = 0 AND ham = 0", account_id)
    await conn.execute(
        "INSERT INTO bayes_totals (account_id, spam, ham) VALUES ($1, greatest($2, 0), greatest($3, 0)) "
        "ON CONFLICT (account_id) DO UPDATE SET spam = greatest(bayes_totals.spam + $2, 0), "
        "ham = greatest(bayes_totals.ham + $3, 0)",
        account_id, spam, ham,
    )


async def bayes_learn(conn: Conn, account_id: int, digest: str, tokens: list[int], spam: bool, now: int) -> Result:
    # Lock the account row first: learns of one account serialise (and the account must exist).
    if await conn.fetchval("SELECT 1 FROM accounts WHERE id = $1 FOR UPDATE", account_id) is None:
        raise NotFound(f"no account {account_id}")
    prev = await conn.fetchval(
        "SELECT spam FROM bayes_learned WHERE account_id = $1 AND digest = $2", account_id, digest
    )
    if prev is not None and bool(prev) == spam:
        return "already", []
    if prev is not None:
        await _apply(conn, account_id, tokens, -1 if prev else 0, 0 if prev else -1)
    await _apply(conn, account_id, tokens, 1 if spam else 0, 0 if spam else 1)
    await conn.execute(
        "INSERT INTO bayes_learned (account_id, digest, spam, learned_at) VALUES ($1, $2, $3, $4) "
        "ON CONFLICT (account_id, digest) DO UPDATE SET spam = EXCLUDED.spam, learned_at = EXCLUDED.learned_at",
        account_id, digest, spam, now,
    )
    return ("relearned" if prev is not None else "learned"), []
