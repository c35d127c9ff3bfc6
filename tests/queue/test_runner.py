"""The runner against a loopback SMTP sink: outcomes, schedule on a fake clock, DSNs, DNS
failures, and hostile remotes (SMTP-14 response injection, silence, garbage)."""

from __future__ import annotations

import asyncio
import email
from email import policy as email_policy

from queue_support import FakeClock, SinkBehaviour, SinkServer, message, self_signed_pair

from merpati.queue.client import ClientSettings, ClientTimeouts, OutboundEnvelope, OutboundRecipient, RcptOutcome, deliver
from merpati.queue.dialer import TcpDialer, client_tls_context
from merpati.queue.policy import RetryPolicy
from merpati.queue.runner import QueueRunner, RunnerSettings
from merpati.resolver import FakeResolver
from merpati.storage.queue_api import MessageKind, NewMessage, NewRecipient

HOST = "127.0.0.1"
FAST = ClientTimeouts(greeting=1.0, command=1.0, data_init=1.0, data_block=1.0, data_done=1.0, tls_handshake=2.0, quit=0.5)


def resolver(**extra) -> FakeResolver:
    records = {
        "b.test": {"MX": [(10, "mx.b.test")]},
        "mx.b.test": {"A": [HOST]},
        "null.test": {"MX": [(0, ".")]},
        "implicit.test": {"A": [HOST]},
    }
    records.update(extra.pop("records", {}))
    return FakeResolver(records, **extra)


def make_runner(store, sink: SinkServer, clock: FakeClock, *, res=None, policy=None, local=None, tls=True) -> QueueRunner:
    return QueueRunner(
        store.queue,
        resolver=res or resolver(),
        policy=policy or RetryPolicy(schedule=(300.0, 600.0), lifetime=3600.0, delay_warning=1200.0),
        settings=RunnerSettings(hostname="mx.a.test", port=sink.port, concurrency=5, lease=30),
        client=ClientSettings(helo_name="mx.a.test", timeouts=FAST, tls_context=client_tls_context() if tls else None),
        dialer=TcpDialer(),
        local=local,
        clock=clock,
        owner="test-node",
    )


async def enqueue(store, clock, qid="Q1", rcpts=("bob@b.test",), sender="alice@a.test", **kw) -> None:
    notify = kw.pop("notify", None)
    await store.queue.enqueue(
        NewMessage(qid, sender, [NewRecipient(r, notify=notify, orcpt=f"rfc822;{r}") for r in rcpts],
                   message(qid), **kw),
        now=clock(),
    )


def dsn_of(data: bytes):
    msg = email.message_from_bytes(data, policy=email_policy.default)
    assert msg.get_content_type() == "multipart/report"
    assert msg.get_param("report-type") == "delivery-status"
    human, status, original = msg.get_payload()
    assert human.get_content_type() == "text/plain"
    assert status.get_content_type() == "message/delivery-status"
    blocks = status.get_payload()
    return msg, blocks[0], blocks[1:], original


async def test_delivers_with_pipelining_and_dsn_parameters(sqlite_backend) -> None:
    store = await sqlite_backend.open()
    clock = FakeClock()
    async with SinkServer(HOST) as sink:
        runner = make_runner(store, sink, clock)
        await enqueue(store, clock, rcpts=("bob@b.test", "carol@b.test"), envid="ENV+1", ret="HDRS",
                      notify=("FAILURE", "DELAY"))
        assert await runner.run_once() == 1
    (got,) = sink.received
    assert got.sender == "alice@a.test" and got.recipients == ["bob@b.test", "carol@b.test"]
    assert got.data == message("Q1")
    assert "RET=HDRS" in got.mail_params and "ENVID=ENV+2B1" in got.mail_params and "SIZE=" in got.mail_params
    assert got.rcpt_params[0] == "NOTIFY=FAILURE,DELAY ORCPT=rfc822;bob@b.test"
    verbs = [c.split()[0].upper() for c in sink.commands]
    assert verbs == ["EHLO", "MAIL", "RCPT", "RCPT", "DATA", "QUIT"]
    assert await store.queue.counts() == {"messages": 0, "items": 0, "recipients": 0}
    assert runner.stats["delivered"] == 2


async def test_permanent_failure_bounces_with_an_rfc3464_report(sqlite_backend) -> None:
    store = await sqlite_backend.open()
    clock = FakeClock()
    behaviour = SinkBehaviour(rcpt=lambda a: "550 5.1.1 <%s>: User unknown" % a if a.startswith("nobody") else "250 2.1.5 Ok")
    async with SinkServer(HOST, behaviour=behaviour) as sink:
        runner = make_runner(store, sink, clock)
        await enqueue(store, clock, rcpts=("nobody@b.test", "bob@b.test"), envid="E1")
        await runner.run_once()
    assert sink.received[0].recipients == ["bob@b.test"]
    (summary,) = await store.queue.list()
    assert summary.sender == "" and summary.kind is MessageKind.DSN
    queued = await store.queue.get(summary.queue_id)
    assert [r.address for r in queued.recipients] == ["alice@a.test"]
    msg, per_message, per_rcpt, original = dsn_of(await store.queue.read_data(summary.queue_id))
    assert msg["To"] == "alice@a.test" and msg["Auto-Submitted"] == "auto-replied"
    assert per_message["Reporting-MTA"] == "dns; mx.a.test" and per_message["Original-Envelope-Id"] == "E1"
    (block,) = per_rcpt
    assert block["Final-Recipient"] == "rfc822; nobody@b.test"
    assert block["Original-Recipient"] == "rfc822; nobody@b.test"
    assert block["Action"] == "failed" and block["Status"] == "5.1.1"
    assert block["Remote-MTA"] == "dns; mx.b.test"
    assert block["Diagnostic-Code"].startswith("smtp; 550 5.1.1 <nobody@b.test>: User unknown")
    assert original.get_content_type() == "text/rfc822-headers"
    assert b"Subject: Q1" in original.get_payload(decode=True) or "Subject: Q1" in str(original.get_payload())


async def test_no_dsn_to_the_null_sender_or_about_a_dsn(sqlite_backend) -> None:
    store = await sqlite_backend.open()
    clock = FakeClock()
    async with SinkServer(HOST, behaviour=SinkBehaviour(rcpt=lambda a: "550 5.1.1 unknown")) as sink:
        runner = make_runner(store, sink, clock)
        await enqueue(store, clock, "Q1", sender="")
        await store.queue.enqueue(
            NewMessage("Q2", "x@a.test", [NewRecipient("bob@b.test")], message("Q2"), kind=MessageKind.DSN), now=clock()
        )
        await enqueue(store, clock, "Q3", notify=("NEVER",))
        assert await runner.run_once() == 3
    assert await store.queue.counts() == {"messages": 0, "items": 0, "recipients": 0}


async def test_temporary_failures_follow_the_schedule_then_deliver(sqlite_backend) -> None:
    store = await sqlite_backend.open()
    clock = FakeClock()
    answers = {"rcpt": "451 4.3.0 try later"}
    behaviour = SinkBehaviour(rcpt=lambda a: answers["rcpt"])
    async with SinkServer(HOST, behaviour=behaviour) as sink:
        runner = make_runner(store, sink, clock)
        await enqueue(store, clock)
        await runner.run_once()
        msg = await store.queue.get("Q1")
        assert msg.items[0].attempts == 1 and msg.items[0].next_attempt == clock() + 300
        assert msg.recipients[0].last_text == "451 4.3.0 try later"
        clock.advance(299)
        assert await runner.run_once() == 0
        clock.advance(1)
        assert await runner.run_once() == 1  # still failing: next in 600 s
        assert (await store.queue.get("Q1")).items[0].next_attempt == clock() + 600
        answers["rcpt"] = "250 2.1.5 Ok"
        clock.advance(600)
        assert await runner.run_once() == 1
    assert len(sink.received) == 1
    assert await store.queue.get("Q1") is None


async def test_delay_warning_then_expiry(sqlite_backend) -> None:
    store = await sqlite_backend.open()
    clock = FakeClock()
    async with SinkServer(HOST, behaviour=SinkBehaviour(rcpt=lambda a: "452 4.2.2 mailbox full")) as sink:
        runner = make_runner(store, sink, clock)  # 300, 600, 600...; warning at 1200; lifetime 3600
        await enqueue(store, clock)
        created = clock()
        notes, seen = [], set()
        for _ in range(20):
            await runner.run_once()
            for s in await store.queue.list():
                if s.kind is MessageKind.DSN and s.queue_id not in seen:
                    seen.add(s.queue_id)
                    notes.append(await store.queue.read_data(s.queue_id))
            msg = await store.queue.get("Q1")
            if msg is None:
                break
            clock.now = msg.items[0].next_attempt
    assert msg is None and clock() == created + 3600
    assert len(notes) == 2
    _, _, (delayed,), _ = dsn_of(notes[0])
    assert delayed["Action"] == "delayed" and delayed["Status"] == "4.2.2" and "Will-Retry-Until" in delayed
    _, _, (failed,), _ = dsn_of(notes[1])
    assert failed["Action"] == "failed" and "delivery time expired" in failed["Diagnostic-Code"]


async def test_dns_temporary_errors_defer_never_bounce(sqlite_backend) -> None:
    store = await sqlite_backend.open()
    clock = FakeClock()
    res = resolver(servfail={"b.test"}, timeout={("mx.c.test", "A"), ("mx.c.test", "AAAA")},
                   records={"c.test": {"MX": [(10, "mx.c.test")]}})
    async with SinkServer(HOST) as sink:
        runner = make_runner(store, sink, clock, res=res)
        await enqueue(store, clock, "Q1", rcpts=("bob@b.test",))
        await enqueue(store, clock, "Q2", rcpts=("carol@c.test",))
        await runner.run_once()
    for qid in ("Q1", "Q2"):
        msg = await store.queue.get(qid)
        assert msg.recipients[0].state.value == "queued" and msg.recipients[0].last_status == "4.4.3"
    assert all(s.kind is MessageKind.MAIL for s in await store.queue.list())


async def test_null_mx_and_nxdomain_bounce_at_once(sqlite_backend) -> None:
    store = await sqlite_backend.open()
    clock = FakeClock()
    async with SinkServer(HOST) as sink:
        runner = make_runner(store, sink, clock)
        await enqueue(store, clock, "Q1", rcpts=("x@null.test",))
        await enqueue(store, clock, "Q2", rcpts=("x@nowhere.test",))
        await runner.run_once()
    dsns = [s for s in await store.queue.list() if s.kind is MessageKind.DSN]
    assert len(dsns) == 2
    statuses = []
    for s in dsns:
        _, _, (block,), _ = dsn_of(await store.queue.read_data(s.queue_id))
        statuses.append(block["Status"])
    assert sorted(statuses) == ["5.1.10", "5.1.2"]


async def test_implicit_mx_and_next_mx_after_a_refused_connection(sqlite_backend) -> None:
    store = await sqlite_backend.open()
    clock = FakeClock()
    res = resolver(records={
        "two.test": {"MX": [(5, "dead.two.test"), (10, "mx.b.test")]},
        "dead.two.test": {"A": ["127.0.0.254"]},  # nothing listens there
    })
    async with SinkServer(HOST) as sink:
        runner = make_runner(store, sink, clock, res=res)
        await enqueue(store, clock, "Q1", rcpts=("a@implicit.test",))
        await enqueue(store, clock, "Q2", rcpts=("b@two.test",))
        await runner.run_once()
    assert sorted(r.recipients[0] for r in sink.received) == ["a@implicit.test", "b@two.test"]


async def test_smtputf8_required_but_not_offered_bounces(sqlite_backend) -> None:
    store = await sqlite_backend.open()
    clock = FakeClock()
    behaviour = SinkBehaviour(extensions=("PIPELINING", "8BITMIME"))
    async with SinkServer(HOST, behaviour=behaviour) as sink:
        runner = make_runner(store, sink, clock)
        await enqueue(store, clock, rcpts=("bjørn@b.test",), smtputf8=True)
        await runner.run_once()
    assert sink.received == []
    (s,) = await store.queue.list()
    _, _, (block,), _ = dsn_of(await store.queue.read_data(s.queue_id))
    assert block["Status"] == "5.6.7"


async def test_local_domains_go_to_the_local_delivery(sqlite_backend) -> None:
    store = await sqlite_backend.open()
    clock = FakeClock()
    filed = []

    class Local:
        async def is_local(self, domain: str) -> bool:
            return domain == "a.test"

        async def deliver(self, sender, recipients, data):
            filed.append((sender, list(recipients)))
            return [RcptOutcome("delivered", 250, "2.0.0", "250 ok")] * len(recipients)

    async with SinkServer(HOST) as sink:
        runner = make_runner(store, sink, clock, local=Local())
        await enqueue(store, clock, rcpts=("me@a.test", "bob@b.test"))
        assert await runner.run_once() == 2
    assert filed == [("alice@a.test", ["me@a.test"])]
    assert [r.recipients for r in sink.received] == [["bob@b.test"]]


# -- hostile remotes ------------------------------------------------------------------------


async def _transaction(sink: SinkServer, *, tls: bool = True):
    conn = await TcpDialer().connect(HOST, sink.port, timeout=2)
    settings = ClientSettings(helo_name="mx.a.test", timeouts=FAST, tls_context=client_tls_context() if tls else None)
    envelope = OutboundEnvelope("alice@a.test", (OutboundRecipient("bob@b.test"),))
    return await deliver(conn, settings, envelope, message("Q1"), server_name="mx.b.test")


async def test_smtp14_response_injection_after_starttls_is_discarded() -> None:
    behaviour = SinkBehaviour(starttls=True, inject_after_starttls=b"250-fake\r\n250 AUTH PLAIN\r\n",
                              extensions=("PIPELINING", "8BITMIME"))
    async with SinkServer(HOST, behaviour=behaviour, cert=self_signed_pair()) as sink:
        result = await _transaction(sink)
    assert result.hop_error is None and result.tls
    assert [o.kind for o in result.outcomes] == ["delivered"]
    assert "AUTH" not in result.extensions and "FAKE" not in result.extensions
    assert result.extensions == {"PIPELINING": "", "8BITMIME": ""}
    verbs = [c.split()[0].upper() for c in sink.commands]
    assert verbs[:4] == ["EHLO", "STARTTLS", "EHLO", "MAIL"]  # a fresh EHLO inside TLS
    assert sink.received[0].tls


async def test_remote_that_never_answers_times_out() -> None:
    for where in ("connect", "EHLO", "DATA-END"):
        async with SinkServer(HOST, behaviour=SinkBehaviour(silent_after=where)) as sink:
            result = await asyncio.wait_for(_transaction(sink), 10)
        assert result.hop_error is not None and "timeout" in result.hop_error.text, where
        assert result.outcomes == []


async def test_remote_answering_garbage_is_a_temporary_failure() -> None:
    for verb in ("EHLO", "MAIL", "DATA"):
        async with SinkServer(HOST, behaviour=SinkBehaviour(garbage_on=verb)) as sink:
            result = await _transaction(sink)
        assert result.hop_error is not None and not result.hop_error.permanent, verb
        assert result.hop_error.status.startswith("4")


async def test_garbage_and_silence_defer_through_the_runner(sqlite_backend) -> None:
    store = await sqlite_backend.open()
    clock = FakeClock()
    async with SinkServer(HOST, behaviour=SinkBehaviour(garbage_on="RCPT")) as sink:
        runner = make_runner(store, sink, clock)
        await enqueue(store, clock)
        await runner.run_once()
    msg = await store.queue.get("Q1")
    assert msg.recipients[0].state.value == "queued" and msg.recipients[0].last_code == 451
    assert not [s for s in await store.queue.list() if s.kind is MessageKind.DSN]
