"""Content and sender checks end to end through the MX listener of a real `merpati serve`.

One server, a loopback DNS server with a DNSBL zone, reverse names and a DMARC p=reject
domain, and a site hooks module. Clients connect from chosen loopback source addresses, so
the DNSBL listing and the reverse DNS are the test's to decide.
"""

from __future__ import annotations

import smtplib
import socket
import textwrap
import time

import pytest

from support.dns_server import DnsServer
from support.merpati_server import MerpatiServer
from support.messages import make_message, split_trace
from support.net import worker_address

SENDER = "someone@elsewhere.test"
HOOKS = textwrap.dedent('''
    from merpati.delivery.checks import reject, add_score
    NAME = "site"

    async def on_rcpt(ctx):
        if ctx.recipient.lower().startswith("moved-"):
            return reject("This address has moved", 550, "5.1.6")

    async def on_data(ctx):
        if "free money" in (ctx.header("Subject") or "").lower():
            return add_score(7.0, "free money in the subject")
''')


def address(n: int) -> str:
    return worker_address(n)


def reverse(ip: str) -> str:
    return ".".join(reversed(ip.split("."))) + ".in-addr.arpa"


@pytest.fixture(scope="module")
def dns():
    good, listed = address(21), address(22)
    records = {
        "test": {},
        reverse(good): {"PTR": ["good-client.elsewhere.test"]},
        "good-client.elsewhere.test": {"A": [good]},
        ".".join(reversed(listed.split("."))) + ".bl.test": {"A": ["127.0.0.2"]},
        "a.test": {"TXT": ["v=spf1 ip4:192.0.2.1 -all"]},
        "_dmarc.a.test": {"TXT": ["v=DMARC1; p=reject"]},
    }
    with DnsServer(records, zones=["test", "in-addr.arpa"]) as server:
        yield server


@pytest.fixture(scope="module")
def server(tmp_path_factory, dns):
    root = tmp_path_factory.mktemp("checks-mx")
    (root / "hooks.py").write_text(HOOKS)
    s = MerpatiServer(
        root, host=worker_address(2), dns=dns.nameserver,
        extra_config=(
            "[checks]\n"
            f'hooks = "{root / "hooks.py"}"\n'
            "pregreet_wait = 0.3\n"
            "[checks.dnsbl]\n"
            'zones = ["bl.test:7"]\n'
        ),
    )
    s.add_domain("merpati.test")
    s.start()
    yield s
    s.stop()


def client(server, source: str) -> smtplib.SMTP:
    return smtplib.SMTP(server.host, server.port, local_hostname="client.elsewhere.test", timeout=15,
                        source_address=(source, 0))


def deliver(server, source: str, rcpt: str, msg: bytes) -> None:
    with client(server, source) as c:
        assert c.sendmail(SENDER, [rcpt], msg) == {}


def test_every_message_carries_an_explained_verdict(server) -> None:
    rcpt = server.new_user("verdict")
    msg = make_message(sender=SENDER, to=rcpt, subject="hello")
    deliver(server, address(21), rcpt, msg)
    [stored] = server.export(rcpt)
    parts = split_trace(stored)
    assert parts.original == msg
    assert parts.checks["merpati-verdict"].startswith(b" inbox; score=")
    assert parts.checks["x-spam-status"].startswith(b" No, score=")
    ar = parts.checks["authentication-results"]
    assert ar.startswith(f" {server.hostname};".encode()) and b"iprev=pass" in ar and b"spf=none" in ar
    assert server.export(rcpt, mailbox="Junk") == []


def test_no_reverse_dns_is_scored_and_explained(server) -> None:
    rcpt = server.new_user("norev")
    deliver(server, address(23), rcpt, make_message(sender=SENDER, to=rcpt))
    [stored] = server.export(rcpt)
    verdict = split_trace(stored).checks["merpati-verdict"]
    assert b"iprev=+1.50 (no reverse DNS for " + address(23).encode() in verdict


def test_a_dnsbl_listing_files_into_junk(server) -> None:
    rcpt = server.new_user("listed")
    deliver(server, address(22), rcpt, make_message(sender=SENDER, to=rcpt, subject="from a listed host"))
    assert server.export(rcpt) == []
    [stored] = server.export(rcpt, mailbox="Junk")
    checks = split_trace(stored).checks
    assert checks["merpati-verdict"].startswith(b" junk;")
    assert b"dnsbl=+7.00" in checks["merpati-verdict"] and b"bl.test as 127.0.0.2" in checks["merpati-verdict"]
    assert checks["x-spam-status"].startswith(b" Yes, score=")


def test_a_hook_scores_and_rejects(server) -> None:
    rcpt = server.new_user("hooked")
    deliver(server, address(21), rcpt, make_message(sender=SENDER, to=rcpt, subject="Free money inside"))
    [stored] = server.export(rcpt, mailbox="Junk")
    assert b"site=+7.00 (free money in the subject)" in split_trace(stored).checks["merpati-verdict"]
    moved = server.new_user("moved")
    with client(server, address(21)) as c:
        c.ehlo()
        c.mail(SENDER)
        code, text = c.rcpt(moved)
        assert code == 550 and b"5.1.6" in text and b"moved" in text


def test_dmarc_reject_is_550_at_end_of_data(server) -> None:
    rcpt = server.new_user("dmarc")
    forged = make_message(sender="ceo@a.test", to=rcpt, subject="wire money")
    with client(server, address(21)) as c:
        with pytest.raises(smtplib.SMTPDataError) as err:
            c.sendmail("ceo@a.test", [rcpt], forged)
    assert err.value.smtp_code == 550 and b"5.7.1" in err.value.smtp_error and b"DMARC" in err.value.smtp_error
    assert server.export(rcpt) == [] and server.export(rcpt, mailbox="Junk") == []


def test_forged_authentication_results_are_removed(server) -> None:
    rcpt = server.new_user("forged")
    fake = f"Authentication-Results: {server.hostname}; dmarc=pass header.from=bank.test\r\n".encode()
    msg = make_message(sender=SENDER, to=rcpt, extra_headers=fake)
    deliver(server, address(21), rcpt, msg)
    [stored] = server.export(rcpt)
    parts = split_trace(stored)
    assert b"dmarc=pass header.from=bank.test" not in stored
    assert parts.original == msg.replace(fake, b"")


def test_talking_before_the_banner_is_refused_at_mail(server) -> None:
    with socket.create_connection((server.host, server.port), timeout=15, source_address=(address(21), 0)) as s:
        s.sendall(b"EHLO early.elsewhere.test\r\n")
        time.sleep(0.5)
        s.sendall(b"MAIL FROM:<x@elsewhere.test>\r\n")
        data = b""
        deadline = time.monotonic() + 10
        while data.count(b"\r\n") < 3 + data.count(b"250-") and time.monotonic() < deadline:
            data += s.recv(4096)
    lines = data.split(b"\r\n")
    assert lines[0].startswith(b"220 ")
    assert any(line.startswith(b"550 5.5.1") and b"before the greeting" in line for line in lines), data


@pytest.fixture(scope="module")
def greylisting(tmp_path_factory, dns):
    s = MerpatiServer(
        tmp_path_factory.mktemp("checks-greylist"), host=worker_address(4), dns=dns.nameserver,
        extra_config='[checks]\n[checks.greylist]\nenabled = true\ndelay = "1s"\n',
    )
    s.add_domain("merpati.test")
    s.start()
    yield s
    s.stop()


def test_greylisting_defers_the_first_attempt_then_passes(greylisting) -> None:
    rcpt = greylisting.new_user("grey")
    msg = make_message(sender=SENDER, to=rcpt)
    with client(greylisting, address(24)) as c:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as err:
            c.sendmail(SENDER, [rcpt], msg)
    code, text = err.value.recipients[rcpt]
    assert code == 451 and b"4.7.1" in text and b"Greylisted" in text
    time.sleep(1.2)
    with client(greylisting, address(24)) as c:  # the retry from the same /24 passes
        assert c.sendmail(SENDER, [rcpt], msg) == {}
    with client(greylisting, address(24)) as c:  # and the triple stays known
        assert c.sendmail(SENDER, [rcpt], msg) == {}
    assert len(greylisting.export(rcpt)) == 2
