"""End-of-data delivery: durable commit or a temporary failure, never half a message (STORE-04/06)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

import pytest

from merpati.core.diskspace import DiskSpace
from merpati.delivery.envelope import ClientInfo, Envelope, LocalRecipient
from merpati.delivery.pipeline import InboundPipeline, PipelineSettings
from merpati.delivery.routing import Router
from merpati.storage import open_store
from merpati.storage.api import TemporaryStoreError

BODY = b"From: a@remote.test\r\nSubject: hi\r\n\r\nbody\r\n"


class FailingCommits:
    """A real store whose deliver() fails as a full disk or a lost database would."""

    def __init__(self, store, error: Exception) -> None:
        self._store = store
        self._error = error

    def __getattr__(self, name):  # type: ignore[no-untyped-def]
        return getattr(self._store, name)

    async def deliver(self, deliveries):  # type: ignore[no-untyped-def]
        raise self._error


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


async def setup(tmp_path, *, error: Exception | None = None):  # type: ignore[no-untyped-def]
    store = await open_store(f"sqlite:///{tmp_path / 'm.db'}")
    await store.add_domain("ours.test")
    account = await store.create_account("alice@ours.test", "x")
    used = FailingCommits(store, error) if error else store
    pipeline = InboundPipeline(
        store=used, router=Router(used), settings=PipelineSettings(hostname="mx.ours.test")  # type: ignore[arg-type]
    )
    envelope = Envelope(
        client=ClientInfo(ip="192.0.2.1", port=25, helo="c.test", esmtp=True),
        sender="a@remote.test",
        recipients=[LocalRecipient(account.id, account.address, "alice@ours.test")],
        received_at=datetime(2026, 11, 28, tzinfo=timezone.utc),
    )
    return store, account, pipeline, envelope


@pytest.mark.parametrize("error", [TemporaryStoreError("database is locked"), OSError(28, "No space left on device")])
def test_a_failed_commit_is_451_and_stores_nothing(tmp_path, error):
    async def go():  # type: ignore[no-untyped-def]
        store, account, pipeline, envelope = await setup(tmp_path, error=error)
        verdict = await pipeline.deliver(envelope, BODY)
        box = await store.get_mailbox(account.id, "INBOX")
        messages = await store.list_messages(box.id)
        await store.close()
        return verdict, messages

    verdict, messages = run(go())
    assert (verdict.code, verdict.enhanced) == (451, "4.3.0")
    assert messages == []


def test_a_committed_message_is_byte_exact_after_the_trace_headers(tmp_path):
    async def go():  # type: ignore[no-untyped-def]
        store, account, pipeline, envelope = await setup(tmp_path)
        verdict = await pipeline.deliver(envelope, BODY)
        box = await store.get_mailbox(account.id, "INBOX")
        (meta,) = await store.list_messages(box.id)
        data = await store.read_message(box.id, meta.uid)
        parsed = await store.get_parsed(box.id, meta.uid)
        stored_envelope = await store.get_envelope(box.id, meta.uid)
        await store.close()
        return verdict, data, parsed, stored_envelope

    verdict, data, parsed, stored_envelope = run(go())
    assert stored_envelope.sender == "a@remote.test" and stored_envelope.recipient == "alice@ours.test"
    assert verdict.code == 250 and verdict.text.startswith("Ok: queued as ")
    head, _, rest = data.partition(b"From: a@remote.test")
    assert rest == BODY[len(b"From: a@remote.test"):]
    assert head.startswith(b"Return-Path: <a@remote.test>\r\nDelivered-To: alice@ours.test\r\nReceived: from c.test")
    assert b"for <alice@ours.test>" in head
    assert parsed.subject == "hi" and parsed.received_count == 1


def test_dsn_parameters_are_stored_with_the_message(tmp_path):
    async def go():  # type: ignore[no-untyped-def]
        store, account, pipeline, envelope = await setup(tmp_path)
        envelope.ret, envelope.envid = "HDRS", "QQ314159"
        envelope.rcpt_params["alice@ours.test"] = {"notify": ("SUCCESS", "FAILURE"), "orcpt": "rfc822;alice@ours.test"}
        assert (await pipeline.deliver(envelope, BODY)).code == 250
        box = await store.get_mailbox(account.id, "INBOX")
        (meta,) = await store.list_messages(box.id)
        stored = await store.get_envelope(box.id, meta.uid)
        await store.close()
        return stored

    stored = run(go())
    assert (stored.ret, stored.envid, stored.notify) == ("HDRS", "QQ314159", ("SUCCESS", "FAILURE"))
    assert stored.original_recipient == "rfc822;alice@ours.test"
    assert stored.received_from == "c.test [192.0.2.1]"


def test_disk_space_guard(tmp_path):
    assert DiskSpace(tmp_path, minimum=1).ok()
    assert not DiskSpace(tmp_path, minimum=1 << 62).ok()
    assert DiskSpace(tmp_path / "missing", minimum=1 << 62).ok()  # cannot tell: the commit decides
