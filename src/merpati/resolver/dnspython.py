"""The production :class:`~merpati.resolver.api.Resolver` on dnspython's asyncio resolver.

* ``nameservers``: ``["127.0.0.1:5353", "[::1]:53", "192.0.2.53"]``; an empty list reads the
  system's ``/etc/resolv.conf``.
* ``timeout`` bounds each whole lookup (all servers and retries), enforced twice: through
  dnspython's ``lifetime`` and an ``asyncio`` deadline around it, so a dead server can never
  stall a caller longer than that.
* SERVFAIL is not retried against the same server within one lookup (dnspython drops the
  server): the caller gets :class:`DnsTempError` quickly and retries at its own pace.
* Answers are cached per instance (:class:`TtlCache`): positive ones for their TTL (capped at
  ``max_ttl``), NXDOMAIN/NODATA for ``negative_ttl``; temporary errors never.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import Callable, Sequence
from typing import Any

import dns.asyncresolver
import dns.exception
import dns.message
import dns.name
import dns.nameserver
import dns.rdatatype
import dns.resolver

from .api import (
    DnsError,
    DnsPermError,
    DnsTempError,
    DnsTimeout,
    IPAddress,
    MxRecord,
    NoData,
    NxDomain,
    normalize_name,
    reverse_name,
)
from .cache import TtlCache

__all__ = ["DnsPythonResolver", "parse_nameserver"]


def parse_nameserver(text: str) -> tuple[str, int]:
    """``"ip[:port]"`` (IPv6 as ``[ip]:port`` or bare) → ``(ip, port)``; ValueError if bad."""
    text = text.strip()
    port = 53
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValueError(f"bad nameserver {text!r}")
        host, rest = text[1:end], text[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"bad nameserver {text!r}")
            port = int(rest[1:])
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
        port = int(port_text)
    else:
        host = text
    address = ipaddress.ip_address(host)
    if not 0 < port < 65536:
        raise ValueError(f"bad port in nameserver {text!r}")
    return str(address), port


class DnsPythonResolver:
    def __init__(
        self,
        nameservers: Sequence[str] = (),
        *,
        timeout: float = 5.0,
        attempt_timeout: float | None = None,
        cache_size: int = 4096,
        max_ttl: float = 3600.0,
        negative_ttl: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        resolver = dns.asyncresolver.Resolver(configure=not nameservers)
        if nameservers:
            resolver.nameservers = [
                dns.nameserver.Do53Nameserver(*parse_nameserver(ns)) for ns in nameservers
            ]
        resolver.lifetime = timeout
        # One server attempt may use the whole budget when there is one server; with several,
        # leave time for the next one.
        resolver.timeout = attempt_timeout or (timeout if len(resolver.nameservers) <= 1 else timeout / 2)
        resolver.cache = None
        resolver.use_edns(0, 0, 1232)
        self._resolver = resolver
        self._timeout = timeout
        self._negative_ttl = negative_ttl
        self._cache = TtlCache(max_entries=cache_size, max_ttl=max_ttl, clock=clock)

    @property
    def timeout(self) -> float:
        return self._timeout

    def clear_cache(self) -> None:
        self._cache.clear()

    # -- Resolver protocol -------------------------------------------------------------

    async def mx(self, domain: str) -> list[MxRecord]:
        rrset = await self._query(domain, "MX")
        return [MxRecord(r.preference, _host(r.exchange)) for r in rrset]

    async def a(self, host: str) -> list[ipaddress.IPv4Address]:
        return [ipaddress.IPv4Address(r.address) for r in await self._query(host, "A")]

    async def aaaa(self, host: str) -> list[ipaddress.IPv6Address]:
        return [ipaddress.IPv6Address(r.address) for r in await self._query(host, "AAAA")]

    async def txt(self, name: str) -> list[bytes]:
        return [b"".join(r.strings) for r in await self._query(name, "TXT")]

    async def ptr(self, ip: str | IPAddress) -> list[str]:
        return [_host(r.target) for r in await self._query(reverse_name(ip), "PTR")]

    # -- internals ---------------------------------------------------------------------

    async def _query(self, name: str, rdtype: str) -> list[Any]:
        name = normalize_name(name)
        key = (name, rdtype)
        cached = self._cache.get(key)
        if cached is not None:
            if isinstance(cached, DnsError):
                raise cached
            return cached
        try:
            qname = dns.name.from_text(name)
        except (dns.exception.DNSException, UnicodeError, ValueError) as exc:
            raise DnsPermError(name, rdtype, f"invalid name: {exc.__class__.__name__}") from None
        try:
            answer = await asyncio.wait_for(
                self._resolver.resolve(qname, rdtype, search=False, raise_on_no_answer=True),
                self._timeout,
            )
        except dns.resolver.NXDOMAIN:
            error: DnsError = NxDomain(name, rdtype)
            self._cache.put(key, error, self._negative_ttl)
            raise error from None
        except dns.resolver.NoAnswer:
            error = NoData(name, rdtype)
            self._cache.put(key, error, self._negative_ttl)
            raise error from None
        except (dns.exception.Timeout, asyncio.TimeoutError):
            raise DnsTimeout(name, rdtype, f"no answer within {self._timeout:g}s") from None
        except dns.resolver.NoNameservers as exc:
            raise DnsTempError(name, rdtype, _short(exc)) from None
        except dns.resolver.YXDOMAIN:
            raise DnsPermError(name, rdtype, "name too long after DNAME") from None
        except dns.exception.DNSException as exc:
            raise DnsTempError(name, rdtype, _short(exc)) from None
        except OSError as exc:  # e.g. network unreachable for the server's family
            raise DnsTempError(name, rdtype, exc.__class__.__name__) from None
        rrset = answer.rrset
        if rrset is None or len(rrset) == 0:
            error = NoData(name, rdtype)
            self._cache.put(key, error, self._negative_ttl)
            raise error
        records = list(rrset)
        self._cache.put(key, records, rrset.ttl)
        return records


def _host(name: dns.name.Name) -> str:
    if name == dns.name.root:
        return ""
    return normalize_name(name.to_text())


def _short(exc: BaseException) -> str:
    text = str(exc)
    return text[:200]
