"""`merpati queue ...`, `merpati dkim generate`, `merpati dns` against a real store."""

from __future__ import annotations

import asyncio
import email
from email import policy as email_policy
from pathlib import Path

import pytest
from queue_support import message

from merpati.cli.main import main
from merpati.storage import open_store
from merpati.storage.queue_api import AttemptRecord, MessageKind, NewMessage, NewRecipient, Outcome, RecipientResult


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "merpati.toml"
    path.write_text(f'hostname = "mx.a.test"\ndata_dir = "{tmp_path}"\n[storage]\nurl = "sqlite:///{tmp_path}/m.db"\n')
    return path


def with_store(config: Path, fn):
    async def go():
        store = await open_store(f"sqlite:///{config.parent}/m.db")
        try:
            return await fn(store)
        finally:
            await store.close()

    return asyncio.run(go())


def fill(config: Path) -> None:
    async def go(store):
        await store.add_domain("a.test")
        q = store.queue
        await q.enqueue(NewMessage("Q1", "alice@a.test", [NewRecipient("bob@b.test"), NewRecipient("eve@c.test")], message("Q1")), now=1000.0)
        await q.enqueue(NewMessage("Q2", "alice@a.test", [NewRecipient("carl@b.test")], message("Q2")), now=1000.0)
        for claim in await q.claim("x", now=1000.0, lease=60, limit=10):
            results = [RecipientResult(r.id, Outcome.DEFERRED, 451, "4.4.1", "451 4.4.1 connection refused") for r in claim.recipients]
            await q.record_attempt("x", AttemptRecord(claim.item.id, results, next_attempt=10**10), now=1000.0)

    with_store(config, go)


def cli(config: Path, *args: str) -> int:
    return main(["-c", str(config), *args])


def test_queue_list_show_retry_delete_bounce(config: Path, capsys) -> None:
    fill(config)
    assert cli(config, "queue", "list") == 0
    out = capsys.readouterr().out
    assert "Q1" in out and "Q2" in out and "451 4.4.1 connection refused" in out and "b.test,c.test" in out
    assert cli(config, "queue", "show", "Q1") == 0
    out = capsys.readouterr().out
    assert "<bob@b.test> queued" in out and "Subject: Q1" in out and "1 attempt(s)" in out
    assert cli(config, "queue", "retry", "Q2") == 0
    assert "1 delivery item(s) due now" in capsys.readouterr().out
    assert cli(config, "queue", "retry", "--all") == 0
    assert cli(config, "queue", "retry") == 1
    assert cli(config, "queue", "show", "nope") == 1
    assert cli(config, "queue", "delete", "Q2") == 0
    assert cli(config, "queue", "bounce", "Q1") == 0
    assert "2 recipient(s) failed" in capsys.readouterr().out

    async def check(store):
        (summary,) = await store.queue.list()
        assert summary.kind is MessageKind.DSN and summary.sender == ""
        data = await store.queue.read_data(summary.queue_id)
        report = email.message_from_bytes(data, policy=email_policy.default)
        blocks = report.get_payload()[1].get_payload()
        assert [b["Final-Recipient"] for b in blocks[1:]] == ["rfc822; bob@b.test", "rfc822; eve@c.test"]
        assert {b["Action"] for b in blocks[1:]} == {"failed"}
        return summary.queue_id

    with_store(config, check)
    assert cli(config, "queue", "delete", "Q1") == 1  # gone


def test_dkim_generate_and_dns(config: Path, capsys) -> None:
    fill(config)
    assert cli(config, "dkim", "generate", "b.test") == 1  # not ours
    assert cli(config, "dkim", "generate", "a.test", "--algorithm", "ed25519", "--selector", "s1") == 0
    out = capsys.readouterr().out
    assert 's1._domainkey.a.test. 3600 IN TXT ( "v=DKIM1; k=ed25519; p=' in out
    assert cli(config, "dkim", "generate", "a.test", "--selector", "s2") == 0
    rsa = capsys.readouterr().out
    assert '" "' in rsa  # the 2048-bit key's record is split into 255-octet strings
    assert cli(config, "dkim", "generate", "a.test", "--selector", "s1") == 1  # exists
    assert cli(config, "dns", "a.test") == 0
    out = capsys.readouterr().out
    for needle in ("a.test. 3600 IN MX 10 mx.a.test.", '"v=spf1 mx -all"', "s1._domainkey.a.test.",
                   "s2._domainkey.a.test.", "_dmarc.a.test.", "_submission._tcp.a.test. 3600 IN SRV 0 1 587 mx.a.test.",
                   "_imaps._tcp.a.test.", "autoconfig.a.test."):
        assert needle in out, needle

    async def check(store):
        key = await store.queue.get_dkim_key("a.test")
        assert key.selector in ("s1", "s2") and key.private_key.startswith("-----BEGIN PRIVATE KEY-----")

    with_store(config, check)
