"""PostgreSQL-only behaviour: unreachable database → TemporaryStoreError; a lost LISTEN
connection makes subscribers resync and the feed reconnects."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from storage_helpers import PARSED_TYPE, T0, message, parse

from merpati.storage import Delivery, FeedOverflow, MessageAdded, TemporaryStoreError, open_store


async def test_unreachable_postgres_is_a_temporary_error() -> None:
    with pytest.raises(TemporaryStoreError):
        await open_store("postgresql://postgres@127.0.0.1:1/nowhere", parsed_type=PARSED_TYPE)


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_stopped_database_connection_is_a_temporary_error(backend) -> None:
    store = await backend.open(max_size=1)
    await store.add_domain("example.com")
    acc = await store.create_account("bob@example.com", "h")
    admin = await asyncpg.connect(backend.url)
    try:
        # Kill the pool's server session, as a database restart would.
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() AND application_name = 'merpati'"
        )
    finally:
        await admin.close()
    outcomes = []
    for _ in range(2):  # the first call may hit the dead connection; the pool then reconnects
        try:
            outcomes.append(await store.deliver([Delivery(acc.id, message(), parse(message()), T0)]))
        except TemporaryStoreError as exc:
            outcomes.append(exc)
    assert isinstance(outcomes[-1], list)
    assert all(isinstance(o, (list, TemporaryStoreError)) for o in outcomes)


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_lost_listen_connection_forces_resync_and_reconnects(backend) -> None:
    store = await backend.open()
    await store.add_domain("example.com")
    acc = await store.create_account("bob@example.com", "h")
    sub = store.changes.subscribe(acc.id)
    listen_pid = store.changes._conn.get_server_pid()
    admin = await asyncpg.connect(backend.url)
    try:
        await admin.execute("SELECT pg_terminate_backend($1)", listen_pid)
    finally:
        await admin.close()
    with pytest.raises(FeedOverflow):
        await asyncio.wait_for(sub.__anext__(), 10)
    for _ in range(200):  # wait for the feed to reconnect
        conn = store.changes._conn
        if conn is not None and not conn.is_closed() and conn.get_server_pid() != listen_pid:
            break
        await asyncio.sleep(0.05)
    else:
        pytest.fail("change feed did not reconnect")
    [m] = await store.deliver([Delivery(acc.id, message(), parse(message()), T0)])
    while True:
        try:
            change = await asyncio.wait_for(sub.__anext__(), 10)
            break
        except FeedOverflow:  # the reconnect marks subscribers once more (events sent meanwhile are lost)
            continue
    assert change == MessageAdded(acc.id, m.mailbox_id, m.uid, m.modseq)
