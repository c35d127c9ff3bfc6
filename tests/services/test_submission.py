"""Submission (RFC 6409 / RFC 8314) in-process over real loopback sockets, driven by smtplib:
AUTH, sender ownership, limits, local filing vs the queue, Date/Message-ID, DKIM signing; and
the hostile cases (SECURITY-CASES SMTP-13, SMTP-16/17, SMTP-34, AUTH-01, AUTH-03, AUTH-06)."""

from __future__ import annotations

import asyncio
import base64
import smtplib
import socket
import ssl
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from support.merpati_server import write_self_signed  # noqa: E402
from support.net import free_port  # noqa: E402

from merpati.assembly import submission as submission_part  # noqa: E402
from merpati.assembly.context import AppContext  # noqa: E402
from merpati.config.schema import Config, ListenConfig, SmtpConfig, SubmissionConfig, TlsConfig  # noqa: E402
from merpati.core.passwords import hash_password  # noqa: E402
from merpati.delivery.pipeline import InboundPipeline, PipelineSettings  # noqa: E402
from merpati.delivery.routing import Router  # noqa: E402
from merpati.mailauth import DkimVerdict, generate_key, verify_dkim  # noqa: E402
from merpati.net.tls import server_context  # noqa: E402
from merpati.resolver import FakeResolver  # noqa: E402
from merpati.services.auth import Authenticator, AuthSettings  # noqa: E402
from merpati.storage import open_store  # noqa: E402
from merpati.storage.queue_api import DkimKey  # noqa: E402

HOST = "127.0.0.1"
PASSWORD = "s3cret-pass"
MESSAGE = (
    "From: Alice <alice@a.test>\r\nTo: bob@b.test\r\nSubject: hello\r\n\r\nHello Bob.\r\n"
)
PEM_TXT: dict[str, tuple[bytes, str]] = {}


def dkim_key() -> tuple[bytes, str]:
    if "k" not in PEM_TXT:
        PEM_TXT["k"] = generate_key("ed25519")
    return PEM_TXT["k"]


@dataclass
class Env:
    store: object
    config: Config
    stoppables: list = field(default_factory=list)
    sleeps: list = field(default_factory=list)

    @property
    def port(self) -> int:
        return int(self.config.listen.submission[0].rsplit(":", 1)[1])

    @property
    def port_tls(self) -> int:
        return int(self.config.listen.submissions[0].rsplit(":", 1)[1])

    async def close(self) -> None:
        for s in self.stoppables:
            await s.stop(grace=1)
        await self.store.close()

    async def inbox(self, address: str) -> list[bytes]:
        account = await self.store.get_account(address)
        box = await self.store.get_mailbox(account.id, "INBOX")
        return [await self.store.read_message(box.id, m.uid) for m in await self.store.list_messages(box.id)]

    async def queued(self) -> list[tuple[object, bytes]]:
        out = []
        for s in await self.store.queue.list():
            out.append((await self.store.queue.get(s.queue_id), await self.store.queue.read_data(s.queue_id)))
        return out


async def make_env(tmp: Path, *, loopback_secure: bool = False, per_hour: int = 100, max_rcpts: int = 50,
                   failure_delay: float = 0.0) -> Env:
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    if not cert.exists():
        write_self_signed(cert, key, "mx.a.test")
    store = await open_store(f"sqlite:///{tmp}/db/merpati.db")
    await store.add_domain("a.test")
    for user in ("alice", "carol", "mallory"):
        await store.create_account(f"{user}@a.test", hash_password(PASSWORD))
    await store.add_alias("sales@a.test", ["alice@a.test"])
    await store.add_alias("team@a.test", ["carol@a.test", "dave@b.test"])
    pem, txt = dkim_key()
    await store.queue.add_dkim_key(DkimKey("a.test", "sel", "ed25519-sha256", pem.decode(), txt, created=0.0))
    config = Config(
        hostname="mx.a.test",
        data_dir=tmp,
        listen=ListenConfig(smtp=(), submission=(f"{HOST}:{free_port(HOST)}",), submissions=(f"{HOST}:{free_port(HOST)}",)),
        tls=TlsConfig(cert=str(cert), key=str(key)),
        submission=SubmissionConfig(max_messages_per_hour=per_hour, max_recipients=max_rcpts),
        smtp=SmtpConfig(error_sleep=0.001),
    )
    sleeps: list[float] = []

    async def sleep(d: float) -> None:
        sleeps.append(d)

    router = Router(store, delimiter="+", cache_ttl=0, negative_ttl=0)
    pipeline = InboundPipeline(store=store, router=router, settings=PipelineSettings(hostname="mx.a.test"))
    auth = Authenticator(store, AuthSettings(loopback_is_secure=loopback_secure, failure_delay=failure_delay), sleep=sleep)
    ctx = AppContext(config=config, store=store, tls=server_context(config.tls), authenticator=auth,
                     router=router, pipeline=pipeline)
    env = Env(store, config, sleeps=sleeps)
    env.stoppables = await submission_part.start(ctx)
    return env


def insecure() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def client(env: Env, *, tls: bool = True, login: str | None = "alice@a.test") -> smtplib.SMTP:
    s = smtplib.SMTP(HOST, env.port, timeout=10)
    s.ehlo("client.test")
    if tls:
        s.starttls(context=insecure())
        s.ehlo("client.test")
    if login:
        s.login(login, PASSWORD)
    return s


def run(tmp_path: Path, scenario, **options) -> object:
    async def go():
        env = await make_env(tmp_path, **options)
        try:
            return await scenario(env)
        finally:
            await env.close()

    return asyncio.run(asyncio.wait_for(go(), 60))


def in_thread(fn):
    return asyncio.to_thread(fn)


# -- the normal path ------------------------------------------------------------------------------


def test_starttls_auth_send_local_and_remote(tmp_path: Path) -> None:
    async def scenario(env: Env):
        def send():
            with client(env) as s:
                assert "PLAIN" in s.esmtp_features["auth"] and "LOGIN" in s.esmtp_features["auth"]
                refused = s.sendmail("alice@a.test", ["bob@b.test", "carol@a.test", "team@a.test"], MESSAGE)
                assert refused == {}
        await in_thread(send)
        (local,) = await env.inbox("carol@a.test")
        assert b"Subject: hello" in local and b"\r\nDate: " in b"\r\n" + local and b"Message-ID: <" in local
        assert b"with ESMTPSA" in local
        (queued,) = await env.queued()
        msg, data = queued
        assert sorted(r.address for r in msg.recipients) == ["bob@b.test", "dave@b.test"]
        assert msg.sender == "alice@a.test" and msg.origin == "alice@a.test"
        assert data.startswith(b"DKIM-Signature: ") and b"d=a.test" in data and b"with ESMTPSA" in data
        resolver = FakeResolver({"sel._domainkey.a.test": {"TXT": [dkim_key()[1]]}})
        results = await verify_dkim(resolver, data)
        assert [r.result for r in results] == [DkimVerdict.PASS]

    run(tmp_path, scenario)


def test_auth_login_alias_sender_and_implicit_tls(tmp_path: Path) -> None:
    async def scenario(env: Env):
        def send():
            with smtplib.SMTP_SSL(HOST, env.port_tls, timeout=10, context=insecure()) as s:
                s.ehlo("client.test")
                s.login("alice@a.test", PASSWORD)  # smtplib prefers CRAM-MD5, then PLAIN
                s.sendmail("sales@a.test", ["bob@b.test"], MESSAGE.replace("alice@a.test", "sales@a.test"))
            with client(env, login=None) as s:
                code, _ = s.docmd("AUTH", "LOGIN")
                assert code == 334
                assert s.docmd(base64.b64encode(b"alice@a.test").decode())[0] == 334
                assert s.docmd(base64.b64encode(PASSWORD.encode()).decode())[0] == 235
                s.sendmail("alice+news@a.test", ["bob@b.test"], MESSAGE)
        await in_thread(send)
        assert len(await env.queued()) == 2

    run(tmp_path, scenario)


def test_missing_date_and_message_id_are_added_but_kept_when_present(tmp_path: Path) -> None:
    async def scenario(env: Env):
        own = "Date: Thu, 01 Jan 2026 00:00:00 +0000\r\nMessage-ID: <mine@a.test>\r\n" + MESSAGE
        await in_thread(lambda: client(env).sendmail("alice@a.test", ["carol@a.test"], own))
        (msg,) = await env.inbox("carol@a.test")
        assert msg.count(b"Message-ID:") == 1 and b"<mine@a.test>" in msg and msg.count(b"\r\nDate:") == 1

    run(tmp_path, scenario)


# -- hostile cases --------------------------------------------------------------------------------


def test_sender_forgery_by_an_authenticated_user(tmp_path: Path) -> None:
    """SMTP-17: the envelope sender and From: must be the user's (or an alias to the user)."""
    async def scenario(env: Env):
        def probe():
            with client(env) as s:
                code, text = s.docmd("MAIL FROM:<carol@a.test>")
                assert (code, text[:5]) == (553, b"5.7.1")
                assert s.docmd("MAIL FROM:<ceo@bank.example>")[0] == 553
                assert s.docmd("MAIL FROM:<>")[0] == 553
                assert s.docmd("MAIL FROM:<team@a.test>")[0] == 553  # an alias, but not only to alice
                s.rset()
                with pytest.raises(smtplib.SMTPDataError) as forged:
                    s.sendmail("alice@a.test", ["bob@b.test"], MESSAGE.replace("Alice <alice@a.test>", "carol@a.test"))
                assert forged.value.smtp_code == 553 and b"5.7.1" in forged.value.smtp_error
                s.rset()
                for from_value in ("alice@a.test)<carol@a.test>", "alice@a.test, carol@a.test", "", "<>",
                                   '"alice@a.test" <carol@a.test>'):
                    body = MESSAGE.replace("Alice <alice@a.test>", from_value)
                    with pytest.raises(smtplib.SMTPDataError) as bad:
                        s.sendmail("alice@a.test", ["bob@b.test"], body)
                    assert bad.value.smtp_code in (550, 553), from_value
                    s.rset()
                with pytest.raises(smtplib.SMTPDataError):
                    s.sendmail("alice@a.test", ["bob@b.test"], "Subject: no from\r\n\r\nx\r\n")
        await in_thread(probe)
        assert await env.queued() == []
        assert await env.inbox("carol@a.test") == []

    run(tmp_path, scenario)


def test_open_relay_attempts_without_auth(tmp_path: Path) -> None:
    """SMTP-16 on 587: nothing is accepted for anyone without AUTH, before or after TLS."""
    async def scenario(env: Env):
        def probe():
            with client(env, tls=False, login=None) as s:
                assert s.docmd("MAIL FROM:<alice@a.test>")[0] == 530
                assert s.docmd("RCPT TO:<victim@third-party.example>")[0] in (503, 530)
            with client(env, login=None) as s:
                for sender in ("<>", "<alice@a.test>", "<test@localhost>"):
                    assert s.docmd(f"MAIL FROM:{sender}")[0] == 530
                    for rcpt in ("<nobody@third-party.example>", "<nobody%third-party.example@a.test>",
                                 "<@a.test:nobody@third-party.example>", "<carol@a.test>"):
                        assert s.docmd(f"RCPT TO:{rcpt}")[0] == 503
                assert s.docmd("DATA")[0] == 503
        await in_thread(probe)
        assert await env.queued() == []

    run(tmp_path, scenario)


def test_auth_before_starttls_is_neither_offered_nor_accepted(tmp_path: Path) -> None:
    """SMTP-13 / AUTH-06: plaintext AUTH is refused; after STARTTLS it works."""
    async def scenario(env: Env):
        def probe():
            s = smtplib.SMTP(HOST, env.port, timeout=10)
            s.ehlo("client.test")
            assert "auth" not in s.esmtp_features and "starttls" in s.esmtp_features
            token = base64.b64encode(b"\0alice@a.test\0" + PASSWORD.encode()).decode()
            code, _ = s.docmd("AUTH", f"PLAIN {token}")
            assert code in (530, 538)
            s.starttls(context=insecure())
            s.ehlo("client.test")
            assert "auth" in s.esmtp_features
            assert s.docmd("MAIL FROM:<alice@a.test>")[0] == 530  # nothing survived the handshake
            assert s.docmd("AUTH", f"PLAIN {token}")[0] == 235
            s.quit()
        await in_thread(probe)

    run(tmp_path, scenario)


def test_loopback_counts_as_secure_when_configured(tmp_path: Path) -> None:
    async def scenario(env: Env):
        def probe():
            with client(env, tls=False) as s:  # no STARTTLS needed on loopback
                s.sendmail("alice@a.test", ["carol@a.test"], MESSAGE)
        await in_thread(probe)
        assert len(await env.inbox("carol@a.test")) == 1

    run(tmp_path, scenario, loopback_secure=True)


def test_malformed_sasl(tmp_path: Path) -> None:
    """AUTH-03: bad base64, PLAIN without NULs, oversized responses, aborts: clean errors."""
    async def scenario(env: Env):
        def probe():
            with client(env, login=None) as s:
                assert s.docmd("AUTH", "PLAIN !!!notbase64")[0] == 501
                assert s.docmd("AUTH", "PLAIN " + base64.b64encode(b"no-nuls-here").decode())[0] == 501
                assert s.docmd("AUTH", "PLAIN " + base64.b64encode(b"\0\0").decode())[0] == 501
                assert s.docmd("AUTH", "PLAIN " + "A" * 9000)[0] in (500, 501)
                assert s.docmd("AUTH", "CRAM-MD5")[0] == 504
                for _ in range(5):
                    assert s.docmd("AUTH", "LOGIN")[0] == 334
                    assert s.docmd("*")[0] == 501
                assert s.docmd("AUTH", "LOGIN")[0] == 334
                assert s.docmd("=====")[0] == 501
                assert s.docmd("AUTH", "PLAIN " + base64.b64encode(b"x\0alice@a.test\0" + PASSWORD.encode()).decode())[0] == 535
                assert s.docmd("AUTH", "PLAIN " + base64.b64encode(b"\0alice@a.test\0wrong").decode())[0] == 535
                assert s.docmd("AUTH", "PLAIN " + base64.b64encode(b"\0alice@a.test\0" + PASSWORD.encode()).decode())[0] == 235
                assert s.docmd("AUTH", "PLAIN =")[0] == 503  # already authenticated
            with client(env, login=None) as s:  # 1000 aborts: each answered, then the error limit closes
                codes = []
                for _ in range(1000):
                    codes.append(s.docmd("AUTH", "LOGIN")[0])
                    if codes[-1] != 334:
                        break
                    codes.append(s.docmd("*")[0])
                assert set(codes[:-1]) <= {334, 501} and codes[-1] == 421
            with client(env) as s:  # other logins are unaffected
                assert s.noop()[0] == 250
        await in_thread(probe)

    run(tmp_path, scenario)


def test_failed_auth_gets_growing_delays(tmp_path: Path) -> None:
    async def scenario(env: Env):
        def probe():
            with client(env, login=None) as s:
                for _ in range(3):
                    with pytest.raises(smtplib.SMTPAuthenticationError):
                        s.login("alice@a.test", "wrong")
        await in_thread(probe)
        # smtplib tries PLAIN then LOGIN per login(): six failures, each delay doubling to the cap
        assert env.sleeps == [0.5, 1.0, 2.0, 4.0, 8.0, 15.0]

    run(tmp_path, scenario, failure_delay=0.5)


def test_per_user_limits(tmp_path: Path) -> None:
    async def scenario(env: Env):
        def probe():
            with client(env) as s:
                for n in range(2):
                    s.sendmail("alice@a.test", ["bob@b.test"], MESSAGE)
                code, text = s.docmd("MAIL FROM:<alice@a.test>")
                assert (code, text[:5]) == (450, b"4.7.1")
            with client(env, login="carol@a.test") as s:  # another user is not limited by alice
                s.docmd("MAIL FROM:<carol@a.test>")
                assert [s.docmd(f"RCPT TO:<r{i}@b.test>")[0] for i in range(4)] == [250, 250, 250, 452]
        await in_thread(probe)

    run(tmp_path, scenario, per_hour=2, max_rcpts=3)


def test_unknown_local_recipient_is_refused_at_rcpt(tmp_path: Path) -> None:
    async def scenario(env: Env):
        def probe():
            with client(env) as s:
                s.docmd("MAIL FROM:<alice@a.test>")
                code, text = s.docmd("RCPT TO:<nobody@a.test>")
                assert (code, text[:5]) == (550, b"5.1.1")
        await in_thread(probe)

    run(tmp_path, scenario)
