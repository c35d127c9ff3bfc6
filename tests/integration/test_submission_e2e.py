"""The whole path, end to end: two Merpati instances, a.test on 127.0.0.2 and b.test on
127.0.0.3 (each MX on port 25, outbound connections leaving from its own address), and an
authoritative DNS server on 127.0.0.1 serving MX, A, PTR, SPF, DKIM and DMARC for both.

* alice@a.test submits to A (587, STARTTLS, AUTH; smtplib and swaks); A looks up b.test's MX,
  delivers to B over STARTTLS, DKIM-signed; B files it for bob; bob reads it with imaplib
  (STARTTLS) and with poplib (STLS), sees spf/dkim/dmarc=pass in what he reads, and replies
  through submission; alice reads the reply over IMAP.
* mail to an unknown user at b.test: A gets the 550 and alice reads a DSN in her INBOX (IMAP);
* B is down: the message stays queued with the error recorded, retries follow the schedule,
  and it is delivered once B is back;
* an alias at b.test with a remote target: B forwards through its queue (A still sees
  dkim=pass, dmarc=pass); two aliases pointing at each other across the domains: the loop
  stops at the hop count and alice gets a DSN;
* a forged message claiming to be from a.test, sent straight to B from another address,
  fails SPF and DMARC and is refused per a.test's p=reject.

Port 25 on 127.0.0.2/127.0.0.3 needs root (as CI runs); everything stays on loopback.
"""

from __future__ import annotations

import email
import imaplib
import poplib
import re
import smtplib
import ssl
import subprocess
import time
from email import policy as email_policy
from pathlib import Path

import pytest

from support.dns_server import DnsServer
from support.merpati_server import PASSWORD, MerpatiServer
from support.net import free_port, wait_for_banner
from support.tools import require_tool

A_IP, B_IP, FORGER_IP = "127.0.0.2", "127.0.0.3", "127.0.0.9"


def zone() -> dict:
    return {
        "a.test": {"MX": [(10, "mx.a.test")], "TXT": [f"v=spf1 ip4:{A_IP} -all"]},
        "mx.a.test": {"A": [A_IP]},
        "_dmarc.a.test": {"TXT": ["v=DMARC1; p=reject"]},
        "b.test": {"MX": [(10, "mx.b.test")], "TXT": [f"v=spf1 ip4:{B_IP} -all"]},
        "mx.b.test": {"A": [B_IP]},
        "_dmarc.b.test": {"TXT": ["v=DMARC1; p=reject"]},
        "2.0.0.127.in-addr.arpa": {"PTR": ["mx.a.test"]},
        "3.0.0.127.in-addr.arpa": {"PTR": ["mx.b.test"]},
    }


def queue_config(ip: str) -> str:
    return (
        "[queue]\n"
        f'bind_address = "{ip}"\n'
        'retry_schedule = ["2s"]\n'
        'lifetime = "1h"\n'
        'delay_warning = "0"\n'
        "connect_timeout = 5.0\n"
    )


def dkim_txt(output: str) -> str:
    return "".join(re.findall(r'"([^"]*)"', output))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("e2e")
    dns = DnsServer(zone(), host="127.0.0.1", port=free_port("127.0.0.1"))
    dns.start()
    servers = []
    try:
        for name, ip in (("a", A_IP), ("b", B_IP)):
            server = MerpatiServer(
                root / name, host=ip, port=25, hostname=f"mx.{name}.test", listeners=("submission", "imap", "pop3"),
                dns=dns.nameserver, extra_config=queue_config(ip),
                extra_smtp={"workers": 1, "max_received": 30},  # one process: enqueues wake the runner at once
            )
            servers.append(server)
            server.add_domain(f"{name}.test")
            out = server.cli("dkim", "generate", f"{name}.test", "--selector", "sel",
                             "--algorithm", "rsa" if name == "a" else "ed25519").stdout
            dns.set(f"sel._domainkey.{name}.test", "TXT", [dkim_txt(out)])
        a, b = servers
        a.add_user("alice@a.test")
        b.add_user("bob@b.test")
        b.add_alias("fwd@b.test", "bob@b.test", "alice@a.test")  # one local, one remote target
        a.add_alias("loop@a.test", "loop@b.test")
        b.add_alias("loop@b.test", "loop@a.test")
        for server in servers:
            server.start()
            # start() waits for the MX banner; the submission listener comes up just after it
            wait_for_banner(server.host, server.ports["submission"], timeout=30, alive=lambda: server.running)
        yield dns, a, b
    finally:
        for server in servers:
            server.stop()
        dns.stop()


def insecure() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def submit(server: MerpatiServer, user: str, rcpts: list[str], body: str) -> None:
    with smtplib.SMTP(server.host, server.ports["submission"], timeout=30) as s:
        s.ehlo("client.test")
        s.starttls(context=insecure())
        s.ehlo("client.test")
        s.login(user, PASSWORD)
        assert s.sendmail(user, rcpts, body) == {}


def wait_for(server: MerpatiServer, user: str, count: int, timeout: float = 60.0, mailbox: str = "INBOX") -> list[bytes]:
    deadline = time.monotonic() + timeout
    while True:
        messages = server.export(user, mailbox)
        if len(messages) >= count or time.monotonic() > deadline:
            return messages
        time.sleep(0.5)


def imap_login(server: MerpatiServer, user: str) -> imaplib.IMAP4:
    """imaplib over STARTTLS, as a mail client would (LOGIN only after TLS)."""
    imap = imaplib.IMAP4(server.host, server.ports["imap"], timeout=30)
    imap.starttls(ssl_context=insecure())
    typ, _ = imap.login(user, PASSWORD)
    assert typ == "OK"
    return imap


def imap_messages(server: MerpatiServer, user: str, mailbox: str = "INBOX") -> list[bytes]:
    """Every message of ``mailbox``, read over IMAP (UID FETCH BODY.PEEK[]), in UID order."""
    imap = imap_login(server, user)
    try:
        typ, _ = imap.select(mailbox, readonly=True)
        assert typ == "OK", mailbox
        typ, data = imap.uid("SEARCH", "ALL")
        assert typ == "OK"
        uids = data[0].split()
        if not uids:
            return []
        typ, data = imap.uid("FETCH", b",".join(uids).decode(), "(UID BODY.PEEK[])")
        assert typ == "OK"
        found = []
        for item in data:
            if isinstance(item, tuple):
                uid = int(re.search(rb"UID (\d+)", item[0]).group(1))
                found.append((uid, item[1]))
        return [body for _, body in sorted(found)]
    finally:
        imap.logout()


def imap_wait(server: MerpatiServer, user: str, predicate, timeout: float = 60.0, mailbox: str = "INBOX") -> list[bytes]:
    """The messages of ``mailbox`` (over IMAP) that satisfy ``predicate``, polled until one does."""
    deadline = time.monotonic() + timeout
    while True:
        found = [m for m in imap_messages(server, user, mailbox) if predicate(m)]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def pop3_messages(server: MerpatiServer, user: str) -> list[bytes]:
    """Every message of the maildrop, read with poplib after STLS (RETR, nothing deleted)."""
    pop = poplib.POP3(server.host, server.ports["pop3"], timeout=30)
    try:
        pop.stls(context=insecure())
        pop.user(user)
        assert pop.pass_(PASSWORD).startswith(b"+OK")
        count, _ = pop.stat()
        messages = []
        for number in range(1, count + 1):
            _, lines, _ = pop.retr(number)
            messages.append(b"\r\n".join(lines) + b"\r\n")
        return messages
    finally:
        pop.quit()


def note(subject: str, sender: str, to: str) -> str:
    return f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\n\r\nHello from {sender}.\r\n"


def auth_results(message: bytes) -> str:
    parsed = email.message_from_bytes(message, policy=email_policy.compat32)
    return " ".join(parsed.get_all("Authentication-Results") or [])


def check_received_from_a(got: bytes) -> None:
    assert b"DKIM-Signature:" in got and b"d=a.test" in got
    assert re.search(rb"Received: from mx\.a\.test \(.*\[127\.0\.0\.2\]\)", got), got[:600]
    assert b"with ESMTPS" in got  # A used STARTTLS towards B's MX
    results = auth_results(got)
    assert "mx.b.test" in results
    for verdict in ("spf=pass", "dkim=pass", "dmarc=pass"):
        assert verdict in results, results


def test_submit_deliver_over_mx_and_reply(world) -> None:
    _, a, b = world
    submit(a, "alice@a.test", ["bob@b.test"], note("first", "Alice <alice@a.test>", "bob@b.test"))
    # bob reads it with imaplib (STARTTLS, LOGIN)
    (got,) = imap_wait(b, "bob@b.test", lambda m: b"Subject: first" in m)
    check_received_from_a(got)
    # ... and with poplib (STLS, USER/PASS, RETR): the same message, byte for byte
    popped = [m for m in pop3_messages(b, "bob@b.test") if b"Subject: first" in m]
    assert popped == [got]
    check_received_from_a(popped[0])
    # bob replies through submission; alice reads the reply over IMAP
    original = email.message_from_bytes(got, policy=email_policy.compat32)
    reply = (
        "From: bob@b.test\r\nTo: alice@a.test\r\nSubject: Re: first\r\n"
        f"In-Reply-To: {original['Message-ID']}\r\nReferences: {original['Message-ID']}\r\n"
        "\r\nHello from bob@b.test.\r\n"
    )
    assert original["Message-ID"]  # submission added one
    submit(b, "bob@b.test", ["alice@a.test"], reply)
    (answer,) = imap_wait(a, "alice@a.test", lambda m: b"Subject: Re: first" in m)
    results = auth_results(answer)
    assert "mx.a.test" in results
    for verdict in ("spf=pass", "dkim=pass", "dmarc=pass"):
        assert verdict in results, results
    assert original["Message-ID"].encode() in answer


def test_swaks_submission(world) -> None:
    _, a, b = world
    swaks = require_tool("swaks")
    proc = subprocess.run(
        [swaks, "--server", a.host, "--port", str(a.ports["submission"]), "--tls", "--auth", "PLAIN",
         "--auth-user", "alice@a.test", "--auth-password", PASSWORD, "--from", "alice@a.test",
         "--to", "bob@b.test", "--h-From", "alice@a.test", "--h-Subject", "via-swaks", "--helo", "client.test"],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert "STARTTLS" in proc.stdout and "TLS started" in proc.stdout, proc.stdout[-2000:]
    assert any(b"Subject: via-swaks" in m for m in wait_for_subject(b, "bob@b.test", b"via-swaks"))


def wait_for_subject(server: MerpatiServer, user: str, subject: bytes, timeout: float = 60.0) -> list[bytes]:
    deadline = time.monotonic() + timeout
    while True:
        found = [m for m in server.export(user) if b"Subject: " + subject in m]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def test_unknown_remote_user_bounces_to_the_sender(world) -> None:
    _, a, _ = world
    submit(a, "alice@a.test", ["nobody@b.test"], note("to-nobody", "alice@a.test", "nobody@b.test"))
    dsns = imap_wait(a, "alice@a.test", lambda m: b"multipart/report" in m and b"to-nobody" in m)
    assert dsns, a.log_tail()
    report = email.message_from_bytes(dsns[0], policy=email_policy.default)
    blocks = report.get_payload()[1].get_payload()
    assert blocks[1]["Final-Recipient"] == "rfc822; nobody@b.test"
    assert blocks[1]["Action"] == "failed" and blocks[1]["Status"].startswith("5.1.")
    assert blocks[1]["Remote-MTA"] == "dns; mx.b.test"
    assert report["Return-Path"] == "<>"


def test_remote_down_stays_queued_then_delivered(world) -> None:
    _, a, b = world
    b.stop()
    try:
        submit(a, "alice@a.test", ["bob@b.test"], note("while-down", "alice@a.test", "bob@b.test"))
        deadline = time.monotonic() + 30
        listing = ""
        while time.monotonic() < deadline:
            listing = a.cli("queue", "list").stdout
            if "connect to mx.b.test" in listing:
                break
            time.sleep(0.5)
        assert "connect to mx.b.test[127.0.0.3]:25" in listing, listing
        queue_id = listing.splitlines()[1].split()[0]
        time.sleep(5)  # a couple more attempts on the 2 s schedule
        shown = a.cli("queue", "show", queue_id).stdout
        attempts = int(re.search(r"(\d+) attempt\(s\)", shown).group(1))
        assert attempts >= 2, shown
    finally:
        b.start()
        wait_for_banner(b.host, b.ports["submission"], timeout=30, alive=lambda: b.running)
    assert wait_for_subject(b, "bob@b.test", b"while-down"), a.log_tail()
    assert "the queue is empty" in a.cli("queue", "list").stdout or "while-down" not in a.cli("queue", "list").stdout


def test_forged_sender_is_rejected_per_dmarc_reject(world) -> None:
    _, _, b = world
    with smtplib.SMTP(b.host, 25, timeout=30, source_address=(FORGER_IP, 0)) as s:
        s.ehlo("forger.example")
        with pytest.raises(smtplib.SMTPDataError) as refused:
            s.sendmail("alice@a.test", ["bob@b.test"], note("forged", "alice@a.test", "bob@b.test"))
    assert refused.value.smtp_code == 550 and b"5.7.1" in refused.value.smtp_error
    assert not [m for m in b.export("bob@b.test") if b"Subject: forged" in m]


def test_remote_alias_target_is_forwarded_through_the_queue(world) -> None:
    _, a, b = world
    submit(a, "alice@a.test", ["fwd@b.test"], note("forward-me", "alice@a.test", "fwd@b.test"))
    assert wait_for_subject(b, "bob@b.test", b"forward-me")
    (forwarded,) = wait_for_subject(a, "alice@a.test", b"forward-me")
    assert forwarded.count(b"Received: from mx.b.test") == 1
    results = auth_results(forwarded)
    assert "dkim=pass" in results and "dmarc=pass" in results, results


def test_mail_loop_between_two_domains_is_stopped_by_the_hop_count(world) -> None:
    _, a, _ = world
    submit(a, "alice@a.test", ["loop@a.test"], note("loop-me", "alice@a.test", "loop@a.test"))
    deadline = time.monotonic() + 90
    dsns: list[bytes] = []
    while not dsns and time.monotonic() < deadline:
        dsns = [m for m in a.export("alice@a.test") if b"multipart/report" in m and b"loop-me" in m]
        time.sleep(0.5)
    assert dsns, a.log_tail()
    report = email.message_from_bytes(dsns[0], policy=email_policy.default)
    block = report.get_payload()[1].get_payload()[1]
    assert block["Action"] == "failed" and block["Status"] == "5.4.6", str(block)
