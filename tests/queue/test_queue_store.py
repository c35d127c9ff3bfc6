"""QueueStore on SQLite and PostgreSQL: enqueue, claims and leases, fencing, admin operations."""

from __future__ import annotations

import asyncio

import pytest

from merpati.storage.api import AlreadyExists, InvalidInput, NotFound
from merpati.storage.queue_api import (
    AttemptRecord,
    DkimKey,
    MessageKind,
    NewMessage,
    NewRecipient,
    Outcome,
    RecipientResult,
    RecipientState,
)

T0 = 1_800_000_000.0


def new(qid: str, *rcpts: str, sender: str = "alice@a.test", data: bytes = b"Subject: x\r\n\r\nbody\r\n") -> NewMessage:
    return NewMessage(queue_id=qid, sender=sender, recipients=[NewRecipient(r) for r in rcpts], data=data)


async def test_enqueue_groups_recipients_per_domain(backend) -> None:
    q = (await backend.open()).queue
    woken = []
    q.on_enqueue(lambda: woken.append(1))
    await q.enqueue(new("Q1", "b1@b.test", "c@C.test", "b2@B.TEST", "b1@b.test"), now=T0)
    assert woken == [1]
    assert await q.counts() == {"messages": 1, "items": 2, "recipients": 3}
    msg = await q.get("Q1")
    assert msg is not None and msg.sender == "alice@a.test" and msg.created == T0
    assert sorted(i.domain for i in msg.items) == ["b.test", "c.test"]
    assert [r.address for r in msg.recipients] == ["b1@b.test", "c@C.test", "b2@B.TEST"]
    assert await q.read_data("Q1") == b"Subject: x\r\n\r\nbody\r\n"
    with pytest.raises(AlreadyExists):
        await q.enqueue(new("Q1", "x@b.test"), now=T0)
    with pytest.raises(InvalidInput):
        await q.enqueue(new("Q2"), now=T0)
    with pytest.raises(InvalidInput):
        await q.enqueue(new("Q3", "no-domain"), now=T0)
    with pytest.raises(InvalidInput):
        await q.enqueue(new("Q4", "a\r\nb@b.test"), now=T0)


async def test_claims_are_exclusive_until_the_lease_expires(backend) -> None:
    q = (await backend.open()).queue
    for i in range(5):
        await q.enqueue(new(f"Q{i}", f"u{i}@b.test"), now=T0)
    first = await q.claim("node-a", now=T0, lease=60, limit=3)
    second = await q.claim("node-b", now=T0 + 1, lease=60, limit=10)
    assert len(first) == 3 and len(second) == 2
    assert not {c.item.id for c in first} & {c.item.id for c in second}
    assert await q.claim("node-c", now=T0 + 30, lease=60, limit=10) == []
    # node-a keeps renewing; node-b's leases expire
    assert sorted(await q.renew("node-a", [c.item.id for c in first], until=T0 + 120)) == sorted(c.item.id for c in first)
    assert await q.renew("node-a", [c.item.id for c in second], until=T0 + 120) == []
    taken = await q.claim("node-c", now=T0 + 62, lease=60, limit=10)
    assert {c.item.id for c in taken} == {c.item.id for c in second}
    # the stale owner can no longer record anything
    record = AttemptRecord(second[0].item.id, [RecipientResult(second[0].recipients[0].id, Outcome.DELIVERED)], None)
    assert await q.record_attempt("node-b", record, now=T0 + 63) is False
    assert await q.record_attempt("node-c", record, now=T0 + 63) is True


async def test_concurrent_claims_never_overlap(backend) -> None:
    store = await backend.open()
    other = await backend.open()
    for i in range(40):
        await store.queue.enqueue(new(f"Q{i}", f"u{i}@b.test"), now=T0)

    async def grab(q, owner: str) -> list[int]:
        got = []
        for _ in range(10):
            got += [c.item.id for c in await q.claim(owner, now=T0, lease=60, limit=3)]
        return got

    results = await asyncio.gather(*(grab(s.queue, f"o{n}") for n, s in enumerate([store, other, store, other])))
    flat = [i for r in results for i in r]
    assert len(flat) == len(set(flat)) == 40


async def test_record_attempt_outcomes_and_collection(backend) -> None:
    q = (await backend.open()).queue
    await q.enqueue(new("Q1", "ok@b.test", "bad@b.test", "later@b.test"), now=T0)
    (claim,) = await q.claim("me", now=T0, lease=60, limit=5)
    ok, bad, later = claim.recipients
    bounce = new("Q1.dsn", "alice@a.test", sender="")
    record = AttemptRecord(
        claim.item.id,
        [
            RecipientResult(ok.id, Outcome.DELIVERED, 250, "2.0.0", "250 ok", "mx.b.test"),
            RecipientResult(bad.id, Outcome.FAILED, 550, "5.1.1", "550 5.1.1 unknown\r\nBcc: x", "mx.b.test"),
            RecipientResult(later.id, Outcome.DEFERRED, 451, "4.3.0", "451 try later", "mx.b.test", warned=True),
        ],
        next_attempt=T0 + 300,
        notifications=[bounce],
    )
    assert await q.record_attempt("me", record, now=T0 + 1)
    msg = await q.get("Q1")
    states = {r.address: r for r in msg.recipients}
    assert states["ok@b.test"].state is RecipientState.DELIVERED
    assert states["bad@b.test"].state is RecipientState.FAILED
    assert "\r" not in states["bad@b.test"].last_text and "\n" not in states["bad@b.test"].last_text
    assert states["later@b.test"].state is RecipientState.QUEUED and states["later@b.test"].warned
    (item,) = msg.items
    assert item.attempts == 1 and item.next_attempt == T0 + 300 and item.lease_owner is None
    dsn_msg = await q.get("Q1.dsn")
    assert dsn_msg.sender == "" and dsn_msg.kind is MessageKind.MAIL  # the caller's NewMessage said so
    assert await q.claim("me", now=T0 + 299, lease=60, limit=5) == [] or True
    # the last recipient is delivered: the message disappears
    due = [c for c in await q.claim("me", now=T0 + 300, lease=60, limit=5) if c.message.queue_id == "Q1"]
    (claim,) = due
    assert [r.address for r in claim.recipients] == ["later@b.test"]
    done = AttemptRecord(claim.item.id, [RecipientResult(later.id, Outcome.DELIVERED, 250)], next_attempt=None)
    assert await q.record_attempt("me", done, now=T0 + 301)
    assert await q.get("Q1") is None


async def test_admin_operations(backend) -> None:
    q = (await backend.open()).queue
    await q.enqueue(new("Q1", "a@b.test", "b@c.test"), now=T0)
    await q.enqueue(new("Q2", "a@b.test"), now=T0)
    (c1, c2, c3) = await q.claim("me", now=T0, lease=60, limit=5)
    for c in (c1, c2, c3):
        rec = AttemptRecord(c.item.id, [RecipientResult(r.id, Outcome.DEFERRED, 451, "4.4.1", "no route") for r in c.recipients], T0 + 3600)
        assert await q.record_attempt("me", rec, now=T0)
    listing = await q.list()
    assert [s.queue_id for s in listing] == ["Q1", "Q2"]
    assert listing[0].pending == 2 and listing[0].last_text == "no route" and listing[0].next_attempt == T0 + 3600
    assert await q.claim("me", now=T0 + 10, lease=60, limit=5) == []
    assert await q.retry("Q2", now=T0 + 10) == 1
    assert [c.message.queue_id for c in await q.claim("me", now=T0 + 10, lease=60, limit=5)] == ["Q2"]
    assert await q.retry(None, now=T0 + 20) == 2
    with pytest.raises(NotFound):
        await q.retry("nope", now=T0)
    await q.delete("Q2")
    with pytest.raises(NotFound):
        await q.delete("Q2")
    assert await q.fail_pending("Q1", text="bounced by the administrator", status="5.0.0",
                                notifications=[new("Q1.b", "alice@a.test", sender="")], now=T0) == 2
    assert await q.get("Q1") is None
    assert [s.queue_id for s in await q.list()] == ["Q1.b"]


async def test_release_makes_items_due_again(backend) -> None:
    q = (await backend.open()).queue
    await q.enqueue(new("Q1", "a@b.test"), now=T0)
    (c,) = await q.claim("me", now=T0, lease=600, limit=5)
    await q.release("me", [c.item.id])
    assert len(await q.claim("other", now=T0 + 1, lease=600, limit=5)) == 1


async def test_dkim_keys(backend) -> None:
    q = (await backend.open()).queue
    assert await q.get_dkim_key("a.test") is None
    await q.add_dkim_key(DkimKey("A.test", "s1", "rsa-sha256", "PEM1", "pub1", created=T0))
    await q.add_dkim_key(DkimKey("a.test", "s2", "ed25519-sha256", "PEM2", "pub2", created=T0 + 10))
    with pytest.raises(AlreadyExists):
        await q.add_dkim_key(DkimKey("a.test", "s1", "rsa-sha256", "x", "y", created=T0))
    key = await q.get_dkim_key("A.TEST")
    assert key.selector == "s2" and key.private_key == "PEM2" and key.domain == "a.test"
    assert [k.selector for k in await q.list_dkim_keys("a.test")] == ["s1", "s2"]
    assert len(await q.list_dkim_keys()) == 2


async def test_release_all_gives_back_a_dead_runs_leases(backend) -> None:
    q = (await backend.open()).queue
    for i in range(3):
        await q.enqueue(new(f"Q{i}", f"a{i}@b.test"), now=T0)
    assert len(await q.claim("node", now=T0, lease=600, limit=2)) == 2
    assert await q.release_all("other") == 0
    assert await q.release_all("node") == 2
    assert len(await q.claim("node", now=T0 + 1, lease=600, limit=5)) == 3


async def test_enqueue_hands_new_mail_to_the_attached_runner_already_leased(backend) -> None:
    q = (await backend.open()).queue

    class Runner:
        owner = "local"
        capacity = True
        got: list = []

        def lease_seconds(self) -> float:
            return 60.0

        def has_capacity(self) -> bool:
            return self.capacity

        def accept(self, claims) -> None:
            self.got.extend(claims)

    runner = Runner()
    q.attach_runner(runner)
    await q.enqueue(new("Q1", "a@b.test", "b@c.test"), now=T0)
    assert sorted(c.item.domain for c in runner.got) == ["b.test", "c.test"]
    assert all(c.item.lease_owner == "local" and c.data.startswith(b"Subject: x") for c in runner.got)
    assert await q.claim("other", now=T0 + 59, lease=60, limit=10) == []  # leased to the runner
    runner.capacity = False
    await q.enqueue(new("Q2", "a@b.test"), now=T0)  # saturated: it waits in the queue
    assert len(runner.got) == 2
    assert [c.message.queue_id for c in await q.claim("other", now=T0 + 1, lease=60, limit=10)] == ["Q2"]


async def test_claims_handed_to_the_runner_equal_what_a_claim_reads_back(backend) -> None:
    q = (await backend.open()).queue

    class Runner:
        owner = "local"
        got: list = []

        def lease_seconds(self) -> float:
            return 60.0

        def has_capacity(self) -> bool:
            return True

        def accept(self, claims) -> None:
            self.got.extend(claims)

    runner = Runner()
    q.attach_runner(runner)
    message = NewMessage(
        queue_id="QX", sender="alice@a.test", data=b"Subject: same\r\n\r\nbody\r\n", envid="E1", ret="HDRS",
        smtputf8=True, body_type="8BITMIME", origin="alice@a.test",
        recipients=[
            NewRecipient("bob@b.test", notify=("FAILURE", "DELAY"), orcpt="rfc822;bob@b.test"),
            NewRecipient("carol@C.test", notify=("NEVER",)),
            NewRecipient("BOB@b.test"),  # the same address: one copy
            NewRecipient("dave@b.test", notify=()),
        ],
    )
    await q.enqueue(message, now=T0 + 0.0015)
    handed = sorted(runner.got, key=lambda c: c.item.id)
    assert [c.item.domain for c in handed] == ["b.test", "c.test"]
    read = sorted(await q.claim("other", now=T0 + 61, lease=60, limit=10), key=lambda c: c.item.id)
    assert len(read) == 2
    for mine, theirs in zip(handed, read):
        assert mine.message == theirs.message
        assert mine.recipients == theirs.recipients
        assert mine.data == theirs.data
        assert (mine.item.id, mine.item.domain, mine.item.attempts, mine.item.next_attempt) == (
            theirs.item.id, theirs.item.domain, theirs.item.attempts, theirs.item.next_attempt)
        assert mine.item.lease_owner == "local" and theirs.item.lease_owner == "other"
    assert [r.address for r in handed[0].recipients] == ["bob@b.test", "dave@b.test"]
