"""DNS blocklists for the connecting address (RFC 5782).

A zone entry is ``zone`` or ``zone=codes:score`` with ``codes`` a comma-separated list of
127.0.0.x answers that count as a listing (default: any 127.0.0.0/8 answer except the
127.255.255.x range, which Spamhaus uses for "query refused", "public resolver", "excessive
use": those are errors, never listings) and ``score`` the weight of a listing (default
``[checks.dnsbl] score``). Example: ``"zen.spamhaus.org=127.0.0.2,127.0.0.3,127.0.0.4:6"``.

The lookups (``<reversed address>.<zone>`` A, IPv6 as nibbles) run at connect, in parallel,
and are cached per address; DNS errors count as "not listed". A listing adds its score, or
with ``[checks.dnsbl] reject = true`` rejects every RCPT with ``554 5.7.1``.
"""

from __future__ import annotations

import asyncio
import ipaddress
from dataclasses import dataclass

from merpati.delivery.checks.cache import TtlCache
from merpati.delivery.checks.context import CheckContext
from merpati.delivery.checks.results import Result, add_score, reject
from merpati.resolver.api import DnsError, Resolver

_LISTED = ipaddress.ip_network("127.0.0.0/8")
_ERRORS = ipaddress.ip_network("127.255.255.0/24")


@dataclass(frozen=True, slots=True)
class Zone:
    name: str
    codes: frozenset[str] = frozenset()  # empty: any 127/8 answer outside 127.255.255/24
    score: float | None = None

    def listed(self, answers: list[ipaddress.IPv4Address]) -> list[str]:
        hits = []
        for a in answers:
            if a not in _LISTED or a in _ERRORS:
                continue
            if self.codes and str(a) not in self.codes:
                continue
            hits.append(str(a))
        return hits


def parse_zone(spec: str) -> Zone:
    """``zone`` or ``zone=code,code:score`` or ``zone:score``; ValueError when malformed."""
    text = spec.strip()
    score: float | None = None
    codes: frozenset[str] = frozenset()
    name, eq, rest = text.partition("=")
    if not eq:
        name, colon, sc = text.partition(":")
        if colon:
            score = float(sc)
    else:
        code_text, colon, sc = rest.partition(":")
        if colon:
            score = float(sc)
        items = [c.strip() for c in code_text.split(",") if c.strip()]
        for c in items:
            ipaddress.IPv4Address(c)
        codes = frozenset(items)
    name = name.strip().strip(".").lower()
    if not name or " " in name or "." not in name:
        raise ValueError(f"invalid DNSBL zone {spec!r}")
    if score is not None and score != score:
        raise ValueError(f"invalid DNSBL score in {spec!r}")
    return Zone(name, codes, score)


def query_name(ip: str, zone: str) -> str:
    address = ipaddress.ip_address(ip)
    if address.version == 4:
        reversed_ip = ".".join(reversed(str(address).split(".")))
    else:
        reversed_ip = ".".join(reversed(address.exploded.replace(":", "")))
    return f"{reversed_ip}.{zone}"


class DnsblCheck:
    name = "dnsbl"

    def __init__(
        self, resolver: Resolver, zones: list[Zone], *, score: float = 5.0, reject_listed: bool = False,
        cache_ttl: float = 300.0,
    ) -> None:
        self._resolver = resolver
        self._zones = zones
        self._score = score
        self._reject = reject_listed
        self._cache: TtlCache[str, list[tuple[Zone, list[str]]]] = TtlCache(ttl=cache_ttl, size=20_000)

    async def listings(self, ip: str) -> list[tuple[Zone, list[str]]]:
        cached = self._cache.get(ip)
        if cached is not None:
            return cached
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            return []
        answers = await asyncio.gather(
            *(self._resolver.a(query_name(ip, z.name)) for z in self._zones), return_exceptions=True
        )
        found = []
        for zone, answer in zip(self._zones, answers):
            if isinstance(answer, DnsError):
                continue
            if isinstance(answer, BaseException):
                raise answer
            hits = zone.listed(answer)
            if hits:
                found.append((zone, hits))
        self._cache.put(ip, found)
        return found

    async def on_connect(self, ctx: CheckContext) -> list[Result] | None:
        found = await self.listings(ctx.ip)
        ctx.session["dnsbl"] = found
        if not found or self._reject:
            return None
        return [
            add_score(z.score if z.score is not None else self._score, f"{ctx.ip} listed in {z.name} as {', '.join(hits)}")
            for z, hits in found
        ]

    async def on_rcpt(self, ctx: CheckContext) -> Result | None:
        found = ctx.session.get("dnsbl")
        if self._reject and found:
            zone = found[0][0].name
            return reject(f"Service unavailable; client [{ctx.ip}] blocked using {zone}", 554, "5.7.1")
        return None
