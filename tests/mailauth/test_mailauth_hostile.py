"""Hostile input (SECURITY-CASES P2): record and header parsers never raise anything but
their own syntax errors, evaluation always ends with a result, and DNS work stays bounded."""

from __future__ import annotations

import asyncio

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from merpati.mailauth import (
    SpfVerdict,
    check_spf,
    remove_authentication_results,
    verify_dkim,
    verify_message,
)
from merpati.mailauth.dmarc import DmarcSyntaxError, parse_dmarc_record
from merpati.mailauth.spf import SpfSyntaxError, parse_record
from merpati.resolver import FakeResolver


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


SPF_TOKENS = st.sampled_from([
    "a", "mx", "ptr", "all", "-all", "~all", "?all", "+a", "a:x.test", "mx:x.test/24", "a//64", "include:x.test",
    "include:y.test", "exists:%{i}.x.test", "redirect=x.test", "redirect=y.test", "exp=x.test", "ip4:192.0.2.0/24",
    "ip6:2001:db8::/32", "ptr:x.test", "%{d}", "a:%{l}.x.test", "a:%{d5r-}.x.test", "foo=bar", "ip4:1.2.3.4/",
    "%", "=", ":", "a:", "v=spf1", "x", "%{z}", "a:%{o}%{o}%{o}%{o}%{o}%{o}%{o}%{o}%{o}.test",
])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(x=st.lists(SPF_TOKENS, max_size=12), y=st.lists(SPF_TOKENS, max_size=12),
       junk=st.text(max_size=30))
def test_spf_always_ends_with_a_result_and_bounded_lookups(x: list[str], y: list[str], junk: str) -> None:
    fake = FakeResolver({
        "x.test": {"TXT": ["v=spf1 " + " ".join(x)], "A": ["192.0.2.1"], "MX": [(1, "x.test")]},
        "y.test": {"TXT": ["v=spf1 " + " ".join(y) + " " + junk]},
        "1.2.0.192.in-addr.arpa": {"PTR": ["x.test"]},
    })
    try:
        parse_record("v=spf1 " + " ".join(x))
    except SpfSyntaxError:
        pass
    result = run(check_spf(fake, "192.0.2.1", "user@x.test", "h.test", timeout=5))
    assert result.result in set(SpfVerdict)
    # 10 terms, each at most 1 + 10 MX address lookups or 1 + 10 PTR checks, plus TXT fetches
    assert len(fake.queries) <= 250


def test_spf_include_loops_and_deep_chains_end() -> None:
    records = {f"d{i}.test": {"TXT": [f"v=spf1 include:d{i + 1}.test -all"]} for i in range(30)}
    records["loop.test"] = {"TXT": ["v=spf1 redirect=loop.test"]}
    fake = FakeResolver(records)
    assert run(check_spf(fake, "192.0.2.1", "u@d0.test", "h")).result == SpfVerdict.PERMERROR
    assert run(check_spf(fake, "192.0.2.1", "u@loop.test", "h")).result == SpfVerdict.PERMERROR
    assert len(fake.queries) <= 30


def test_spf_huge_record_and_long_macro_expansion() -> None:
    fake = FakeResolver({
        "big.test": {"TXT": ["v=spf1 " + "ip4:192.0.2.1 " * 2000]},
        "long.test": {"TXT": ["v=spf1 exists:" + "%{s}." * 60 + "x.test -all"]},
    })
    assert run(check_spf(fake, "192.0.2.1", "u@big.test", "h")).result == SpfVerdict.PERMERROR
    result = run(check_spf(fake, "192.0.2.1", "u" * 60 + "@long.test", "h"))
    assert result.result == SpfVerdict.FAIL
    assert all(len(name) <= 253 for name, _ in fake.queries)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=300))
def test_dmarc_record_parser(data: bytes) -> None:
    try:
        parse_dmarc_record(b"v=DMARC1; " + data)
    except DmarcSyntaxError:
        pass


HEADER_PIECES = st.sampled_from([
    b"DKIM-Signature: ", b"v=1; ", b"a=rsa-sha256; ", b"a=ed25519-sha256; ", b"d=a.test; ", b"s=s; ", b"h=from; ",
    b"bh=AAAA; ", b"b=AAAA; ", b"l=99999999999999999999; ", b"x=1; ", b"c=relaxed/relaxed; ", b"i=@a.test; ", b";",
    b"=", b"\r\n ", b"\r\n", b"From: a@a.test\r\n", b"\x00\xff", b"Authentication-Results: mx.b.test; x\r\n",
    b"From: x)<y@b.test>\r\n", b"\r\n\r\nbody", b"(", b'"',
])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(HEADER_PIECES, max_size=30))
def test_verification_never_raises(pieces: list[bytes]) -> None:
    message = b"".join(pieces)
    fake = FakeResolver({"s._domainkey.a.test": {"TXT": ["v=DKIM1; p=AAAA"]}})
    results = run(verify_dkim(fake, message))
    assert len(results) <= 10
    verdict = run(verify_message(fake, message, "192.0.2.1", "h.test", "", "mx.b.test", timeout=5))
    assert verdict.header.startswith(b"Authentication-Results: mx.b.test;")
    assert verdict.header.count(b"\n") == verdict.header.count(b"\r\n")
    cleaned = remove_authentication_results(message, "mx.b.test")
    assert len(cleaned) <= len(message)
