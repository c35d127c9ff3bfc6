"""The check pipeline: stages, delayed refusals, failure policy, per-mailbox verdicts, headers."""

from __future__ import annotations

import asyncio

from merpati.delivery.checks import CheckUnavailable, accept, add_headers, add_score, quarantine, reject, tempfail
from merpati.delivery.checks.pipeline import CheckPipeline, Policy
from merpati.delivery.checks.verdict import read_verdict
from merpati.delivery.envelope import ClientInfo, LocalRecipient

CLIENT = ClientInfo("192.0.2.9", 4000)
HELLO = ClientInfo("192.0.2.9", 4000, "client.example", True)
ALICE = LocalRecipient(1, "alice@ours.test", "alice@ours.test")
BOB = LocalRecipient(2, "bob@ours.test", "bob@ours.test")
MSG = b"From: x@example.org\r\nSubject: hi\r\n\r\nhello\r\n"


class Fixed:
    def __init__(self, name: str, **stages) -> None:
        self.name = name
        self.calls: list[str] = []
        for stage, value in stages.items():
            async def fn(ctx, *args, _v=value, _s=stage):
                self.calls.append(_s)
                if isinstance(_v, BaseException):
                    raise _v
                return _v(ctx, *args) if callable(_v) else _v
            setattr(self, stage, fn)


def pipeline(*checks, **policy) -> CheckPipeline:
    return CheckPipeline(list(checks), Policy(hostname="mx.ours.test", **policy))


async def session_through_rcpt(p: CheckPipeline, *rcpts: LocalRecipient):
    s = p.session(CLIENT)
    await s.connect()
    await s.hello(HELLO)
    assert await s.mail("x@example.org") is None
    for r in rcpts:
        assert await s.rcpt(r.rcpt, [r]) is None
    return s


async def test_a_clean_message_goes_to_the_inbox_with_both_headers() -> None:
    s = await session_through_rcpt(pipeline(), ALICE)
    out = await s.data(MSG, [ALICE])
    assert out.refusal is None
    filing = out.filings[1]
    assert filing.mailbox is None and filing.verdict == "inbox"
    text = filing.headers.decode()
    assert text.startswith("X-Spam-Status: No, score=0.00 required=6.00 tests=none\r\n")
    assert "Merpati-Verdict: inbox; score=0.00; junk-at=6.00; reject-at=15.00\r\n" in text
    assert read_verdict(filing.headers + b"\r\n") == "inbox"


async def test_scores_add_up_across_stages_and_name_each_check() -> None:
    p = pipeline(
        Fixed("early", on_connect=add_score(2.0, "connect reason"), on_helo=add_score(1.5, "helo reason")),
        Fixed("late", on_data=[add_score(3.0, "data reason"), add_headers(("X-Late", "yes"))]),
    )
    s = await session_through_rcpt(p, ALICE)
    out = await s.data(MSG, [ALICE])
    filing = out.filings[1]
    assert filing.verdict == "junk" and filing.mailbox == "Junk" and filing.score == 6.5
    text = filing.headers.decode()
    assert "X-Late: yes\r\n" in text
    assert "X-Spam-Status: Yes, score=6.50 required=6.00 tests=early,late" in text
    assert "\tearly=+3.50 (connect reason, helo reason);\r\n" in text
    assert "late=+3.00 (data reason)" in text


async def test_connect_refusal_is_answered_at_mail_and_again_at_the_next_mail() -> None:
    p = pipeline(Fixed("bl", on_connect=reject("go away", 554, "5.7.1")))
    s = p.session(CLIENT)
    await s.connect()
    await s.hello(HELLO)
    for _ in range(2):
        refusal = await s.mail("x@example.org")
        assert refusal is not None and refusal.code == 554 and refusal.text == "go away"


async def test_rcpt_refusal_only_for_that_recipient() -> None:
    p = pipeline(Fixed("r", on_rcpt=lambda ctx: reject("no", 550, "5.7.1") if ctx.recipient.startswith("bob") else None))
    s = p.session(CLIENT)
    await s.hello(HELLO)
    await s.mail("x@example.org")
    assert await s.rcpt("alice@ours.test", [ALICE]) is None
    assert (await s.rcpt("bob@ours.test", [BOB])).code == 550


async def test_accept_at_connect_skips_every_later_check() -> None:
    later = Fixed("later", on_mail=reject("no"), on_data=add_score(100, "x"))
    p = pipeline(Fixed("allow", on_connect=accept("partner network")), later)
    s = await session_through_rcpt(p, ALICE)
    out = await s.data(MSG, [ALICE])
    assert out.refusal is None and out.filings[1].verdict == "inbox"
    assert later.calls == []
    assert b"; accepted" in out.filings[1].headers


async def test_quarantine_sends_to_junk_whatever_the_score() -> None:
    s = await session_through_rcpt(pipeline(Fixed("q", on_data=quarantine("suspicious"))), ALICE)
    out = await s.data(MSG, [ALICE])
    assert out.filings[1].mailbox == "Junk"
    assert b"q=quarantine (suspicious)" in out.filings[1].headers


async def test_data_reject_refuses_the_transaction() -> None:
    s = await session_through_rcpt(pipeline(Fixed("v", on_data=reject("virus", 554, "5.7.1"))), ALICE)
    out = await s.data(MSG, [ALICE])
    assert out.refusal is not None and out.refusal.code == 554 and out.filings == {}


async def test_score_over_reject_limit_for_every_mailbox_rejects() -> None:
    s = await session_through_rcpt(pipeline(Fixed("s", on_data=add_score(20, "spammy"))), ALICE)
    out = await s.data(MSG, [ALICE])
    assert out.refusal is not None and out.refusal.code == 550 and out.refusal.enhanced == "5.7.1"
    assert "20.00" in out.refusal.text


async def test_per_mailbox_scores_file_each_copy_on_its_own() -> None:
    class PerUser:
        name = "bayes"

        async def on_data_recipient(self, ctx, rcpt):
            return add_score(7.0, "user thinks spam") if rcpt.account_id == 2 else None

    s = await session_through_rcpt(pipeline(PerUser()), ALICE, BOB)
    out = await s.data(MSG, [ALICE, BOB])
    assert out.filings[1].verdict == "inbox" and out.filings[2].verdict == "junk"


async def test_failure_policy_tempfail_by_default() -> None:
    s = await session_through_rcpt(pipeline(Fixed("engine", on_data=CheckUnavailable("connection refused"))), ALICE)
    out = await s.data(MSG, [ALICE])
    assert out.refusal is not None and (out.refusal.code, out.refusal.enhanced) == (451, "4.7.1")


async def test_failure_policy_accept_notes_the_skipped_check() -> None:
    p = pipeline(Fixed("engine", on_data=CheckUnavailable("connection refused")), on_failure="accept")
    s = await session_through_rcpt(p, ALICE)
    out = await s.data(MSG, [ALICE])
    assert out.refusal is None
    assert b"engine=skipped (connection refused)" in out.filings[1].headers


async def test_a_buggy_check_gets_the_failure_policy_not_a_crash() -> None:
    s = await session_through_rcpt(pipeline(Fixed("buggy", on_rcpt=ZeroDivisionError())), )
    assert (await s.rcpt("alice@ours.test", [ALICE])).code == 451


async def test_timeouts_apply_to_checks_that_declare_one() -> None:
    class Slow:
        name = "slow"
        timeout_seconds = 0.05

        async def on_data(self, ctx):
            await asyncio.sleep(10)

    s = await session_through_rcpt(pipeline(Slow(), on_failure="accept"), ALICE)
    out = await s.data(MSG, [ALICE])
    assert b"slow=skipped (timed out)" in out.filings[1].headers


async def test_concurrent_checks_run_together() -> None:
    started = []

    class Engine:
        concurrent = True

        def __init__(self, name):
            self.name = name

        async def on_data(self, ctx):
            started.append(self.name)
            await asyncio.sleep(0.01)
            assert len(started) == 2  # both started before either finished
            return add_score(1, self.name)

    s = await session_through_rcpt(pipeline(Engine("a"), Engine("b")), ALICE)
    out = await s.data(MSG, [ALICE])
    assert out.filings[1].score == 2


async def test_hostile_reasons_cannot_inject_header_lines() -> None:
    s = await session_through_rcpt(pipeline(Fixed("x", on_data=add_score(1, "a\r\nBcc: victim@x (z); w"))), ALICE)
    head = (await s.data(MSG, [ALICE])).filings[1].headers
    lines = head.split(b"\r\n")
    assert all(not line.lower().startswith(b"bcc:") for line in lines)
    assert head.isascii()


async def test_tempfail_at_mail_and_reset_clears_the_transaction() -> None:
    p = pipeline(Fixed("t", on_mail=tempfail("later")))
    s = p.session(CLIENT)
    await s.hello(HELLO)
    assert (await s.mail("x@example.org")).code == 451
    s.reset()
    assert s.sender is None
