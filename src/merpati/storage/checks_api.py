"""Storage for the content checks: greylisting triples and the per-account Bayesian tokens.

Theory of operation
-------------------
* ``checks_store(store)`` gives the ``ChecksStore`` of an open ``MailStore`` (SQLite or
  PostgreSQL): the same database, the same units of work (one thread hop or one transaction
  per call), the tables of migration 0006.
* Greylisting: ``greylist_check`` records a sighting of a triple and says whether it may pass,
  in one write transaction, so two nodes (or two MX worker processes) agree: the first sight
  (or the first after ``expire`` of silence) starts the clock (a ``delay`` of 0 passes at once); a sighting at least ``delay``
  after the first passes, and then the triple stays passed while it keeps being seen.
* Bayes: tokens are signed 64-bit digests of words (``delivery.checks.bayes`` makes them);
  per account the store keeps, per token, the number of learned spam and ham messages that
  contained it. ``bayes_learn`` is idempotent per message (its SHA-256): learning the same
  message as the same class again changes nothing, learning it as the other class moves it.
* Times are seconds since the epoch (floats) from the caller's clock; the tables keep ms.
* Errors: ``TemporaryStoreError`` when the database is unavailable; ``NotFound`` when the
  account does not exist (``bayes_learn``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

MAX_TOKENS = 2000  # per message, per call: bounds every statement


@dataclass(frozen=True, slots=True)
class GreylistEntry:
    first_seen: float
    last_seen: float
    passed: bool


@dataclass(frozen=True, slots=True)
class BayesCounts:
    """What classifying one message for one account needs, read in one transaction."""

    spam_messages: int
    ham_messages: int
    tokens: dict[int, tuple[int, int]]  # token → (spam count, ham count); absent tokens unseen


class ChecksStore(Protocol):
    async def greylist_check(self, key: str, *, now: float, delay: float, expire: float) -> GreylistEntry: ...

    async def greylist_expire(self, *, before: float) -> int:
        """Forget triples last seen before ``before``; how many were removed."""
        ...

    async def bayes_totals(self, account_id: int) -> tuple[int, int]:
        """(spam, ham) messages learned for the account."""
        ...

    async def bayes_counts(self, account_id: int, tokens: Sequence[int]) -> BayesCounts: ...

    async def bayes_learn(self, account_id: int, digest: str, tokens: Sequence[int], *, spam: bool, now: float) -> str:
        """Learn one message: "learned", "relearned" (it was learned as the other class) or "already"."""
        ...

    async def bayes_table(self, account_id: int, *, limit: int) -> BayesCounts | None:
        """Every token of the account (for an in-memory copy), or None when it has more than ``limit``."""
        ...


def greylist_key(network: str, sender: str, recipient: str) -> str:
    """The stored key of a triple: a digest, so addresses are not kept in clear text."""
    raw = "\x00".join((network, sender.lower(), recipient.lower())).encode("utf-8", "surrogateescape")
    return hashlib.sha256(raw).hexdigest()[:40]


def message_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def to_ms(t: float) -> int:
    return int(round(t * 1000))


def clean_tokens(tokens: Sequence[int]) -> list[int]:
    out = sorted({int(t) for t in tokens if -(1 << 63) <= int(t) < (1 << 63)})
    return out[:MAX_TOKENS]


class OpsChecksStore:
    """``ChecksStore`` over a backend's ``read``/``write`` units of work and its checks ops module."""

    def __init__(self, ops: Any, read: Callable[..., Any], write: Callable[..., Any]) -> None:
        self._ops = ops
        self._read = read
        self._write = write

    async def greylist_check(self, key: str, *, now: float, delay: float, expire: float) -> GreylistEntry:
        first, last, passed = await self._write(
            self._ops.greylist_check, key, to_ms(now), to_ms(delay), to_ms(expire)
        )
        return GreylistEntry(first / 1000, last / 1000, bool(passed))

    async def greylist_expire(self, *, before: float) -> int:
        return int(await self._write(self._ops.greylist_expire, to_ms(before)))

    async def bayes_totals(self, account_id: int) -> tuple[int, int]:
        spam, ham = await self._read(self._ops.bayes_totals, int(account_id))
        return int(spam), int(ham)

    async def bayes_counts(self, account_id: int, tokens: Sequence[int]) -> BayesCounts:
        spam, ham, found = await self._read(self._ops.bayes_counts, int(account_id), clean_tokens(tokens))
        return BayesCounts(int(spam), int(ham), found)

    async def bayes_table(self, account_id: int, *, limit: int) -> BayesCounts | None:
        found = await self._read(self._ops.bayes_table, int(account_id), int(limit))
        return None if found is None else BayesCounts(int(found[0]), int(found[1]), found[2])

    async def bayes_learn(self, account_id: int, digest: str, tokens: Sequence[int], *, spam: bool, now: float) -> str:
        return str(await self._write(
            self._ops.bayes_learn, int(account_id), str(digest), clean_tokens(tokens), bool(spam), to_ms(now)
        ))


def checks_store(store: Any) -> ChecksStore:
    """The ``ChecksStore`` sharing ``store``'s database (a SqliteStore or a PgStore)."""
    name = type(store).__module__
    if name.startswith("merpati.storage.sqlite"):
        from merpati.storage.sqlite import checks_ops as sqlite_ops

        return OpsChecksStore(sqlite_ops, store._read, store._write)
    if name.startswith("merpati.storage.postgres"):
        from merpati.storage.postgres import checks_ops as pg_ops

        return OpsChecksStore(pg_ops, store._read, store._write)
    inner = getattr(store, "_store", None)  # a wrapper around a real store (tests)
    if inner is not None:
        return checks_store(inner)
    raise TypeError(f"no checks storage for {type(store).__name__}")
