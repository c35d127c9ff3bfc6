"""The loopback DNS test server, exercised through the production DnsPythonResolver
(and raw dnspython queries where the wire details matter)."""

from __future__ import annotations

import asyncio
import ipaddress

import dns.flags
import dns.message
import dns.query
import dns.rcode
import pytest
from support.dns_server import DnsServer, DnsServerProcess

from merpati.resolver import (
    DnsPermError,
    DnsPythonResolver,
    DnsTempError,
    DnsTimeout,
    MxRecord,
    NoData,
    NullMx,
    NxDomain,
    next_hops,
    parse_nameserver,
)

LONG_KEY = "v=DKIM1; k=rsa; p=" + "A" * 600

ZONE = {
    "a.test": {"MX": [(10, "mx.a.test")], "TXT": ["v=spf1 ip4:127.0.0.2 -all"], "A": ["127.0.0.2"]},
    "mx.a.test": {"A": ["127.0.0.2"], "AAAA": ["::1"]},
    "sel._domainkey.a.test": {"TXT": [LONG_KEY]},
    "www.a.test": {"CNAME": "mx.a.test"},
    "2.0.0.127.in-addr.arpa": {"PTR": ["mx.a.test"]},
    "nullmx.test": {"MX": [(0, ".")]},
}


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def test_parse_nameserver() -> None:
    assert parse_nameserver("127.0.0.1:5353") == ("127.0.0.1", 5353)
    assert parse_nameserver("127.0.0.1") == ("127.0.0.1", 53)
    assert parse_nameserver("[::1]:5353") == ("::1", 5353)
    assert parse_nameserver("::1") == ("::1", 53)
    for bad in ("nope", "127.0.0.1:0", "[::1", "1.2.3.4:99999"):
        with pytest.raises(ValueError):
            parse_nameserver(bad)


def test_every_record_type_through_the_resolver() -> None:
    with DnsServer(ZONE) as server:
        resolver = DnsPythonResolver([server.nameserver], timeout=3)

        async def go() -> None:
            assert await resolver.mx("a.test") == [MxRecord(10, "mx.a.test")]
            assert await resolver.a("mx.a.test") == [ipaddress.IPv4Address("127.0.0.2")]
            assert await resolver.aaaa("MX.A.TEST.") == [ipaddress.IPv6Address("::1")]
            assert await resolver.txt("a.test") == [b"v=spf1 ip4:127.0.0.2 -all"]
            assert await resolver.txt("sel._domainkey.a.test") == [LONG_KEY.encode()]
            assert await resolver.ptr("127.0.0.2") == ["mx.a.test"]
            assert await resolver.a("www.a.test") == [ipaddress.IPv4Address("127.0.0.2")]
            with pytest.raises(NxDomain):
                await resolver.a("nope.a.test")
            with pytest.raises(NoData):
                await resolver.aaaa("a.test")
            with pytest.raises(DnsTempError):  # outside our zones: REFUSED
                await resolver.a("example.com")
            with pytest.raises(NullMx):
                await next_hops(resolver, "nullmx.test")
            hops = await next_hops(resolver, "a.test")
            assert hops.hops[0].addresses == (ipaddress.IPv6Address("::1"), ipaddress.IPv4Address("127.0.0.2"))

        run(go())


def test_long_txt_is_split_in_255_byte_strings_and_truncation_falls_back_to_tcp() -> None:
    records = {"big.test": {"TXT": [f"record {i} " + "x" * 200 for i in range(10)]}}
    with DnsServer(records | {"a.test": ZONE["sel._domainkey.a.test"]}) as server:
        query = dns.message.make_query("a.test", "TXT", use_edns=0, payload=1232)
        response = dns.query.udp(query, server.host, port=server.port, timeout=3)
        strings = response.answer[0][0].strings
        assert [len(s) for s in strings] == [255, 255, len(LONG_KEY) - 510]
        big = dns.query.udp(dns.message.make_query("big.test", "TXT", use_edns=False), server.host,
                            port=server.port, timeout=3)
        assert big.flags & dns.flags.TC
        resolver = DnsPythonResolver([server.nameserver], timeout=3)
        assert len(run(resolver.txt("big.test"))) == 10
        assert ("big.test", "TXT", "tcp") in server.queries


def test_negative_answers_carry_soa() -> None:
    with DnsServer(ZONE) as server:
        response = dns.query.udp(dns.message.make_query("nope.a.test", "A"), server.host, port=server.port, timeout=3)
        assert response.rcode() == dns.rcode.NXDOMAIN
        assert response.authority and response.authority[0].name.to_text() == "a.test."
        response = dns.query.tcp(dns.message.make_query("_domainkey.a.test", "TXT"), server.host,
                                 port=server.port, timeout=3)
        assert response.rcode() == dns.rcode.NOERROR and not response.answer  # empty non-terminal


def test_servfail_is_a_temporary_error() -> None:
    with DnsServer(ZONE) as server:
        server.servfail("a.test", "TXT")
        resolver = DnsPythonResolver([server.nameserver], timeout=3)
        with pytest.raises(DnsTempError) as err:
            run(resolver.txt("a.test"))
        assert not isinstance(err.value, DnsTimeout)
        assert run(resolver.mx("a.test"))  # only TXT fails
        server.clear_failures()
        assert run(resolver.txt("a.test"))  # temporary errors were not cached


def test_silence_is_a_timeout_within_the_configured_time() -> None:
    with DnsServer(ZONE) as server:
        server.drop("a.test")
        resolver = DnsPythonResolver([server.nameserver], timeout=0.5)

        async def go() -> None:
            # the outer bound is generous; the resolver's own limit must fire first
            with pytest.raises(DnsTimeout):
                await asyncio.wait_for(resolver.mx("a.test"), 30)

        run(go())


def test_cache_and_live_changes() -> None:
    now = [0.0]
    with DnsServer(ZONE) as server:
        resolver = DnsPythonResolver([server.nameserver], timeout=3, clock=lambda: now[0])
        assert run(resolver.a("a.test")) == [ipaddress.IPv4Address("127.0.0.2")]
        server.set("a.test", "A", ["127.0.0.9"], ttl=60)
        assert run(resolver.a("a.test")) == [ipaddress.IPv4Address("127.0.0.2")]  # cached
        now[0] += 301
        assert run(resolver.a("a.test")) == [ipaddress.IPv4Address("127.0.0.9")]
        with pytest.raises(NxDomain):
            run(resolver.a("new.a.test"))
        server.set("new.a.test", "A", ["127.0.0.3"])
        with pytest.raises(NxDomain):
            run(resolver.a("new.a.test"))  # negative cache
        now[0] += 61
        assert run(resolver.a("new.a.test")) == [ipaddress.IPv4Address("127.0.0.3")]


def test_explicit_zones_answer_nxdomain_for_unknown_names() -> None:
    with DnsServer(ZONE, zones=["test", "in-addr.arpa"]) as server:
        resolver = DnsPythonResolver([server.nameserver], timeout=2)
        with pytest.raises(NxDomain):
            run(resolver.mx("unknown.test"))
        with pytest.raises(NxDomain):
            run(resolver.ptr("127.0.0.99"))
        assert run(resolver.ptr("127.0.0.2")) == ["mx.a.test"]
        with pytest.raises(DnsTempError):
            run(resolver.a("example.com"))  # not ours: REFUSED


def test_invalid_names_are_permanent_without_a_query() -> None:
    with DnsServer(ZONE) as server:
        resolver = DnsPythonResolver([server.nameserver], timeout=2)
        for name in ("a" * 64 + ".a.test", ("x" * 60 + ".") * 5 + "test", "a..test"):
            with pytest.raises(DnsPermError):
                run(resolver.txt(name))
        assert server.queries == []


def test_zone_text_and_garbage_input() -> None:
    text = """
$TTL 300
@       IN SOA ns.b.test. hostmaster.b.test. 1 3600 600 86400 60
@       IN NS  ns.b.test.
@       IN MX  10 mx.b.test.
mx      IN A   127.0.0.3
@       IN TXT "v=spf1 " "mx -all"
"""
    with DnsServer.from_zone_text(text, "b.test") as server:
        import socket

        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(b"\x00garbage", (server.host, server.port))
        resolver = DnsPythonResolver([server.nameserver], timeout=3)
        assert run(resolver.mx("b.test")) == [MxRecord(10, "mx.b.test")]
        assert run(resolver.txt("b.test")) == [b"v=spf1 mx -all"]


def test_subprocess_mode(tmp_path) -> None:  # type: ignore[no-untyped-def]
    text = "$TTL 60\n@ IN MX 10 mx.c.test.\nmx IN A 127.0.0.4\nbad IN A 127.0.0.5\n"
    with DnsServerProcess(text, "c.test", workdir=tmp_path, servfail=["bad.c.test"]) as server:
        resolver = DnsPythonResolver([server.nameserver], timeout=3)
        assert run(resolver.a("mx.c.test")) == [ipaddress.IPv4Address("127.0.0.4")]
        with pytest.raises(DnsTempError):
            run(resolver.a("bad.c.test"))
