"""verify_message: SPF + DKIM + DMARC together, the strict From reading, the time limit,
and the whole path over a real DNS server on loopback with the production resolver."""

from __future__ import annotations

import asyncio

import pytest
from support.dns_server import DnsServer

from merpati.mailauth import (
    DkimSigner,
    DkimVerdict,
    DmarcVerdict,
    FromDomainError,
    SpfVerdict,
    author_domains,
    generate_key,
    verify_message,
)
from merpati.resolver import DnsPythonResolver, FakeResolver


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


PEM, TXT = generate_key("rsa")
ZONE = {
    "a.test": {"TXT": ["v=spf1 ip4:127.0.0.2 -all"], "MX": [(10, "mx.a.test")]},
    "mx.a.test": {"A": ["127.0.0.2"], "TXT": ["v=spf1 a -all"]},
    "sel._domainkey.a.test": {"TXT": [TXT]},
    "_dmarc.a.test": {"TXT": ["v=DMARC1; p=reject; rua=mailto:dmarc@a.test"]},
    "b.test": {"TXT": ["v=spf1 -all"]},
}
BODY = (b"From: Alice <alice@a.test>\r\nTo: bob@b.test\r\nSubject: hi\r\n"
        b"Date: Mon, 1 Jan 2024 00:00:00 +0000\r\nMessage-ID: <x@a.test>\r\n\r\nHello Bob.\r\n")
SIGNED = DkimSigner("a.test", "sel", PEM).sign(BODY) + BODY


@pytest.mark.parametrize(("values", "expected"), [
    (["Alice <alice@a.test>"], ["a.test"]),
    (["alice@A.TEST (Alice x@evil.test)"], ["a.test"]),
    (['"x@evil.test" <alice@a.test>'], ["a.test"]),
    (["a@a.test, b@b.test"], ["a.test", "b.test"]),
    (["a@a.test", "b@a.test"], ["a.test"]),
    (["=?utf-8?q?x?= <j@b\u00fccher.test>".encode().decode("latin-1")], ["xn--bcher-kva.test"]),
])
def test_author_domains(values: list[str], expected: list[str]) -> None:
    assert author_domains(values) == expected


@pytest.mark.parametrize("values", [
    [], ["undisclosed-recipients:;"], ["bad"], ["alice@example.org)<bob@example.org>"],
    ["Joe <joe@[192.0.2.1]>"], ["a@-bad-.test"], ["<>"], ["a@a.test (unclosed"],
])
def test_author_domains_refuses_ambiguity(values: list[str]) -> None:
    with pytest.raises(FromDomainError):
        author_domains(values)


def test_pass_with_fake_resolver() -> None:
    verdict = run(verify_message(FakeResolver(ZONE), SIGNED, "127.0.0.2", "mx.a.test", "alice@a.test", "mx.b.test"))
    assert verdict.spf.result == SpfVerdict.PASS
    assert verdict.spf_helo is not None and verdict.spf_helo.result == SpfVerdict.PASS
    assert [r.result for r in verdict.dkim] == [DkimVerdict.PASS]
    assert verdict.dmarc.result == DmarcVerdict.PASS and not verdict.temporary
    assert verdict.header.startswith(b"Authentication-Results: mx.b.test;\r\n\tspf=pass smtp.mailfrom=alice@a.test;")
    assert b"dmarc=pass (p=reject dis=none) header.from=a.test" in verdict.header
    assert verdict.header_value.startswith("mx.b.test;")


def test_forgery_fails_dmarc_with_reject() -> None:
    verdict = run(verify_message(FakeResolver(ZONE), BODY, "127.0.0.9", "evil.test", "alice@a.test", "mx.b.test"))
    assert verdict.spf.result == SpfVerdict.FAIL
    assert verdict.dkim == [] and b"dkim=none" in verdict.header
    assert verdict.dmarc.result == DmarcVerdict.FAIL and verdict.dmarc.disposition == "reject"
    # a second, innocent author domain does not hide the failing one
    two = BODY.replace(b"From: Alice <alice@a.test>", b"From: alice@a.test, carol@nodmarc.test")
    verdict = run(verify_message(FakeResolver(ZONE), two, "127.0.0.9", "evil.test", "x@nodmarc.test", "mx.b.test"))
    assert verdict.dmarc.result == DmarcVerdict.FAIL and verdict.dmarc.from_domain == "a.test"
    assert len(verdict.all_dmarc) == 2


def test_ambiguous_from_is_permerror() -> None:
    bad = BODY.replace(b"From: Alice <alice@a.test>", b"From: alice@example.org)<bob@a.test>")
    verdict = run(verify_message(FakeResolver(ZONE), bad, "127.0.0.2", "mx.a.test", "alice@a.test", "mx.b.test"))
    assert verdict.dmarc.result == DmarcVerdict.PERMERROR
    missing = b"Subject: no from\r\n\r\nx\r\n"
    verdict = run(verify_message(FakeResolver(ZONE), missing, "127.0.0.2", "mx.a.test", "alice@a.test", "mx.b.test"))
    assert verdict.dmarc.result == DmarcVerdict.PERMERROR


def test_temporary_dns_errors_are_temperror_not_fail() -> None:
    fake = FakeResolver(ZONE, servfail={"a.test", "sel._domainkey.a.test"})
    verdict = run(verify_message(fake, SIGNED, "127.0.0.9", "mx.a.test", "alice@a.test", "mx.b.test"))
    assert verdict.spf.result == SpfVerdict.TEMPERROR
    assert verdict.dkim[0].result == DkimVerdict.TEMPERROR
    assert verdict.dmarc.result == DmarcVerdict.TEMPERROR and verdict.dmarc.disposition == "none"
    assert verdict.temporary


def test_overall_time_limit() -> None:
    fake = FakeResolver(ZONE, delays={"_dmarc.a.test": 60, "a.test": 60})

    async def go():  # type: ignore[no-untyped-def]
        return await asyncio.wait_for(
            verify_message(fake, SIGNED, "127.0.0.2", "mx.a.test", "alice@a.test", "mx.b.test", timeout=0.2), 30)

    verdict = run(go())
    assert verdict.temporary
    assert verdict.spf.result == SpfVerdict.TEMPERROR
    assert verdict.dmarc.result == DmarcVerdict.TEMPERROR
    assert verdict.dkim[0].result == DkimVerdict.PASS  # its own lookups were answered


def test_over_a_real_dns_server() -> None:
    with DnsServer(ZONE) as server:
        resolver = DnsPythonResolver([server.nameserver], timeout=2)
        verdict = run(verify_message(resolver, SIGNED, "127.0.0.2", "mx.a.test", "alice@a.test", "mx.b.test"))
        assert (verdict.spf.result, verdict.dkim[0].result, verdict.dmarc.result) == ("pass", "pass", "pass")
        forged = run(verify_message(resolver, BODY, "127.0.0.3", "b.test", "alice@a.test", "mx.b.test"))
        assert forged.dmarc.result == DmarcVerdict.FAIL and forged.dmarc.disposition == "reject"

        server.servfail("_dmarc.a.test")
        fresh = DnsPythonResolver([server.nameserver], timeout=2)
        verdict = run(verify_message(fresh, BODY, "127.0.0.3", "b.test", "alice@a.test", "mx.b.test"))
        assert verdict.dmarc.result == DmarcVerdict.TEMPERROR and verdict.temporary

        server.clear_failures()
        server.drop("a.test", "TXT")
        slow = DnsPythonResolver([server.nameserver], timeout=0.5)
        verdict = run(verify_message(slow, SIGNED, "127.0.0.2", "mx.a.test", "alice@a.test", "mx.b.test",
                                     timeout=10))
        assert verdict.spf.result == SpfVerdict.TEMPERROR
        assert verdict.dmarc.result == DmarcVerdict.PASS  # DKIM still aligned and passing
