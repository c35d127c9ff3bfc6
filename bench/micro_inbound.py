"""Micro-benchmark of the per-message hot paths of inbound SMTP (no sockets; only (d) touches disk).

    .venv/bin/python bench/micro_inbound.py [--rounds 40] [--seconds 0.05] [--check] [--mx 2000]

(a) ``smtp-session``: one complete SMTP session through ``SmtpServer`` as the net layer
    drives it (greeting, EHLO, MAIL, RCPT, DATA, a 5 KB body in one receive_data, the end
    of data, QUIT), calling ``data_to_send()`` after every ``next_event()``.
(b) ``mime-plain``: ``parse_message(...).to_json()`` of that message with three trace
    headers prepended (Return-Path, Delivered-To, a folded 3-line Received).
(c) ``mime-alternative`` / ``mime-mixed``: the same for a multipart/alternative message and
    a multipart/mixed one with a base64 attachment (~15 KB).
(d) with ``--mx N``: N whole MX messages (smtp-source's 5 KB message) through SmtpServer,
    InboundSession, the check pipeline and InboundPipeline into a fresh SQLite store, one
    after another, with checks off and then with bench/smtp_checks.py's checks on (DNS from a
    loopback server); CPU µs per message of the whole process (``time.process_time``).

Each figure is the best of ``--rounds`` rounds of about ``--seconds`` each, in µs per
operation. Like every benchmark here it asserts nothing about timing; ``--check`` only
verifies that the session produced the expected bytes and events.
"""

from __future__ import annotations

import argparse
import base64
import time
from collections.abc import Callable

from merpati.mime import parse_message
from merpati.wire.smtp import NEED_DATA, DataChunk, DataEnd, DataStart, Hello, MailFrom, Quit, RcptTo, Reply
from merpati.wire.smtp import SmtpServer

CRLF = b"\r\n"


def plain_message() -> bytes:
    head = (
        b"From: Bench Sender <bench@else.test>\r\n"
        b"To: Alice <alice@smoke.test>\r\n"
        b"Subject: Benchmark message number 1\r\n"
        b"Date: Mon, 01 Jan 2024 12:00:00 +0000\r\n"
        b"Message-ID: <1.bench@else.test>\r\n"
        b"\r\n"
    )
    line = (b"abcdefghijklmnopqrstuvwxyz0123456789 " * 3)[:78]
    return head + (line + CRLF) * 62


TRACE = (
    b"Return-Path: <bench@else.test>\r\n"
    b"Delivered-To: alice@smoke.test\r\n"
    b"Received: from client.test (client.test [127.0.0.1])\r\n"
    b"\tby mx.smoke.test (Merpati) with ESMTP id 0123456789ABCDEF\r\n"
    b"\tfor <alice@smoke.test>; Mon, 01 Jan 2024 12:00:01 +0000\r\n"
)


def alternative_message() -> bytes:
    text = "Hello Alice,\r\n\r\nThis is the plain text part of a typical newsletter. " * 8
    html = "<html><head><style>p{color:red}</style></head><body><p>Hello <b>Alice</b>,</p>" + (
        "<p>This is the <i>HTML</i> part of a typical newsletter &amp; friends.</p>\r\n" * 20
    ) + "</body></html>\r\n"
    return TRACE + (
        "From: \"News Letter\" <news@else.test>\r\n"
        "To: Alice <alice@smoke.test>\r\n"
        "Subject: =?UTF-8?Q?Caf=C3=A9_news?=\r\n"
        "Date: Mon, 01 Jan 2024 12:00:00 +0000\r\n"
        "Message-ID: <2.bench@else.test>\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: multipart/alternative; boundary=\"b1_alt\"\r\n"
        "\r\n"
        "--b1_alt\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: quoted-printable\r\n"
        "\r\n" + text + "\r\n"
        "--b1_alt\r\n"
        "Content-Type: text/html; charset=utf-8\r\n"
        "Content-Transfer-Encoding: quoted-printable\r\n"
        "\r\n" + html + "\r\n"
        "--b1_alt--\r\n"
    ).encode()


def mixed_message() -> bytes:
    blob = base64.encodebytes(bytes(range(256)) * 40).replace(b"\n", CRLF)  # ~14 KB encoded
    return TRACE + (
        b"From: Bob <bob@else.test>\r\n"
        b"To: alice@smoke.test, carol@smoke.test\r\n"
        b"Cc: \"Dave D.\" <dave@smoke.test>\r\n"
        b"Subject: The report\r\n"
        b"Date: Mon, 01 Jan 2024 12:00:00 +0000\r\n"
        b"Message-ID: <3.bench@else.test>\r\n"
        b"MIME-Version: 1.0\r\n"
        b"Content-Type: multipart/mixed; boundary=\"=_mixed_0001\"\r\n"
        b"\r\n"
        b"This is a multi-part message in MIME format.\r\n"
        b"--=_mixed_0001\r\n"
        b"Content-Type: text/plain; charset=us-ascii\r\n"
        b"\r\n"
        b"Hi Alice,\r\n\r\nthe report is attached.\r\n\r\nBob\r\n"
        b"--=_mixed_0001\r\n"
        b"Content-Type: application/pdf; name=\"report.pdf\"\r\n"
        b"Content-Transfer-Encoding: base64\r\n"
        b"Content-Disposition: attachment; filename=\"report.pdf\"\r\n"
        b"\r\n" + blob + b"--=_mixed_0001--\r\n"
    )


BODY = plain_message()
SESSION_INPUT = (
    b"EHLO client.test\r\n",
    b"MAIL FROM:<bench@else.test>\r\n",
    b"RCPT TO:<alice@smoke.test>\r\n",
    b"DATA\r\n",
    BODY + b".\r\n",
    b"QUIT\r\n",
)
MAIL_OK = Reply(250, "2.1.0", "Ok")
RCPT_OK = Reply(250, "2.1.5", "Ok")
DATA_GO = Reply(354, None, "End data with <CR><LF>.<CR><LF>")


def session(check: bool = False) -> bytes:
    """One inbound session, driven like merpati.net.smtp drives the engine."""
    srv = SmtpServer(hostname="mx.smoke.test")
    out = bytearray(srv.greeting())
    events = []
    feed = iter(SESSION_INPUT)
    while True:
        event = srv.next_event()
        out += srv.data_to_send()
        if event is NEED_DATA:
            srv.receive_data(next(feed))
            continue
        if check:
            events.append(type(event).__name__)
        if isinstance(event, Hello):
            out += srv.send(srv.hello_reply())
        elif isinstance(event, MailFrom):
            out += srv.send(MAIL_OK)
        elif isinstance(event, RcptTo):
            out += srv.send(RCPT_OK)
        elif isinstance(event, DataStart):
            out += srv.send(DATA_GO)
        elif isinstance(event, DataChunk):
            pass
        elif isinstance(event, DataEnd):
            # the session builds a fresh reply per message (it carries the queue id)
            out += srv.send(Reply(250, "2.0.0", "Ok: queued as X"))
        elif isinstance(event, Quit):
            out += srv.send(Reply(221, "2.0.0", "Bye"))
            break
        else:
            raise AssertionError(event)
    if check:
        assert events == ["Hello", "MailFrom", "RcptTo", "DataStart", "DataChunk", "DataEnd", "Quit"], events
    return bytes(out)


EXPECTED_SESSION = (
    b"220 mx.smoke.test ESMTP Merpati\r\n"
    b"250-mx.smoke.test\r\n250-PIPELINING\r\n250-SIZE 52428800\r\n250-8BITMIME\r\n"
    b"250-SMTPUTF8\r\n250-ENHANCEDSTATUSCODES\r\n250-CHUNKING\r\n250 DSN\r\n"
    b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n"
    b"250 2.0.0 Ok: queued as X\r\n221 2.0.0 Bye\r\n"
)


def mime(data: bytes) -> Callable[[], str]:
    return lambda: parse_message(data).to_json()


def measure(fn: Callable[[], object], rounds: int, seconds: float) -> float:
    """Best-of-rounds µs per call; each round runs about ``seconds``."""
    start = time.perf_counter()
    calls = 0
    while time.perf_counter() - start < seconds / 4:
        fn()
        calls += 1
    per_round = max(1, int(calls * 4))
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(per_round):
            fn()
        best = min(best, (time.perf_counter() - t0) / per_round)
    return best * 1e6


# ---- (d) one whole MX message in process: session, checks, pipeline, SQLite ---------------------

SMTP_SOURCE_MESSAGE = (  # what Postfix's smtp-source -l 5000 sends (the inbound benchmarks' load)
    b"From: <bench@loadgen.test>\r\nTo: <user1@merpati.test>\r\n"
    b"Date: Sat, 28 Nov 2026 05:54:01 +0000 (UTC)\r\nMessage-Id: <347c.0003.0000@loadgen.test>\r\n\r\n"
    + b"".join(b"%d" % (i % 10) + b"X" * 78 + b"\r\n" for i in range(1, 64))
    + b"6" + b"X" * 55 + b"\r\n"
)


def mx_messages(*, checks: bool, messages: int) -> float:
    """CPU µs (process time: every thread, the SQLite writer's included) per message of whole
    MX sessions run one after another through ``net``-less SmtpServer + InboundSession +
    InboundPipeline into a fresh SQLite store (durable commits: the fsync waits cost no CPU),
    with the configuration of bench/smtp_checks.py's two sides (``checks``: every built-in
    check on, DNS from a loopback server, Bayes trained with 10 spam and 10 ham)."""
    import asyncio
    import sys
    import tempfile
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    import smtp_checks
    from support.dns_server import DnsServer

    from merpati.config.loader import load_config
    from merpati.delivery.checks.build import build_checks
    from merpati.delivery.checks.training import BayesTrainer
    from merpati.delivery.envelope import ClientInfo
    from merpati.delivery.pipeline import InboundPipeline, PipelineSettings
    from merpati.delivery.routing import Router
    from merpati.resolver.dnspython import DnsPythonResolver
    from merpati.services.smtp.inbound import InboundSession, SessionPolicy
    from merpati.storage import open_store
    from merpati.storage.checks_api import checks_store

    script = (
        b"EHLO loadgen.test\r\n", b"MAIL FROM:<bench@loadgen.test>\r\n", b"RCPT TO:<user1@merpati.test>\r\n",
        b"DATA\r\n", SMTP_SOURCE_MESSAGE + b".\r\n", b"QUIT\r\n",
    )

    async def one(pipeline: InboundPipeline, policy: SessionPolicy) -> None:
        engine = SmtpServer(hostname="mx.merpati.test")
        session = InboundSession(engine=engine, pipeline=pipeline, client=ClientInfo("127.0.0.1", 40000), policy=policy)
        out = bytearray(engine.greeting())
        await session.on_connect(b"")
        feed = iter(script)
        while True:
            event = engine.next_event()
            out += engine.data_to_send()
            if event is NEED_DATA:
                engine.receive_data(next(feed))
                continue
            if isinstance(event, Quit):
                out += engine.send(Reply(221, "2.0.0", "Bye"))
                break
            reply = await session.handle(event)
            if reply is not None:
                out += engine.send(reply)
        if b"250 2.0.0 Ok: queued" not in out:
            raise AssertionError(bytes(out))

    async def go(root: Path, nameserver: str) -> float:
        cfg_path = root / "merpati.toml"
        cfg_path.write_text(
            f'hostname = "mx.merpati.test"\ndata_dir = "{root}"\n[dns]\nnameservers = ["{nameserver}"]\n'
            + (smtp_checks.CHECKS_ON if checks else smtp_checks.CHECKS_OFF)
        )
        config = load_config(cfg_path)
        store = await open_store(config.storage_url)
        try:
            await store.add_domain("merpati.test")
            account = await store.create_account("user1@merpati.test", "x")
            pipeline = InboundPipeline(store=store, router=Router(store),
                                       settings=PipelineSettings(hostname=config.hostname))
            resolver = DnsPythonResolver(config.dns.nameservers, timeout=config.dns.timeout)
            built = build_checks(config.checks, hostname=config.hostname, resolver=resolver, store=store)
            if checks:
                trainer = BayesTrainer(checks_store(store))
                for i in range(10):
                    await trainer.learn(account.id, f"Subject: win {i}\r\n\r\nlottery prize casino {i}\r\n".encode(), True)
                    await trainer.learn(account.id, f"Subject: notes {i}\r\n\r\nmeeting budget {i}\r\n".encode(), False)
            policy = SessionPolicy(checks=built.pipeline)
            for _ in range(50):  # warm caches (routing, DNS, Bayes tables), as a running server has them
                await one(pipeline, policy)
            t0 = time.process_time()
            for _ in range(messages):
                await one(pipeline, policy)
            return (time.process_time() - t0) / messages * 1e6
        finally:
            await store.close()

    with tempfile.TemporaryDirectory(prefix="micro-mx-") as tmp, \
            DnsServer(smtp_checks.dns_records(), zones=["test", "in-addr.arpa"]) as dns:
        import logging
        logging.disable(logging.CRITICAL)  # the log line per message would go to stderr here
        try:
            return asyncio.run(go(Path(tmp), dns.nameserver))
        finally:
            logging.disable(logging.NOTSET)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--seconds", type=float, default=0.05)
    ap.add_argument("--check", action="store_true", help="verify the session transcript first")
    ap.add_argument("--mx", type=int, default=0, metavar="N",
                    help="also (d): N whole MX messages in process, checks off then on (CPU µs/message)")
    args = ap.parse_args()
    transcript = session(check=True)
    if args.check:
        assert transcript == EXPECTED_SESSION, transcript
    cases = {
        "smtp-session (a)": session,
        "mime-plain (b)": mime(TRACE + BODY),
        "mime-alternative (c)": mime(alternative_message()),
        "mime-mixed (c)": mime(mixed_message()),
    }
    sizes = {"smtp-session (a)": len(BODY), "mime-plain (b)": len(TRACE + BODY),
             "mime-alternative (c)": len(alternative_message()), "mime-mixed (c)": len(mixed_message())}
    for name, fn in cases.items():
        us = measure(fn, args.rounds, args.seconds)
        print(f"{name:22} {us:9.1f} µs/op   ({sizes[name]} bytes)")
    if args.mx:
        off = mx_messages(checks=False, messages=args.mx)
        print(f"{'mx-message checks off':22} {off:9.1f} µs/msg  (CPU, all threads; {len(SMTP_SOURCE_MESSAGE)} bytes)")
        on = mx_messages(checks=True, messages=args.mx)
        print(f"{'mx-message checks on':22} {on:9.1f} µs/msg  (on/off CPU {on / off:.2f})")


if __name__ == "__main__":
    main()
