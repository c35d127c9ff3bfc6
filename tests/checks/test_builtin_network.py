"""HELO sanity, iprev and DNSBL against a table-driven resolver."""

from __future__ import annotations

import pytest

from merpati.delivery.checks.context import CheckContext, Stage
from merpati.delivery.checks.dnsbl import DnsblCheck, Zone, parse_zone, query_name
from merpati.delivery.checks.helo import HeloCheck
from merpati.delivery.checks.iprev import IprevCheck
from merpati.delivery.envelope import ClientInfo
from merpati.resolver import FakeResolver


@pytest.mark.parametrize(
    ("helo", "scored"),
    [
        ("mail.example.org", None),
        ("mail.example.org.", None),
        ("[192.0.2.9]", None),
        ("[192.0.2.10]", "not the client's"),
        ("[IPv6:2001:db8::1]", "not the client's"),
        ("[nonsense]", "not an address"),
        ("192.0.2.9", "bare IP"),
        ("localhost", "not fully qualified"),
        ("bad_name.example", "not a valid domain"),
        ("-bad.example", "not a valid domain"),
        ("", "not a valid domain"),
        ("mx.ours.test", "claims to be this server"),
        ("a" * 300 + ".example", "not a valid domain"),
    ],
)
def test_helo_judgement(helo: str, scored: str | None) -> None:
    result = HeloCheck().judge(helo, client_ip="192.0.2.9", ours="mx.ours.test")
    if scored is None:
        assert result is None
    else:
        assert result is not None and scored in result.reason and result.score > 0


def ctx(ip: str) -> CheckContext:
    return CheckContext(stage=Stage.CONNECT, client=ClientInfo(ip, 1), hostname="mx.ours.test")


RECORDS = {
    "9.2.0.192.in-addr.arpa": {"PTR": ["mail.example.org"]},
    "mail.example.org": {"A": ["192.0.2.9"]},
    "10.2.0.192.in-addr.arpa": {"PTR": ["liar.example.org"]},
    "liar.example.org": {"A": ["198.51.100.1"]},
    "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa": {"PTR": ["v6.example.org"]},
    "v6.example.org": {"AAAA": ["2001:db8::1"]},
}


async def test_iprev_pass_fail_and_temperror() -> None:
    resolver = FakeResolver(RECORDS, servfail={"12.2.0.192.in-addr.arpa"})
    check = IprevCheck(resolver)
    c = ctx("192.0.2.9")
    assert await check.on_connect(c) is None and c.session["iprev"].result == "pass"
    assert c.session["iprev"].name == "mail.example.org"
    mismatch = await check.on_connect(ctx("192.0.2.10"))
    assert mismatch is not None and "does not resolve" in mismatch.reason
    none = await check.on_connect(ctx("192.0.2.11"))
    assert none is not None and "no reverse DNS" in none.reason
    c = ctx("192.0.2.12")
    assert await check.on_connect(c) is None and c.session["iprev"].result == "temperror"
    c = ctx("2001:db8::1")
    assert await check.on_connect(c) is None and c.session["iprev"].result == "pass"


async def test_iprev_results_are_cached_but_temperrors_are_not() -> None:
    resolver = FakeResolver(RECORDS, servfail={"12.2.0.192.in-addr.arpa"})
    check = IprevCheck(resolver)
    for _ in range(3):
        await check.lookup("192.0.2.9")
        await check.lookup("192.0.2.12")
    assert resolver.queries.count(("9.2.0.192.in-addr.arpa", "PTR")) == 1
    assert resolver.queries.count(("12.2.0.192.in-addr.arpa", "PTR")) == 3


def test_zone_specs() -> None:
    assert parse_zone("zen.example") == Zone("zen.example")
    assert parse_zone("zen.example:2.5") == Zone("zen.example", frozenset(), 2.5)
    z = parse_zone("zen.example=127.0.0.2,127.0.0.4:6")
    assert z.codes == frozenset({"127.0.0.2", "127.0.0.4"}) and z.score == 6
    for bad in ("", "nodot", "zen.example=not-an-ip", "zen.example:x", "a b.example"):
        with pytest.raises(ValueError):
            parse_zone(bad)


def test_query_names() -> None:
    assert query_name("192.0.2.9", "bl.test") == "9.2.0.192.bl.test"
    assert query_name("2001:db8::1", "bl.test").startswith("1.0.0.0.0.0.0.0.0.0.0.0")
    assert query_name("2001:db8::1", "bl.test").endswith("8.b.d.0.1.0.0.2.bl.test")


async def test_dnsbl_return_codes_and_errors() -> None:
    resolver = FakeResolver({
        "9.2.0.192.bl.test": {"A": ["127.0.0.2"]},
        "9.2.0.192.codes.test": {"A": ["127.0.0.10"]},
        "9.2.0.192.refused.test": {"A": ["127.255.255.254"]},
        "9.2.0.192.outside.test": {"A": ["192.0.2.1"]},
    }, servfail={"9.2.0.192.broken.test"})
    zones = [parse_zone(z) for z in ("bl.test:3", "codes.test=127.0.0.2", "refused.test", "outside.test", "broken.test")]
    check = DnsblCheck(resolver, zones, score=5.0)
    results = await check.on_connect(ctx("192.0.2.9"))
    assert results is not None and len(results) == 1
    assert results[0].score == 3 and "bl.test as 127.0.0.2" in results[0].reason
    assert await check.on_connect(ctx("192.0.2.8")) is None


async def test_dnsbl_reject_mode_refuses_at_rcpt_and_caches() -> None:
    resolver = FakeResolver({"9.2.0.192.bl.test": {"A": ["127.0.0.2"]}})
    check = DnsblCheck(resolver, [parse_zone("bl.test")], reject_listed=True)
    c = ctx("192.0.2.9")
    assert await check.on_connect(c) is None
    c.stage = Stage.RCPT
    refusal = await check.on_rcpt(c)
    assert refusal is not None and refusal.code == 554 and refusal.enhanced == "5.7.1" and "bl.test" in refusal.text
    await check.on_connect(ctx("192.0.2.9"))
    assert resolver.queries.count(("9.2.0.192.bl.test", "A")) == 1
