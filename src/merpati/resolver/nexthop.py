"""Where to deliver mail for a domain: RFC 5321 §5.1, RFC 7505 (null MX), RFC 2821 §5 heritage.

``next_hops(resolver, domain)`` returns the hosts to try, in order, each with its addresses:

1. A domain-literal (``[192.0.2.1]``, ``[IPv6:2001:db8::1]``) is the address itself: no DNS.
2. MX records, sorted by preference; hosts of equal preference are shuffled (§5.1: "randomize
   them to spread the load"); duplicate hosts keep their best preference.
3. A null MX (RFC 7505 §3: a single MX with target ".", any preference but normally 0) means
   the domain accepts no mail: :class:`NullMx`, permanent. A "." among other MX records is
   ignored, as Postfix does.
4. No MX records (NODATA) → the implicit MX: the domain itself at preference 0 (§5.1), if it
   has A/AAAA records. NXDOMAIN is permanent.
5. For each host, AAAA and A are asked concurrently; IPv6 addresses first, then IPv4 (the
   dialer may reorder for happy eyeballs). An MX target that is an IP address written as a
   name ("MX 10 192.0.2.1") is not a host name (RFC 5321 §5.1 requires a name): it is
   skipped. A target that is a CNAME works (the resolver follows it), though §5.1 forbids it.
6. Bounds: at most ``max_hosts`` MX hosts and ``max_addresses`` addresses in all.

Errors: :class:`NextHopPermError` (incl. :class:`NullMx`) means bounce; :class:`NextHopTempError`
means retry later. A temporary DNS error on some hosts is not fatal when other hosts have
addresses: those are returned (``temp_errors`` counts what was lost). Only when no address is
found at all and any lookup failed temporarily is the whole result temporary.
"""

from __future__ import annotations

import asyncio
import ipaddress
import random
from dataclasses import dataclass, field
from typing import Literal

from .api import DnsPermError, DnsTempError, IPAddress, MxRecord, NoData, NxDomain, Resolver, normalize_name

__all__ = [
    "Hop",
    "NextHopError",
    "NextHopPermError",
    "NextHopTempError",
    "NextHops",
    "NullMx",
    "next_hops",
    "parse_domain_literal",
]


class NextHopError(Exception):
    """No host to deliver to. ``permanent`` tells bounce (True) from retry (False)."""

    permanent: bool = False

    def __init__(self, domain: str, detail: str) -> None:
        self.domain = domain
        self.detail = detail
        super().__init__(f"{domain}: {detail}")


class NextHopPermError(NextHopError):
    permanent = True


class NullMx(NextHopPermError):
    """RFC 7505: the domain publishes that it accepts no mail (reply 556 5.1.10 on submission)."""

    def __init__(self, domain: str) -> None:
        super().__init__(domain, "domain does not accept mail (null MX, RFC 7505)")


class NextHopTempError(NextHopError):
    permanent = False


@dataclass(frozen=True, slots=True)
class Hop:
    host: str  # the MX host name, the domain itself (implicit MX), or the literal's address
    preference: int
    addresses: tuple[IPAddress, ...]
    implicit: bool = False  # implicit MX (A/AAAA of the domain) or a domain-literal


@dataclass(frozen=True, slots=True)
class NextHops:
    domain: str
    hops: tuple[Hop, ...]
    kind: Literal["mx", "implicit", "literal"]
    temp_errors: int = 0  # hosts whose address lookup failed temporarily (skipped)
    skipped: tuple[str, ...] = field(default=())  # hosts skipped as unusable (IP as name, no address)

    def addresses(self) -> list[tuple[str, IPAddress]]:
        """Every (host, address) in the order to try."""
        return [(hop.host, address) for hop in self.hops for address in hop.addresses]


def parse_domain_literal(domain: str) -> IPAddress | None:
    """``[1.2.3.4]`` / ``[IPv6:::1]`` → the address; a name → None; a bad literal → ValueError."""
    if not domain.startswith("["):
        return None
    if not domain.endswith("]"):
        raise ValueError("bad address literal")
    body = domain[1:-1]
    if body[:5].lower() == "ipv6:":
        return ipaddress.IPv6Address(body[5:])
    return ipaddress.IPv4Address(body)


async def next_hops(
    resolver: Resolver,
    domain: str,
    *,
    max_hosts: int = 10,
    max_addresses: int = 20,
    ipv4: bool = True,
    ipv6: bool = True,
    rng: random.Random | None = None,
) -> NextHops:
    """The ordered hosts and addresses for ``domain``; see the module docstring."""
    domain = domain.strip()
    try:
        literal = parse_domain_literal(domain)
    except ValueError:
        raise NextHopPermError(domain, "malformed address literal") from None
    if literal is not None:
        if (literal.version == 4 and not ipv4) or (literal.version == 6 and not ipv6):
            raise NextHopPermError(domain, "address family of the literal is disabled")
        return NextHops(domain, (Hop(str(literal), 0, (literal,), implicit=True),), "literal")
    domain = normalize_name(domain)
    if not domain or domain == ".":
        raise NextHopPermError(domain, "empty domain")
    rng = rng or random.Random()
    try:
        records = await resolver.mx(domain)
    except NoData:
        records = None
    except NxDomain:
        raise NextHopPermError(domain, "domain does not exist (NXDOMAIN)") from None
    except DnsPermError as exc:
        raise NextHopPermError(domain, f"MX lookup failed: {exc.detail or 'bad name'}") from None
    except DnsTempError as exc:
        raise NextHopTempError(domain, f"MX lookup failed temporarily: {exc.detail or 'error'}") from None

    if records is None:
        hop, temp = await _host_addresses(resolver, domain, 0, ipv4, ipv6, max_addresses)
        if hop is None:
            if temp:
                raise NextHopTempError(domain, "no MX, and the A/AAAA lookup failed temporarily")
            raise NextHopPermError(domain, "no MX and no A/AAAA records")
        return NextHops(domain, (Hop(hop.host, 0, hop.addresses, implicit=True),), "implicit")

    if len(records) == 1 and records[0].host == "":
        raise NullMx(domain)
    ordered = _order(records, rng)[:max_hosts]
    if not ordered:
        raise NextHopPermError(domain, "MX records name no usable host")

    skipped: list[str] = []
    usable: list[MxRecord] = []
    for record in ordered:
        if _is_ip(record.host):
            skipped.append(record.host)
        else:
            usable.append(record)
    results = await asyncio.gather(
        *(_host_addresses(resolver, r.host, r.preference, ipv4, ipv6, max_addresses) for r in usable)
    )
    hops: list[Hop] = []
    temp_errors = 0
    budget = max_addresses
    for record, (hop, temp) in zip(usable, results):
        temp_errors += temp
        if hop is None:
            if not temp:
                skipped.append(record.host)
            continue
        if budget <= 0:
            break
        addresses = hop.addresses[:budget]
        budget -= len(addresses)
        hops.append(Hop(record.host, record.preference, addresses))
    if not hops:
        if temp_errors:
            raise NextHopTempError(domain, "address lookups of the MX hosts failed temporarily")
        raise NextHopPermError(domain, "no MX host has an address")
    return NextHops(domain, tuple(hops), "mx", temp_errors, tuple(skipped))


def _order(records: list[MxRecord], rng: random.Random) -> list[MxRecord]:
    best: dict[str, int] = {}
    for record in records:
        if record.host == "":
            continue  # "." among real MX records: ignore it
        if record.host not in best or record.preference < best[record.host]:
            best[record.host] = record.preference
    by_pref: dict[int, list[str]] = {}
    for host, pref in best.items():
        by_pref.setdefault(pref, []).append(host)
    out: list[MxRecord] = []
    for pref in sorted(by_pref):
        hosts = sorted(by_pref[pref])
        rng.shuffle(hosts)
        out.extend(MxRecord(pref, h) for h in hosts)
    return out


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


async def _host_addresses(
    resolver: Resolver, host: str, preference: int, ipv4: bool, ipv6: bool, limit: int
) -> tuple[Hop | None, int]:
    """(Hop with IPv6 then IPv4 addresses, or None if none; 1 if a lookup failed temporarily)."""
    lookups = []
    if ipv6:
        lookups.append(resolver.aaaa(host))
    if ipv4:
        lookups.append(resolver.a(host))
    answers = await asyncio.gather(*lookups, return_exceptions=True)
    addresses: list[IPAddress] = []
    temp = 0
    for answer in answers:
        if isinstance(answer, DnsTempError):
            temp = 1
        elif isinstance(answer, DnsPermError):
            continue
        elif isinstance(answer, BaseException):
            raise answer
        else:
            for address in answer:
                if address not in addresses:
                    addresses.append(address)
    if not addresses:
        return None, temp
    return Hop(host, preference, tuple(addresses[:limit])), temp
