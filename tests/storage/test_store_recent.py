"""The IMAP4rev1 \\Recent watermark (``claim_recent`` / ``peek_recent``, migration 0008) on SQLite
and PostgreSQL: each UID is handed out once, across store instances on one database (processes,
nodes) and reopenings; an upgraded database makes no old mail recent."""

from __future__ import annotations

import asyncio
import random

import pytest
from storage_helpers import PARSED_TYPE, T0, message, parse

from merpati.storage import INBOX, Delivery, InvalidInput, NotFound, open_store
from merpati.storage.migrations import load_migrations


async def _setup(store, n: int):
    if not await store.has_domain("example.com"):
        await store.add_domain("example.com")
    acc = await store.create_account("bob@example.com", "h")
    if n:
        await store.deliver([Delivery(acc.id, message(f"m{i}"), parse(message(f"m{i}")), T0) for i in range(n)])
    return acc, await store.get_mailbox(acc.id, INBOX)


async def test_claim_returns_previous_watermark_and_only_raises_it(store):
    acc, inbox = await _setup(store, 3)
    assert await store.peek_recent(inbox.id) == 0  # a new mailbox: everything is recent once
    assert await store.claim_recent(inbox.id, 2) == 0
    assert await store.peek_recent(inbox.id) == 2
    assert await store.claim_recent(inbox.id, 1) == 2  # never lowered
    assert await store.claim_recent(inbox.id, 0) == 2
    assert await store.peek_recent(inbox.id) == 2
    assert await store.claim_recent(inbox.id, 3) == 2
    assert await store.claim_recent(inbox.id, 3) == 3
    # never above the last UID given out: mail not yet delivered stays recent for someone
    assert await store.claim_recent(inbox.id, 10**6) == 3
    assert await store.peek_recent(inbox.id) == 3
    [m] = await store.deliver([Delivery(acc.id, message("new"), parse(message("new")), T0)])
    assert m.uid == 4 and await store.peek_recent(inbox.id) == 3
    assert await store.claim_recent(inbox.id, 4) == 3
    # per mailbox
    other = await store.create_mailbox(acc.id, "Other")
    assert await store.peek_recent(other.id) == 0
    assert await store.claim_recent(other.id, 5) == 0 and await store.peek_recent(other.id) == 0


async def test_unknown_mailbox_and_bad_uid(store):
    _acc, inbox = await _setup(store, 0)
    with pytest.raises(NotFound):
        await store.claim_recent(inbox.id + 1000, 1)
    with pytest.raises(NotFound):
        await store.peek_recent(inbox.id + 1000)
    with pytest.raises(InvalidInput):
        await store.claim_recent(inbox.id, -1)


async def test_watermark_survives_reopening(backend):
    first = await backend.open()
    _acc, inbox = await _setup(first, 4)
    assert await first.claim_recent(inbox.id, 3) == 0
    await first.close()
    backend.opened.remove(first)
    second = await backend.open()
    assert await second.peek_recent(inbox.id) == 3
    assert await second.claim_recent(inbox.id, 4) == 3


async def test_two_stores_racing_claims_hand_out_every_uid_once(backend):
    n = 40
    one = await backend.open()
    two = await backend.open()
    _acc, inbox = await _setup(one, n)
    handed: list[int] = []
    rng = random.Random(7)

    async def claimer(store, targets: list[int]) -> None:
        for upto in targets:
            previous = await store.claim_recent(inbox.id, upto)
            handed.extend(range(previous + 1, upto + 1))

    tasks = []
    for store in (one, two, one, two, one, two):
        targets = sorted(rng.sample(range(1, n + 1), 12)) + [n]
        tasks.append(claimer(store, targets))
    await asyncio.gather(*tasks)
    assert sorted(handed) == list(range(1, n + 1))  # every UID exactly once
    assert await one.peek_recent(inbox.id) == await two.peek_recent(inbox.id) == n


def _runner_module(backend_name):
    if backend_name == "sqlite":
        from merpati.storage.sqlite import workers

        return workers
    from merpati.storage.postgres import store

    return store


async def test_upgrade_to_0008_makes_no_old_mail_recent(backend, monkeypatch):
    runner = _runner_module(backend.name)
    real = runner.load_migrations
    monkeypatch.setattr(runner, "load_migrations", lambda name: real(name)[:7])
    old = await open_store(backend.url, parsed_type=PARSED_TYPE)
    try:
        assert old.schema_version == 7
        acc, inbox = await _setup(old, 3)
        empty = await old.get_mailbox(acc.id, "Sent")
    finally:
        await old.close()
    monkeypatch.undo()
    new = await backend.open()
    assert new.schema_version == load_migrations(backend.name)[-1].version >= 8
    assert await new.peek_recent(inbox.id) == 3  # uidnext - 1
    assert await new.peek_recent(empty.id) == 0
    [m] = await new.deliver([Delivery(acc.id, message("new"), parse(message("new")), T0)])
    assert await new.claim_recent(inbox.id, m.uid) == 3
