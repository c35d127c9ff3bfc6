"""FakeResolver: the table semantics every unit test relies on."""

from __future__ import annotations

import asyncio
import ipaddress

import pytest

from merpati.resolver import (
    DnsTempError,
    DnsTimeout,
    FakeResolver,
    MxRecord,
    NoData,
    NxDomain,
    Resolver,
)


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


RECORDS = {
    "example.org": {"MX": [(10, "MX.example.org."), (20, ".")], "TXT": ["v=spf1 -all", ["a" * 255, "b"]]},
    "mx.example.org": {"A": ["192.0.2.1"], "AAAA": "2001:db8::1"},
    "alias.example.org": {"CNAME": "mx.example.org"},
    "loop1.example.org": {"CNAME": "loop2.example.org"},
    "loop2.example.org": {"CNAME": "loop1.example.org"},
    "deep.sub.example.net": {"A": ["192.0.2.9"]},
    "1.2.0.192.in-addr.arpa": {"PTR": ["mx.example.org."]},
    "empty.example.org": {"TXT": []},
}


def test_is_a_resolver() -> None:
    assert isinstance(FakeResolver(), Resolver)


def test_answers_are_typed_and_normalised() -> None:
    fake = FakeResolver(RECORDS)
    assert run(fake.mx("EXAMPLE.org.")) == [MxRecord(10, "mx.example.org"), MxRecord(20, "")]
    assert run(fake.a("mx.example.org")) == [ipaddress.IPv4Address("192.0.2.1")]
    assert run(fake.aaaa("mx.example.org")) == [ipaddress.IPv6Address("2001:db8::1")]
    assert run(fake.txt("example.org")) == [b"v=spf1 -all", b"a" * 255 + b"b"]
    assert run(fake.ptr("192.0.2.1")) == ["mx.example.org"]
    assert run(fake.a("alias.example.org")) == [ipaddress.IPv4Address("192.0.2.1")]


def test_nxdomain_nodata_and_empty_non_terminals() -> None:
    fake = FakeResolver(RECORDS)
    with pytest.raises(NxDomain):
        run(fake.a("nope.example.org"))
    with pytest.raises(NoData):
        run(fake.a("example.org"))
    with pytest.raises(NoData):
        run(fake.a("sub.example.net"))  # empty non-terminal
    with pytest.raises(NoData):
        run(fake.txt("empty.example.org"))
    with pytest.raises(DnsTempError):
        run(fake.a("loop1.example.org"))


def test_injected_failures() -> None:
    fake = FakeResolver(RECORDS, servfail={"example.org"}, timeout={("mx.example.org", "AAAA")})
    with pytest.raises(DnsTempError) as err:
        run(fake.txt("example.org"))
    assert not isinstance(err.value, DnsTimeout)
    with pytest.raises(DnsTimeout):
        run(fake.aaaa("mx.example.org"))
    assert run(fake.a("mx.example.org"))  # other types still answer
    assert fake.queries[-1] == ("mx.example.org", "A")


def test_delays() -> None:
    fake = FakeResolver(RECORDS, delays={"mx.example.org": 10})

    async def go() -> None:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(fake.a("mx.example.org"), 0.01)

    run(go())
