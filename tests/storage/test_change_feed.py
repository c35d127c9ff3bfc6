"""LocalChangeFeed: per-account fan-out, bounded queues with overflow → resync, closing."""

from __future__ import annotations

import asyncio

import pytest

from merpati.storage import FeedOverflow, MessageAdded
from merpati.storage.changes import Expunged, FlagsChanged, MailboxChanged, change_from_json, change_to_json
from merpati.storage.notify.local import LocalChangeFeed


def _added(account: int, uid: int) -> MessageAdded:
    return MessageAdded(account, 10, uid, uid + 1)


async def test_subscribers_get_only_their_account_in_order() -> None:
    feed = LocalChangeFeed()
    a1, a2, b = feed.subscribe(1), feed.subscribe(1), feed.subscribe(2)
    await feed.publish([_added(1, 1), _added(2, 1), _added(1, 2)])
    for sub in (a1, a2):
        assert [await sub.__anext__(), await sub.__anext__()] == [_added(1, 1), _added(1, 2)]
    assert await b.__anext__() == _added(2, 1)
    assert b.pending() == 0


async def test_waiting_subscriber_wakes_on_publish() -> None:
    feed = LocalChangeFeed()
    sub = feed.subscribe(1)
    task = asyncio.ensure_future(sub.__anext__())
    await asyncio.sleep(0)
    assert not task.done()
    feed.publish_nowait([_added(1, 5)])
    assert await asyncio.wait_for(task, 5) == _added(1, 5)


async def test_slow_subscriber_overflows_then_resyncs_without_growing() -> None:
    feed = LocalChangeFeed(max_pending=3)
    slow, fast = feed.subscribe(1), feed.subscribe(1)
    got_fast = []
    for uid in range(1, 11):
        feed.publish_nowait([_added(1, uid)])
        got_fast.append(await fast.__anext__())
        assert slow.pending() <= 3
    assert [c.uid for c in got_fast] == list(range(1, 11))  # the fast one is unaffected
    with pytest.raises(FeedOverflow):
        await slow.__anext__()
    # after the overflow the subscription carries on with what came after it
    remaining = [await slow.__anext__() for _ in range(slow.pending())]
    assert remaining and remaining[-1] == _added(1, 10)
    feed.publish_nowait([_added(1, 11)])
    assert await slow.__anext__() == _added(1, 11)


async def test_close_unregisters_and_ends_iteration() -> None:
    feed = LocalChangeFeed()
    async with feed.subscribe(1) as sub:
        assert feed.subscriber_count() == 1
    assert feed.subscriber_count() == 0
    feed.publish_nowait([_added(1, 1)])
    with pytest.raises(StopAsyncIteration):
        await sub.__anext__()
    other = feed.subscribe(2)
    waiter = asyncio.ensure_future(other.__anext__())
    await asyncio.sleep(0)
    await feed.close()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(waiter, 5)


def test_changes_round_trip_json() -> None:
    for c in (
        _added(1, 2),
        FlagsChanged(1, 2, (3, 4), 5),
        Expunged(1, 2, (3,), 6),
        MailboxChanged(1, 2, "renamed"),
    ):
        assert change_from_json(change_to_json(c)) == c
