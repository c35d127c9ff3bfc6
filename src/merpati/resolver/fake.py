"""A table-driven resolver for tests (mox's dns/mock.go idea).

    FakeResolver({
        "example.org": {"MX": [(10, "mx.example.org")], "TXT": ["v=spf1 mx -all"]},
        "mx.example.org": {"A": ["192.0.2.1"], "AAAA": ["2001:db8::1"]},
        "www.example.org": {"CNAME": "example.org"},
        "1.2.0.192.in-addr.arpa": {"PTR": ["mx.example.org"]},
    }, servfail={"broken.example"}, timeout={("slow.example", "TXT")})

Rules, close to a real server:

* a name present in the table (even with ``{}``) exists; so does any ancestor of a present
  name (an empty non-terminal, RFC 8020), which answers NODATA; anything else is NXDOMAIN;
* ``CNAME`` is followed (at most 8 links) for every other type;
* a TXT value is a ``str``/``bytes`` record, or a list of strings making one record;
* failures: ``servfail`` / ``timeout`` hold names (every type) or ``(name, TYPE)`` pairs;
  ``delays`` maps the same keys to seconds slept before answering (to test time limits).

Every query is appended to ``queries`` as ``(name, TYPE)``, so tests can count lookups.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any

from .api import (
    DnsTempError,
    DnsTimeout,
    IPAddress,
    MxRecord,
    NoData,
    NxDomain,
    normalize_name,
    reverse_name,
)

__all__ = ["FakeResolver"]

_MAX_CNAME = 8


class FakeResolver:
    def __init__(
        self,
        records: Mapping[str, Mapping[str, Any]] | None = None,
        *,
        servfail: Iterable[str | tuple[str, str]] = (),
        timeout: Iterable[str | tuple[str, str]] = (),
        delays: Mapping[str | tuple[str, str], float] | None = None,
    ) -> None:
        self.records: dict[str, dict[str, Any]] = {}
        for name, rrsets in (records or {}).items():
            self.records[normalize_name(name)] = {k.upper(): v for k, v in rrsets.items()}
        self.servfail = {_key(k) for k in servfail}
        self.timeout = {_key(k) for k in timeout}
        self.delays = {_key(k): v for k, v in (delays or {}).items()}
        self.queries: list[tuple[str, str]] = []

    def add(self, name: str, rdtype: str, value: Any) -> None:
        self.records.setdefault(normalize_name(name), {})[rdtype.upper()] = value

    # -- Resolver protocol -------------------------------------------------------------

    async def mx(self, domain: str) -> list[MxRecord]:
        values = await self._lookup(domain, "MX")
        return [MxRecord(int(pref), normalize_name(host) if host != "." else "") for pref, host in values]

    async def a(self, host: str) -> list[ipaddress.IPv4Address]:
        return [ipaddress.IPv4Address(v) for v in await self._lookup(host, "A")]

    async def aaaa(self, host: str) -> list[ipaddress.IPv6Address]:
        return [ipaddress.IPv6Address(v) for v in await self._lookup(host, "AAAA")]

    async def txt(self, name: str) -> list[bytes]:
        out = []
        for value in await self._lookup(name, "TXT"):
            parts = value if isinstance(value, list | tuple) else [value]
            out.append(b"".join(p.encode() if isinstance(p, str) else bytes(p) for p in parts))
        return out

    async def ptr(self, ip: str | IPAddress) -> list[str]:
        return [normalize_name(v) for v in await self._lookup(reverse_name(ip), "PTR")]

    # -- internals ---------------------------------------------------------------------

    async def _lookup(self, name: str, rdtype: str) -> list[Any]:
        name = normalize_name(name)
        self.queries.append((name, rdtype))
        for key in ((name, rdtype), (name, "*")):
            if key in self.delays:
                await asyncio.sleep(self.delays[key])
        for key in ((name, rdtype), (name, "*")):
            if key in self.timeout:
                raise DnsTimeout(name, rdtype, "injected timeout")
            if key in self.servfail:
                raise DnsTempError(name, rdtype, "injected SERVFAIL")
        current = name
        for _ in range(_MAX_CNAME + 1):
            rrsets = self.records.get(current)
            if rrsets is None:
                if self._is_empty_non_terminal(current):
                    raise NoData(name, rdtype)
                raise NxDomain(name, rdtype)
            value = rrsets.get(rdtype)
            if value is not None:
                values = list(value) if isinstance(value, list | tuple) and rdtype != "CNAME" else [value]
                if rdtype == "TXT" and isinstance(value, list | tuple):
                    values = list(value)
                if not values:
                    raise NoData(name, rdtype)
                return values
            target = rrsets.get("CNAME")
            if target is None or rdtype == "CNAME":
                raise NoData(name, rdtype)
            current = normalize_name(target)
        raise DnsTempError(name, rdtype, "CNAME chain too long")

    def _is_empty_non_terminal(self, name: str) -> bool:
        suffix = "." + name
        return any(n.endswith(suffix) for n in self.records)


def _key(key: str | tuple[str, str]) -> tuple[str, str]:
    if isinstance(key, tuple):
        return (normalize_name(key[0]), key[1].upper())
    return (normalize_name(key), "*")
