"""The process's \\Recent lower bounds (view.RecentMarks): sessions of one process that see mail
another session of the process already claimed need no store call; the answers stay those of
the store."""

from __future__ import annotations

import asyncio

from merpati.services.imap.view import RecentMarks, recent_above


class CountingStore:
    def __init__(self) -> None:
        self.mark = 0
        self.peeks = 0
        self.claims = 0

    async def peek_recent(self, mailbox_id: int) -> int:
        self.peeks += 1
        return self.mark

    async def claim_recent(self, mailbox_id: int, upto: int) -> int:
        self.claims += 1
        previous, self.mark = self.mark, max(self.mark, upto)
        return previous


def test_one_claim_then_no_store_calls_for_the_other_sessions() -> None:
    async def go() -> None:
        store, marks = CountingStore(), RecentMarks()
        assert await recent_above(store, 7, 5, read_only=False, marks=marks, uidvalidity=1) == (0, 5)
        calls = (store.peeks, store.claims)
        for read_only in (False, True, False):  # other sessions of the process, same new mail
            assert await recent_above(store, 7, 5, read_only=read_only, marks=marks, uidvalidity=1) == (5, 5)
        assert (store.peeks, store.claims) == calls
        # newer mail goes to the store again; another mailbox, or the same id with another
        # UIDVALIDITY (a re-created mailbox), knows nothing yet
        assert await recent_above(store, 7, 6, read_only=False, marks=marks, uidvalidity=1) == (5, 6)
        assert store.claims == 2
        store.mark = 0
        assert await recent_above(store, 7, 3, read_only=False, marks=marks, uidvalidity=2) == (0, 3)
        assert store.claims == 3

    asyncio.run(go())


def test_a_claim_by_another_process_is_learnt_by_a_peek() -> None:
    async def go() -> None:
        store, marks = CountingStore(), RecentMarks()
        store.mark = 9  # claimed elsewhere
        assert await recent_above(store, 1, 9, read_only=False, marks=marks) == (9, 9)
        assert store.claims == 0
        peeks = store.peeks
        assert await recent_above(store, 1, 8, read_only=True, marks=marks) == (9, 9)
        assert store.peeks == peeks

    asyncio.run(go())


def test_sessions_woken_together_share_one_claim() -> None:
    """One delivery wakes every IDLE session of a mailbox at once: one claim, not one each."""

    class SlowClaims(CountingStore):
        async def claim_recent(self, mailbox_id: int, upto: int) -> int:
            await asyncio.sleep(0.01)
            return await super().claim_recent(mailbox_id, upto)

    async def go() -> None:
        store, marks = SlowClaims(), RecentMarks()
        answers = await asyncio.gather(*(
            recent_above(store, 3, 4, read_only=i % 2 == 1, marks=marks, uidvalidity=9) for i in range(20)
        ))
        assert store.claims == 1
        assert sorted(answers)[0] == (0, 4)  # the claimer: UIDs 1..4 are recent for it alone
        assert sorted(answers)[1:] == [(4, 4)] * 19

    asyncio.run(go())


def test_a_failed_claim_costs_only_the_flag() -> None:
    """Sessions that counted on a claim in flight do not wait for it; if it fails, those UIDs
    are recent nowhere in this process, and the next new mail is claimed normally."""

    class FailingOnce(CountingStore):
        async def claim_recent(self, mailbox_id: int, upto: int) -> int:
            await asyncio.sleep(0.01)
            if self.claims == 0:
                self.claims += 1
                raise RuntimeError("store down")
            return await super().claim_recent(mailbox_id, upto)

    async def go() -> None:
        store, marks = FailingOnce(), RecentMarks()
        first = asyncio.ensure_future(recent_above(store, 3, 4, read_only=False, marks=marks))
        await asyncio.sleep(0)
        second = asyncio.ensure_future(recent_above(store, 3, 4, read_only=False, marks=marks))
        results = await asyncio.gather(first, second, return_exceptions=True)
        assert isinstance(results[0], RuntimeError)
        assert results[1] == (4, 4)
        assert await recent_above(store, 3, 5, read_only=False, marks=marks) == (0, 5)

    asyncio.run(go())
