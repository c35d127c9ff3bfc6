"""SQLite units of work of the checks store (``storage.checks_api``): functions of a connection.

Write functions return ``(result, changes)`` (never any change events: nothing here is
mailbox state) and run inside the writer's SAVEPOINT; read functions return the result.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from merpati.storage.api import NotFound

Conn = sqlite3.Connection
Result = tuple[Any, list[Any]]


def greylist_check(conn: Conn, key: str, now: int, delay: int, expire: int) -> Result:
    row = conn.execute("SELECT first_seen, last_seen, passed FROM greylist WHERE key = ?", (key,)).fetchone()
    if row is None or row[1] < now - expire:
        conn.execute(
            "INSERT OR REPLACE INTO greylist (key, first_seen, last_seen, passed) VALUES (?, ?, ?, ?)",
            (key, now, now, int(delay <= 0)),
        )
        return (now, now, delay <= 0), []
    first, _last, passed = row
    passed = bool(passed) or now - first >= delay
    conn.execute("UPDATE greylist SET last_seen = ?, passed = ? WHERE key = ?", (now, int(passed), key))
    return (first, now, passed), []


def greylist_expire(conn: Conn, before: int) -> Result:
    cur = conn.execute("DELETE FROM greylist WHERE last_seen < ?", (before,))
    return cur.rowcount, []


def bayes_totals(conn: Conn, account_id: int) -> tuple[int, int]:
    row = conn.execute("SELECT spam, ham FROM bayes_totals WHERE account_id = ?", (account_id,)).fetchone()
    return (row[0], row[1]) if row else (0, 0)


def bayes_counts(conn: Conn, account_id: int, tokens: list[int]) -> tuple[int, int, dict[int, tuple[int, int]]]:
    spam, ham = bayes_totals(conn, account_id)
    found: dict[int, tuple[int, int]] = {}
    if tokens and (spam or ham):
        marks = ",".join("?" * len(tokens))
        for token, s, h in conn.execute(
            f"SELECT token, spam, ham FROM bayes_tokens WHERE account_id = ? AND token IN ({marks})",
            (account_id, *tokens),
        ):
            found[token] = (s, h)
    return spam, ham, found


def bayes_table(conn: Conn, account_id: int, limit: int) -> tuple[int, int, dict[int, tuple[int, int]]] | None:
    spam, ham = bayes_totals(conn, account_id)
    rows = conn.execute(
        "SELECT token, spam, ham FROM bayes_tokens WHERE account_id = ? LIMIT ?", (account_id, limit + 1)
    ).fetchall()
    if len(rows) > limit:
        return None
    return spam, ham, {t: (s, h) for t, s, h in rows}


def _apply(conn: Conn, account_id: int, tokens: list[int], spam: int, ham: int) -> None:
    if spam >= 0 and ham >= 0:
        conn.executemany(
            "INSERT INTO bayes_tokens (account_id, token, spam, ham) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (account_id, token) DO UPDATE SET spam = spam + excluded.spam, ham = ham + excluded.ham",
            [(account_id, t, spam, ham) for t in tokens],
        )
    else:
        conn.executemany(
            "UPDATE bayes_tokens SET spam = max(spam + ?, 0), ham = max(ham + ?, 0) WHERE account_id = ? AND token = ?",
            [(spam, ham, account_id, t) for t in tokens],
        )
        conn.execute("DELETE FROM bayes_tokens WHERE account_id = ? AND spam = 0 AND ham = 0", (account_id,))
    conn.execute(
        "INSERT INTO bayes_totals (account_id, spam, ham) VALUES (?, max(?, 0), max(?, 0)) "
        "ON CONFLICT (account_id) DO UPDATE SET spam = max(spam + ?, 0), ham = max(ham + ?, 0)",
        (account_id, spam, ham, spam, ham),
    )


def bayes_learn(conn: Conn, account_id: int, digest: str, tokens: list[int], spam: bool, now: int) -> Result:
    if conn.execute("SELECT 1 FROM accounts WHERE id = ?", (account_id,)).fetchone() is None:
        raise NotFound(f"no account {account_id}")
    row = conn.execute(
        "SELECT spam FROM bayes_learned WHERE account_id = ? AND digest = ?", (account_id, digest)
    ).fetchone()
    if row is not None and bool(row[0]) == spam:
        return "already", []
    if row is not None:
        _apply(conn, account_id, tokens, -1 if row[0] else 0, 0 if row[0] else -1)
    _apply(conn, account_id, tokens, 1 if spam else 0, 0 if spam else 1)
    conn.execute(
        "INSERT OR REPLACE INTO bayes_learned (account_id, digest, spam, learned_at) VALUES (?, ?, ?, ?)",
        (account_id, digest, int(spam), now),
    )
    return ("relearned" if row is not None else "learned"), []
