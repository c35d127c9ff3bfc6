"""The DNS interface every other layer uses: one async protocol, typed answers, typed errors.

Contract
--------
* Every method is a coroutine that either returns a non-empty list of answers or raises a
  :class:`DnsError`. An empty answer is never returned: it is :class:`NoData`.
* Permanent outcomes (the name does not exist, or has no record of that type) raise
  :class:`DnsPermError` subclasses, :class:`NxDomain` and :class:`NoData`, so callers that care
  (SPF void lookups, implicit MX) can tell them apart.
* Anything that might succeed later (SERVFAIL, REFUSED, no reachable server, timeout) raises
  :class:`DnsTempError` (timeouts as its subclass :class:`DnsTimeout`). Callers must never turn
  a temporary error into a permanent verdict.
* Names are given with or without the trailing dot, in any case; host names in answers come
  back lower-cased without the trailing dot. CNAME chains are followed by the implementation.
* Implementations are safe to share between tasks of one event loop and hold no
  module-level state, so two Merpati instances can run in one process.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = [
    "DnsError",
    "DnsPermError",
    "DnsTempError",
    "DnsTimeout",
    "IPAddress",
    "MxRecord",
    "NoData",
    "NxDomain",
    "Resolver",
    "normalize_name",
    "reverse_name",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class DnsError(Exception):
    """A lookup that produced no usable answer. ``name`` and ``rdtype`` say which one."""

    def __init__(self, name: str, rdtype: str, detail: str = "") -> None:
        self.name = name
        self.rdtype = rdtype
        self.detail = detail
        text = f"{rdtype} {name}"
        super().__init__(f"{text}: {detail}" if detail else text)


class DnsPermError(DnsError):
    """A definitive negative answer (or a name that cannot be asked at all)."""


class NxDomain(DnsPermError):
    """The name does not exist (RCODE 3)."""


class NoData(DnsPermError):
    """The name exists but has no record of the asked type (NOERROR, empty answer)."""


class DnsTempError(DnsError):
    """SERVFAIL, REFUSED, no server reachable, or a timeout: try again later."""


class DnsTimeout(DnsTempError):
    """No answer within the configured time limit."""


@dataclass(frozen=True, slots=True, order=True)
class MxRecord:
    preference: int
    host: str  # lower-case, no trailing dot; "" for the null MX target "."


@runtime_checkable
class Resolver(Protocol):
    """Async DNS lookups. See the module docstring for the error contract."""

    async def mx(self, domain: str) -> list[MxRecord]: ...

    async def a(self, host: str) -> list[ipaddress.IPv4Address]: ...

    async def aaaa(self, host: str) -> list[ipaddress.IPv6Address]: ...

    async def txt(self, name: str) -> list[bytes]:
        """One item per TXT record, its character-strings concatenated (RFC 7208 §3.3)."""
        ...

    async def ptr(self, ip: str | IPAddress) -> list[str]: ...


def normalize_name(name: str) -> str:
    """Lower-case, without the trailing dot."""
    name = name.strip().lower()
    if name.endswith(".") and name != ".":
        name = name[:-1]
    return name


def reverse_name(ip: str | IPAddress) -> str:
    """``1.2.3.4`` → ``4.3.2.1.in-addr.arpa`` (and the nibble form for IPv6)."""
    address = ip if not isinstance(ip, str) else ipaddress.ip_address(ip)
    return address.reverse_pointer
