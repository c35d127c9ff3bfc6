"""next_hops: RFC 5321 §5.1 MX selection, RFC 7505 null MX, literals, limits, errors."""

from __future__ import annotations

import asyncio
import ipaddress
import random

import pytest

from merpati.resolver import (
    FakeResolver,
    NextHopPermError,
    NextHopTempError,
    NullMx,
    next_hops,
)

V4 = ipaddress.IPv4Address
V6 = ipaddress.IPv6Address


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def hosts(result) -> list[str]:  # type: ignore[no-untyped-def]
    return [hop.host for hop in result.hops]


def test_mx_sorted_by_preference_with_both_families() -> None:
    fake = FakeResolver({
        "example.org": {"MX": [(20, "mx2.example.org"), (10, "mx1.example.org")]},
        "mx1.example.org": {"A": ["192.0.2.1"], "AAAA": ["2001:db8::1"]},
        "mx2.example.org": {"A": ["192.0.2.2", "192.0.2.3"]},
    })
    result = run(next_hops(fake, "Example.ORG"))
    assert result.kind == "mx"
    assert hosts(result) == ["mx1.example.org", "mx2.example.org"]
    assert result.hops[0].addresses == (V6("2001:db8::1"), V4("192.0.2.1"))
    assert result.hops[1].preference == 20
    assert result.addresses()[-1] == ("mx2.example.org", V4("192.0.2.3"))
    only4 = run(next_hops(fake, "example.org", ipv6=False))
    assert only4.hops[0].addresses == (V4("192.0.2.1"),)


def test_equal_preference_is_shuffled() -> None:
    records = {"example.org": {"MX": [(10, f"mx{i}.example.org") for i in range(6)] + [(5, "first.example.org")]}}
    for i in range(6):
        records[f"mx{i}.example.org"] = {"A": [f"192.0.2.{i + 1}"]}
    records["first.example.org"] = {"A": ["192.0.2.100"]}
    fake = FakeResolver(records)
    orders = {tuple(hosts(run(next_hops(fake, "example.org", rng=random.Random(seed))))) for seed in range(20)}
    assert len(orders) > 1
    assert all(order[0] == "first.example.org" for order in orders)
    assert all(sorted(order[1:]) == [f"mx{i}.example.org" for i in range(6)] for order in orders)


def test_duplicate_mx_host_keeps_best_preference() -> None:
    fake = FakeResolver({
        "example.org": {"MX": [(30, "mx.example.org"), (10, "mx.example.org")]},
        "mx.example.org": {"A": ["192.0.2.1"]},
    })
    result = run(next_hops(fake, "example.org"))
    assert [(h.host, h.preference) for h in result.hops] == [("mx.example.org", 10)]


def test_implicit_mx() -> None:
    fake = FakeResolver({"example.org": {"A": ["192.0.2.1"], "AAAA": ["2001:db8::1"]}})
    result = run(next_hops(fake, "example.org"))
    assert result.kind == "implicit"
    assert result.hops[0].implicit and result.hops[0].host == "example.org"
    assert result.hops[0].addresses == (V6("2001:db8::1"), V4("192.0.2.1"))


def test_no_mx_no_address_is_permanent() -> None:
    fake = FakeResolver({"example.org": {"TXT": ["x"]}})
    with pytest.raises(NextHopPermError):
        run(next_hops(fake, "example.org"))


def test_nxdomain_is_permanent() -> None:
    with pytest.raises(NextHopPermError) as err:
        run(next_hops(FakeResolver({}), "nowhere.example"))
    assert err.value.permanent


def test_null_mx() -> None:
    fake = FakeResolver({"example.org": {"MX": [(0, ".")], "A": ["192.0.2.1"]}})
    with pytest.raises(NullMx) as err:
        run(next_hops(fake, "example.org"))
    assert err.value.permanent


def test_dot_among_real_mx_is_ignored() -> None:
    fake = FakeResolver({
        "example.org": {"MX": [(0, "."), (10, "mx.example.org")]},
        "mx.example.org": {"A": ["192.0.2.1"]},
    })
    assert hosts(run(next_hops(fake, "example.org"))) == ["mx.example.org"]


def test_mx_to_cname_works_and_mx_to_ip_is_skipped() -> None:
    fake = FakeResolver({
        "example.org": {"MX": [(5, "192.0.2.7"), (10, "alias.example.org")]},
        "alias.example.org": {"CNAME": "real.example.org"},
        "real.example.org": {"A": ["192.0.2.1"]},
    })
    result = run(next_hops(fake, "example.org"))
    assert hosts(result) == ["alias.example.org"]
    assert result.skipped == ("192.0.2.7",)
    only_ip = FakeResolver({"example.org": {"MX": [(5, "192.0.2.7")]}})
    with pytest.raises(NextHopPermError):
        run(next_hops(only_ip, "example.org"))


def test_domain_literals_bypass_dns() -> None:
    fake = FakeResolver({})
    result = run(next_hops(fake, "[192.0.2.5]"))
    assert result.kind == "literal" and result.addresses() == [("192.0.2.5", V4("192.0.2.5"))]
    result = run(next_hops(fake, "[IPv6:2001:db8::5]"))
    assert result.hops[0].addresses == (V6("2001:db8::5"),)
    assert fake.queries == []
    for bad in ("[192.0.2]", "[IPv6:zz]", "[1.2.3.4"):
        with pytest.raises(NextHopPermError):
            run(next_hops(fake, bad))


def test_temporary_failures() -> None:
    fake = FakeResolver({"example.org": {"MX": [(10, "mx.example.org")]}}, servfail={("example.org", "MX")})
    with pytest.raises(NextHopTempError) as err:
        run(next_hops(fake, "example.org"))
    assert not err.value.permanent
    # every MX host fails temporarily: temporary
    fake = FakeResolver({"example.org": {"MX": [(10, "mx.example.org")]}}, timeout={"mx.example.org"})
    with pytest.raises(NextHopTempError):
        run(next_hops(fake, "example.org"))
    # implicit MX whose A lookup times out: temporary
    fake = FakeResolver({"example.org": {"TXT": ["x"]}}, timeout={("example.org", "A")})
    with pytest.raises(NextHopTempError):
        run(next_hops(fake, "example.org"))


def test_partial_temp_failure_keeps_the_good_hosts() -> None:
    fake = FakeResolver({
        "example.org": {"MX": [(10, "mx1.example.org"), (20, "mx2.example.org")]},
        "mx2.example.org": {"A": ["192.0.2.2"]},
    }, servfail={"mx1.example.org"})
    result = run(next_hops(fake, "example.org"))
    assert hosts(result) == ["mx2.example.org"] and result.temp_errors == 1


def test_bounds_on_hosts_and_addresses() -> None:
    records = {"example.org": {"MX": [(i, f"mx{i}.example.org") for i in range(50)]}}
    for i in range(50):
        records[f"mx{i}.example.org"] = {"A": [f"192.0.{i}.{j}" for j in range(1, 11)]}
    fake = FakeResolver(records)
    result = run(next_hops(fake, "example.org", max_hosts=5, max_addresses=12))
    assert len(result.addresses()) == 12
    assert hosts(result) == ["mx0.example.org", "mx1.example.org"]
    assert len({q for q in fake.queries if q[1] == "A"}) <= 5
