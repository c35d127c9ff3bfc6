"""Changes committed by one process reach the change-feed subscribers of another (SQLite)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from datetime import datetime, timezone
from pathlib import Path

from merpati.storage import MessageAdded, open_store
from merpati.storage.notify.siblings import SiblingFeed

CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from datetime import datetime, timezone
    from merpati.mime import parse_message
    from merpati.storage import Delivery, open_store

    async def main():
        store = await open_store("sqlite:///" + sys.argv[1])
        account = await store.get_account("ann@a.test")
        data = b"Subject: hi\\r\\n\\r\\nbody\\r\\n"
        await store.deliver([Delivery(account_id=account.id, data=data, parsed=parse_message(data),
                                      internaldate=datetime.now(timezone.utc))])
        await store.close()

    asyncio.run(main())
    """
)


def test_a_delivery_in_another_process_reaches_this_process_subscribers(tmp_path: Path) -> None:
    db = tmp_path / "m.db"

    async def go() -> None:
        store = await open_store(f"sqlite:///{db}")
        await store.add_domain("a.test")
        account = await store.create_account("ann@a.test", "x")
        sub = store.changes.subscribe(account.id)
        proc = await asyncio.create_subprocess_exec(sys.executable, "-c", CHILD, str(db))
        assert await proc.wait() == 0
        change = await asyncio.wait_for(sub.__anext__(), 10)
        assert isinstance(change, MessageAdded) and change.uid == 1
        folder = Path(store.changes.folder)  # type: ignore[attr-defined]
        await store.close()
        assert not any(p.suffix == ".sock" for p in folder.iterdir())

    asyncio.run(go())


def test_stale_sockets_are_removed_and_gaps_force_a_resync(tmp_path: Path) -> None:
    async def go() -> None:
        folder = str(tmp_path / "f")
        a, b = SiblingFeed(folder), SiblingFeed(folder)
        await a.start()
        await b.start()
        stale = Path(a.folder) / "999999-dead.sock"
        import socket

        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        s.bind(str(stale))
        s.close()  # bound then closed: the file stays, nobody listens
        sub = b.subscribe(7)
        a.publish_nowait([MessageAdded(account_id=7, mailbox_id=1, uid=5, modseq=9)])
        assert not stale.exists()
        assert await asyncio.wait_for(sub.__anext__(), 5) == MessageAdded(7, 1, 5, 9)
        a._gaps.add(b._path)  # as if a datagram to b had been dropped
        a.publish_nowait([MessageAdded(account_id=7, mailbox_id=1, uid=6, modseq=10)])
        from merpati.storage import FeedOverflow
        import pytest

        with pytest.raises(FeedOverflow):
            await asyncio.wait_for(sub.__anext__(), 5)
        assert (await asyncio.wait_for(sub.__anext__(), 5)).uid == 6
        await a.close()
        await b.close()

    asyncio.run(go())


def test_a_folder_too_long_for_af_unix_moves_to_a_short_private_one(tmp_path: Path) -> None:
    async def go() -> None:
        long = str(tmp_path / ("x" * 90) / "m.db.feed")
        a, b = SiblingFeed(long), SiblingFeed(long)
        await a.start()
        await b.start()
        assert a.folder == b.folder and len(a.folder) < 70
        sub = b.subscribe(1)
        a.publish_nowait([MessageAdded(account_id=1, mailbox_id=1, uid=1, modseq=1)])
        assert (await asyncio.wait_for(sub.__anext__(), 5)).uid == 1
        await a.close()
        await b.close()

    asyncio.run(go())


def test_a_sibling_that_joins_after_a_publish_gets_the_next_one(tmp_path: Path) -> None:
    """The sender reuses its folder listing; a new socket in the folder must still be seen."""
    from merpati.storage.changes import FlagsChanged

    async def go() -> None:
        folder = str(tmp_path / "f")
        a = SiblingFeed(folder)
        await a.start()
        a.publish_nowait([FlagsChanged(account_id=1, mailbox_id=1, uids=(1,), modseq=2)])  # no peers yet
        b = SiblingFeed(folder)
        await b.start()
        sub = b.subscribe(1)
        for uid in (2, 3):  # the second send reuses the listing that the first one refreshed
            a.publish_nowait([FlagsChanged(account_id=1, mailbox_id=1, uids=(uid,), modseq=uid + 1)])
            change = await asyncio.wait_for(sub.__anext__(), 10)
            assert isinstance(change, FlagsChanged) and change.uids == (uid,)
        await b.close()
        a.publish_nowait([FlagsChanged(account_id=1, mailbox_id=1, uids=(4,), modseq=5)])  # b is gone
        assert a._peers() == []
        await a.close()

    asyncio.run(go())


def test_a_send_only_process_binds_nothing_and_still_publishes(tmp_path: Path) -> None:
    """SMTP workers and the CLI subscribe to nothing: no socket of theirs, so the others do
    not encode and send every change to them; what they publish still reaches the others."""
    from merpati.storage.changes import FlagsChanged

    async def go() -> None:
        folder = str(tmp_path / "f")
        main, worker = SiblingFeed(folder), SiblingFeed(folder, receive=False)
        await main.start()
        await worker.start()
        assert [p.name for p in Path(main.folder).iterdir()] == [Path(main._path).name]
        assert main._peers() == []  # nobody to send to
        sub = main.subscribe(1)
        worker.publish_nowait([FlagsChanged(account_id=1, mailbox_id=1, uids=(7,), modseq=8)])
        change = await asyncio.wait_for(sub.__anext__(), 10)
        assert isinstance(change, FlagsChanged) and change.uids == (7,)
        await worker.close()
        await main.close()
        assert not any(Path(main.folder).iterdir())

    asyncio.run(go())
