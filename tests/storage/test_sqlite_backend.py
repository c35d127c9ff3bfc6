"""SQLite-only behaviour: crash durability, lock → TemporaryStoreError, group commit, URLs."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from storage_helpers import PARSED_TYPE, T0, durable_message, message, parse, token_of

from merpati.storage import Delivery, TemporaryStoreError, open_store, sqlite_path_from_url

HERE = Path(__file__).parent


async def _setup(url: str) -> int:
    store = await open_store(url, parsed_type=PARSED_TYPE)
    try:
        await store.add_domain("example.com")
        return (await store.create_account("bob@example.com", "h")).id
    finally:
        await store.close()


@pytest.mark.parametrize("kill_after", [40, 250])
def test_sigkill_mid_delivery_loses_nothing_acknowledged(tmp_path: Path, kill_after: int) -> None:
    url = f"sqlite:///{tmp_path}/db/merpati.db"
    account_id = asyncio.run(_setup(url))
    child = subprocess.Popen(
        [sys.executable, str(HERE / "durability_child.py"), url, str(account_id), "8"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    acknowledged: list[tuple[int, str]] = []
    try:
        assert child.stdout is not None
        for line in child.stdout:
            uid, token = line.split()
            acknowledged.append((int(uid), token))
            if len(acknowledged) >= kill_after:
                break
        else:
            pytest.fail(f"child stopped early: {child.stderr.read() if child.stderr else ''}")
    finally:
        child.send_signal(signal.SIGKILL)
        rest, _ = child.communicate(timeout=30)
    # lines printed before the kill are acknowledged too (only complete lines count)
    for line in rest.split("\n")[:-1]:
        uid, token = line.split()
        acknowledged.append((int(uid), token))
    assert child.returncode == -signal.SIGKILL

    async def check() -> None:
        store = await open_store(url, parsed_type=PARSED_TYPE)
        try:
            inbox = await store.get_mailbox(account_id, "INBOX")
            metas = await store.list_messages(inbox.id)
            tokens = {}
            for m in metas:
                data = await store.read_message(inbox.id, m.uid)
                token = token_of(data)
                assert data == durable_message(token), f"UID {m.uid} half-written"
                assert m.size == len(data)
                assert token not in tokens, f"{token} stored twice"
                tokens[token] = m.uid
                assert (await store.get_parsed(inbox.id, m.uid)).to_json() == parse(data).to_json()
            for uid, token in acknowledged:
                assert tokens.get(token) == uid, f"acknowledged {token} (UID {uid}) lost"
            assert inbox.uidnext > max(tokens.values())
            assert (await store.mailbox_status(inbox.id)).messages == len(metas)
            [again] = await store.deliver([Delivery(account_id, message(), parse(message()), T0)])
            assert again.uid == inbox.uidnext  # the store keeps working
        finally:
            await store.close()

    asyncio.run(check())
    db = sqlite3.connect(sqlite_path_from_url(url))
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert db.execute("PRAGMA foreign_key_check").fetchall() == []
        orphans = db.execute(
            "SELECT count(*) FROM message_blobs b LEFT JOIN messages m ON m.id = b.message_id WHERE m.id IS NULL"
        ).fetchone()[0]
        assert orphans == 0
    finally:
        db.close()


async def test_locked_database_is_a_temporary_error(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/merpati.db"
    store = await open_store(url, parsed_type=PARSED_TYPE, busy_timeout_ms=50)
    try:
        await store.add_domain("example.com")
        acc = await store.create_account("bob@example.com", "h")
        other = sqlite3.connect(sqlite_path_from_url(url), isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        try:
            with pytest.raises(TemporaryStoreError):
                await store.deliver([Delivery(acc.id, message(), parse(message()), T0)])
            with pytest.raises(TemporaryStoreError):
                await store.add_domain("other.example")
        finally:
            other.execute("ROLLBACK")
            other.close()
        [m] = await store.deliver([Delivery(acc.id, message(), parse(message()), T0)])
        assert m.uid == 1  # the failed attempt left nothing behind
        assert await store.list_domains() == ["example.com"]
    finally:
        await store.close()


async def test_concurrent_writes_share_commits(tmp_path: Path) -> None:
    store = await open_store(f"sqlite:///{tmp_path}/m.db", parsed_type=PARSED_TYPE)
    try:
        await store.add_domain("example.com")
        acc = await store.create_account("bob@example.com", "h")
        before = store.stats()
        await asyncio.gather(*(store.deliver([Delivery(acc.id, message(), parse(message()), T0)]) for _ in range(100)))
        after = store.stats()
        assert after["jobs"] - before["jobs"] == 100
        assert after["commits"] - before["commits"] < 100  # group commit happened
    finally:
        await store.close()


async def test_one_failing_job_in_a_batch_fails_alone(tmp_path: Path) -> None:
    store = await open_store(f"sqlite:///{tmp_path}/m.db", parsed_type=PARSED_TYPE)
    try:
        await store.add_domain("example.com")
        acc = await store.create_account("bob@example.com", "h")
        good = [store.deliver([Delivery(acc.id, message(), parse(message()), T0)]) for _ in range(30)]
        bad = [store.deliver([Delivery(acc.id + 99, message(), parse(message()), T0)]) for _ in range(5)]
        results = await asyncio.gather(*good, *bad, return_exceptions=True)
        assert all(isinstance(r, list) for r in results[:30])
        assert all(type(r).__name__ == "NotFound" for r in results[30:])
        inbox = await store.get_mailbox(acc.id, "INBOX")
        assert [m.uid for m in await store.list_messages(inbox.id)] == list(range(1, 31))
    finally:
        await store.close()


def test_sqlite_url_forms(tmp_path: Path) -> None:
    assert sqlite_path_from_url("sqlite:///var/lib/merpati/m.db") == "/var/lib/merpati/m.db"
    assert sqlite_path_from_url("sqlite:////var/lib/merpati/m.db") == "/var/lib/merpati/m.db"
    for bad in ("sqlite://relative.db", "sqlite:///", "sqlite:", "sqlite:relative/m.db", "sqlite:/x.db"):
        with pytest.raises(ValueError):
            sqlite_path_from_url(bad)


async def test_open_store_creates_the_folder(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "merpati.db"
    store = await open_store(f"sqlite:///{target}", parsed_type=PARSED_TYPE)
    await store.close()
    assert target.exists()
    assert os.stat(target.parent).st_mode & 0o777 == 0o700
    with pytest.raises(ValueError):
        await open_store("mysql://nope")


async def test_a_worker_hands_its_deliveries_to_the_main_writer(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/m.db"
    main = await open_store(url, parsed_type=PARSED_TYPE)
    worker = await open_store(url, parsed_type=PARSED_TYPE, receive_changes=False)
    main_open = True
    try:
        await main.add_domain("example.com")
        acc = await main.create_account("bob@example.com", "h")
        await main.serve_relayed_writes()
        worker.relay_writes()
        before_main, before_worker = main.stats(), worker.stats()
        metas = await asyncio.gather(
            *(worker.deliver([Delivery(acc.id, message(), parse(message()), T0)]) for _ in range(20))
        )
        assert sorted(m.uid for [m] in metas) == list(range(1, 21))
        assert main.stats()["jobs"] - before_main["jobs"] == 20  # committed by the main writer
        assert worker.stats() == before_worker
        # errors come back as the store's own exceptions
        with pytest.raises(type(await _not_found(main, acc.id + 99))):
            await worker.deliver([Delivery(acc.id + 99, message(), parse(message()), T0)])
        # the main process gone: the worker commits on its own writer
        await main.close()
        main_open = False
        await asyncio.sleep(0.05)  # the worker sees its link close
        [m] = await worker.deliver([Delivery(acc.id, message(), parse(message()), T0)])
        assert m.uid == 21
        assert worker.stats()["jobs"] == before_worker["jobs"] + 1
    finally:
        await worker.close()
        if main_open:
            await main.close()


async def _not_found(store, account_id: int) -> BaseException:
    try:
        await store.deliver([Delivery(account_id, message(), parse(message()), T0)])
    except Exception as exc:  # noqa: BLE001 - whatever the store raises locally
        return exc
    raise AssertionError("delivery to a missing account succeeded")
