"""Checks storage on SQLite and PostgreSQL: greylisting with a fake clock, Bayes tokens, training."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from conftest import BACKENDS, open_checks_store

from merpati.delivery.checks.bayes import BayesCheck, classify, tokens
from merpati.delivery.checks.context import CheckContext, Stage
from merpati.delivery.checks.greylist import GreylistCheck, client_network, parse_duration
from merpati.delivery.checks.training import BayesTrainer, JunkTrainingHook, training_class
from merpati.delivery.envelope import ClientInfo, LocalRecipient
from merpati.mime import parse_message
from merpati.storage.models import Delivery


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def rcpt_ctx(ip: str, sender: str, rcpt: str) -> CheckContext:
    return CheckContext(stage=Stage.RCPT, client=ClientInfo(ip, 1, "c.example"), hostname="mx.ours.test",
                        sender=sender, recipient=rcpt)


def test_durations_and_networks() -> None:
    assert parse_duration("5m") == 300 and parse_duration("1h20m") == 4800 and parse_duration("35d") == 35 * 86400
    assert parse_duration("90") == 90 and parse_duration(2) == 2
    for bad in ("", "5x", "m", "-1"):
        with pytest.raises(ValueError):
            parse_duration(bad)
    assert client_network("192.0.2.77") == "192.0.2.0/24"
    assert client_network("2001:db8:1:2:3::4") == "2001:db8:1:2::/64"


@pytest.mark.parametrize("backend", BACKENDS)
async def test_greylisting(backend: str, tmp_path) -> None:
    async with open_checks_store(backend, tmp_path) as (_, store):
        clock = Clock()
        check = GreylistCheck(store, delay=300, expire=86400, clock=clock)
        first = await check.on_rcpt(rcpt_ctx("192.0.2.7", "a@example.org", "bob@ours.test"))
        assert first is not None and first.code == 451 and first.enhanced == "4.7.1" and "300 seconds" in first.text
        clock.now += 100
        early = await check.on_rcpt(rcpt_ctx("192.0.2.8", "A@example.org", "bob@ours.test"))  # same /24, case
        assert early is not None and "200 seconds" in early.text
        other = await check.on_rcpt(rcpt_ctx("192.0.2.7", "a@example.org", "carol@ours.test"))
        assert other is not None  # another triple waits on its own
        clock.now += 250
        assert await check.on_rcpt(rcpt_ctx("192.0.2.9", "a@example.org", "bob@ours.test")) is None
        # a second check (another process) reads the passed triple from the store
        again = GreylistCheck(store, delay=300, expire=86400, clock=clock)
        assert await again.on_rcpt(rcpt_ctx("192.0.2.7", "a@example.org", "bob@ours.test")) is None
        # silence longer than expire: forgotten, waits again
        clock.now += 2 * 86400
        assert await again.on_rcpt(rcpt_ctx("192.0.2.7", "a@example.org", "bob@ours.test")) is not None
        assert await again.expire() >= 1
        authed = rcpt_ctx("198.51.100.1", "a@example.org", "bob@ours.test")
        authed.client = ClientInfo("198.51.100.1", 1, authenticated_as="a@example.org")
        assert await check.on_rcpt(authed) is None


SPAMMY = b"From: Winner <promo@lottery.example>\r\nSubject: You won the lottery prize\r\n\r\n" \
    b"Claim your lottery prize now, casino bonus, cheap pills, viagra, click http://win.example/x\r\n"
HAMMY = b"From: Alice <alice@work.example>\r\nSubject: Minutes of the project meeting\r\n\r\n" \
    b"Here are the minutes of our project meeting; the budget review is on Thursday.\r\n"


def variant(base: bytes, i: int) -> bytes:
    return base.replace(b"\r\n\r\n", f"\r\nMessage-ID: <{i}@x>\r\n\r\nnumber {i} ".encode(), 1)


def test_tokens_decode_parts() -> None:
    import base64

    body = base64.b64encode("Ünïcode lottery words".encode()).decode()
    msg = ("From: a@b.example\r\nSubject: Hello there\r\nMIME-Version: 1.0\r\n"
           "Content-Type: multipart/alternative; boundary=B\r\n\r\n--B\r\n"
           "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
           f"{body}\r\n--B\r\nContent-Type: text/html\r\n\r\n<p class=x>casino</p>\r\n--B--\r\n").encode()
    with_parts = set(tokens(msg, parse_message(msg)))
    assert set(tokens(b"Subject: x\r\n\r\nlottery casino")) <= with_parts
    assert tokens(b"Subject: x\r\n\r\nclass") != [] and not (set(tokens(b"\r\n\r\nclass")) & with_parts)


def test_classify_separates_classes() -> None:
    spam_t, ham_t = tokens(SPAMMY, parse_message(SPAMMY)), tokens(HAMMY, parse_message(HAMMY))
    counts = {t: (10, 0) for t in spam_t}
    counts.update({t: (0, 10) for t in ham_t})
    assert classify(counts, 10, 10, spam_t).probability > 0.99
    assert classify(counts, 10, 10, ham_t).probability < 0.01
    assert classify(counts, 10, 10, tokens(b"\r\n\r\nunrelated words only")).clues == 0


@pytest.mark.parametrize("verdict,role,expected", [
    ("inbox", "junk", True), (None, "junk", True), ("junk", "junk", None),
    ("junk", "inbox", False), ("junk", "other", False), ("inbox", "other", False),
    ("inbox", "inbox", None), (None, "inbox", None), ("junk", "trash", None), (None, "other", None),
])
def test_training_rules(verdict, role, expected) -> None:
    assert training_class(role, verdict) is expected


@pytest.mark.parametrize("backend", BACKENDS)
async def test_learning_is_idempotent_and_relearns(backend: str, tmp_path) -> None:
    async with open_checks_store(backend, tmp_path) as (mail, store):
        await mail.add_domain("ours.test")
        account = await mail.create_account("bob@ours.test", "x")
        trainer = BayesTrainer(store)
        assert await trainer.learn(account.id, SPAMMY, True) == "learned"
        assert await trainer.learn(account.id, SPAMMY, True) == "already"
        assert await store.bayes_totals(account.id) == (1, 0)
        assert await trainer.learn(account.id, SPAMMY, False) == "relearned"
        assert await store.bayes_totals(account.id) == (0, 1)
        counts = await store.bayes_counts(account.id, tokens(SPAMMY, parse_message(SPAMMY)))
        assert counts.tokens and all(v == (0, 1) for v in counts.tokens.values())
        from merpati.storage.api import NotFound

        with pytest.raises(NotFound):
            await trainer.learn(account.id + 999, HAMMY, False)


@pytest.mark.parametrize("backend", BACKENDS)
async def test_bayes_check_needs_training_then_scores(backend: str, tmp_path) -> None:
    async with open_checks_store(backend, tmp_path) as (mail, store):
        await mail.add_domain("ours.test")
        account = await mail.create_account("bob@ours.test", "x")
        check = BayesCheck(store, min_spam=3, min_ham=3)
        trainer = BayesTrainer(store, on_learned=check.forget)
        rcpt = LocalRecipient(account.id, "bob@ours.test", "bob@ours.test")

        async def judge(message: bytes):
            ctx = CheckContext(stage=Stage.DATA, client=ClientInfo("192.0.2.1", 1), hostname="mx.ours.test",
                               message=message, parsed=parse_message(message))
            return await check.on_data_recipient(ctx, rcpt)

        assert await judge(variant(SPAMMY, 99)) is None  # untrained
        for i in range(3):
            await trainer.learn(account.id, variant(SPAMMY, i), True)
            await trainer.learn(account.id, variant(HAMMY, i), False)
        spam = await judge(variant(SPAMMY, 100))
        assert spam is not None and spam.score >= 6 and "spam probability" in spam.reason
        ham = await judge(variant(HAMMY, 100))
        assert ham is not None and ham.score < 0


@pytest.mark.parametrize("backend", BACKENDS)
async def test_moves_train_in_the_background(backend: str, tmp_path) -> None:
    import asyncio

    async with open_checks_store(backend, tmp_path) as (mail, store):
        await mail.add_domain("ours.test")
        account = await mail.create_account("bob@ours.test", "x")
        trainer = BayesTrainer(store)
        hook = JunkTrainingHook(mail, trainer, refresh=3600)
        await hook.start()
        try:
            when = datetime.now(timezone.utc)
            verdict_inbox = b"Merpati-Verdict: inbox; score=0.00\r\n"
            verdict_junk = b"Merpati-Verdict: junk; score=9.00\r\n"

            def delivery(data: bytes, mailbox: str) -> Delivery:
                return Delivery(account_id=account.id, data=data, parsed=parse_message(data), internaldate=when,
                                mailbox=mailbox)

            # our own filings are never learned
            await mail.deliver([delivery(verdict_inbox + HAMMY, "INBOX"), delivery(verdict_junk + SPAMMY, "Junk")])
            # the user's corrections are: inbox-filed mail put into Junk, Junk-filed mail put back
            await mail.deliver([delivery(verdict_inbox + variant(SPAMMY, 1), "Junk")])
            [rescued] = await mail.deliver([delivery(verdict_junk + variant(HAMMY, 1), "Junk")])
            inbox = await mail.get_mailbox(account.id, "INBOX")
            await mail.move_messages(rescued.mailbox_id, [rescued.uid], inbox.id)  # IMAP MOVE out of Junk
            await mail.deliver([delivery(verdict_inbox + variant(HAMMY, 2), "Archive")])
            await mail.deliver([delivery(verdict_inbox + variant(HAMMY, 3), "Trash")])
            for _ in range(200):
                if hook.learned >= 3:
                    break
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.1)
            assert hook.learned == 3
            assert await store.bayes_totals(account.id) == (1, 2)
        finally:
            await hook.stop()
