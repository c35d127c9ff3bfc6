"""Reverse DNS of the client, forward-confirmed (iprev, RFC 8601 §3; FCrDNS).

PTR names of the client's address (at most ``MAX_NAMES``) are looked up forward (A or AAAA);
the check passes when one of them resolves back to the client's address. Outcomes:
``pass`` (nothing scored), ``fail`` (no PTR, or no name confirms), ``temperror`` (DNS
trouble: nothing scored, never a penalty for our resolver's problems). The result is kept in
the session (``ctx.session["iprev"]``) for Authentication-Results, and cached per address.
"""

from __future__ import annotations

import asyncio
import ipaddress
from dataclasses import dataclass

from merpati.delivery.checks.cache import TtlCache
from merpati.delivery.checks.context import CheckContext
from merpati.delivery.checks.results import Result, add_score
from merpati.resolver.api import DnsError, DnsPermError, DnsTempError, Resolver

MAX_NAMES = 10


@dataclass(frozen=True, slots=True)
class IprevResult:
    result: str  # "pass" | "fail" | "temperror"
    name: str | None = None  # the confirmed name (pass), else the first PTR name if any


class IprevCheck:
    name = "iprev"

    def __init__(
        self, resolver: Resolver, *, no_ptr: float = 1.5, mismatch: float = 1.0, cache_ttl: float = 300.0
    ) -> None:
        self._resolver = resolver
        self._no_ptr = no_ptr
        self._mismatch = mismatch
        self._cache: TtlCache[str, IprevResult] = TtlCache(ttl=cache_ttl, size=20_000)

    async def on_connect(self, ctx: CheckContext) -> Result | None:
        found = await self.lookup(ctx.ip)
        ctx.session["iprev"] = found
        if found.result == "fail":
            if found.name is None:
                return add_score(self._no_ptr, f"no reverse DNS for {ctx.ip}")
            return add_score(self._mismatch, f"reverse DNS {found.name} does not resolve to {ctx.ip}")
        return None

    async def lookup(self, ip: str) -> IprevResult:
        cached = self._cache.get(ip)
        if cached is not None:
            return cached
        found = await self._lookup(ip)
        if found.result != "temperror":
            self._cache.put(ip, found)
        return found

    async def _lookup(self, ip: str) -> IprevResult:
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return IprevResult("fail")
        try:
            names = (await self._resolver.ptr(address))[:MAX_NAMES]
        except DnsPermError:
            return IprevResult("fail")
        except DnsTempError:
            return IprevResult("temperror")
        forward = self._resolver.a if address.version == 4 else self._resolver.aaaa
        answers = await asyncio.gather(*(forward(n) for n in names), return_exceptions=True)
        temp = False
        for name, answer in zip(names, answers):
            if isinstance(answer, BaseException):
                if isinstance(answer, DnsTempError):
                    temp = True
                elif not isinstance(answer, DnsError):
                    raise answer
                continue
            if address in answer:
                return IprevResult("pass", name)
        if temp:
            return IprevResult("temperror", names[0] if names else None)
        return IprevResult("fail", names[0] if names else None)
