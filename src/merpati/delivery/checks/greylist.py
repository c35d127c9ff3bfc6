"""Greylisting (optional, off by default): the first attempt of an unknown triple waits.

The triple is (client network, envelope sender, recipient), the network being the client's
IPv4 /24 or IPv6 /64 (senders retry from another address of the same farm). The first
attempt of an unknown triple gets ``451 4.7.1``; a retry at least ``delay`` later passes,
and the triple then passes at once for as long as it keeps being seen (it is forgotten after
``expire`` of silence). The triples live in the store (``storage.checks_api``), so every MX
process and node agrees; passed triples are also remembered in memory for a while, so known
correspondents cost no database write per message.

Not greylisted: trusted or authenticated clients (the pipeline skips them); a site hook may
vouch for more clients with ``accept()`` at an earlier stage.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable

from merpati.delivery.checks.cache import TtlCache
from merpati.delivery.checks.context import CheckContext
from merpati.delivery.checks.results import Result, tempfail
from merpati.storage.checks_api import ChecksStore, greylist_key

TOUCH_EVERY = 3600.0  # refresh a passed triple's last sight at most this often (seconds)
NETWORK_MEMO = 4096  # client addresses whose network is remembered (ipaddress costs ~6 µs a call)


def client_network(ip: str) -> str:
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    prefix = 24 if address.version == 4 else 64
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


def parse_duration(text: str | float | int) -> float:
    """"30s", "5m", "1h20m", "35d", or a number of seconds; ValueError when malformed."""
    if isinstance(text, (int, float)):
        if text < 0:
            raise ValueError("negative duration")
        return float(text)
    s = text.strip().lower()
    if not s:
        raise ValueError("empty duration")
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    total, number = 0.0, ""
    for ch in s:
        if ch.isdigit() or ch == ".":
            number += ch
        elif ch in units and number:
            total += float(number) * units[ch]
            number = ""
        else:
            raise ValueError(f"invalid duration {text!r}")
    if number:
        total += float(number)
    return total


class GreylistCheck:
    name = "greylist"

    def __init__(
        self,
        store: ChecksStore,
        *,
        delay: float = 300.0,
        expire: float = 35 * 86400.0,
        clock: Callable[[], float] = time.time,
        cache_size: int = 50_000,
    ) -> None:
        self._store = store
        self._delay = delay
        self._expire = expire
        self._clock = clock
        # key → when its last sight was written; entries live TOUCH_EVERY seconds.
        self._passed: TtlCache[str, float] = TtlCache(ttl=TOUCH_EVERY, size=cache_size, clock=clock)
        self._networks: dict[str, str] = {}

    def _network(self, ip: str) -> str:
        net = self._networks.get(ip)
        if net is None:
            if len(self._networks) >= NETWORK_MEMO:
                self._networks.clear()
            net = self._networks[ip] = client_network(ip)
        return net

    async def on_rcpt(self, ctx: CheckContext) -> Result | None:
        if ctx.client.authenticated_as:
            return None
        key = greylist_key(self._network(ctx.ip), ctx.sender or "", ctx.recipient or "")
        if self._passed.get(key) is not None:
            return None
        now = self._clock()
        entry = await self._store.greylist_check(key, now=now, delay=self._delay, expire=self._expire)
        if entry.passed:
            self._passed.put(key, now)
            return None
        wait = max(1, int(entry.first_seen + self._delay - now + 0.999))
        return tempfail(f"Greylisted, please try again in {wait} seconds", 451, "4.7.1")

    async def expire(self) -> int:
        return await self._store.greylist_expire(before=self._clock() - self._expire)
