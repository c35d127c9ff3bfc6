"""Recipient routing: RCPT address → the local mailboxes it reaches, or why not.

Lookup order for ``local@domain`` (domain must be one of ours, else relay is denied):
alias ``local@domain`` → account ``local@domain`` → with subaddressing, the same two for the
base ``local`` without ``+tag`` → the catch-all alias ``@domain``. Alias targets are resolved
the same way, recursively, with a visited set and a depth limit (an alias loop a → b → a ends
in ``554 5.4.6`` when nothing deliverable remains).

Untrusted routing is never honoured (Postfix ``allow_untrusted_routing=no``): a local part that
still holds ``@``, ``%`` or ``!`` (``"u@third.example"@ours``, ``u%third.example@ours``,
``third.example!u@ours``) is refused as relaying, not resolved to another destination.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from merpati.delivery import results
from merpati.delivery.envelope import LocalRecipient
from merpati.delivery.results import Verdict
from merpati.storage.api import MailStore, StoreError

MAX_ALIAS_DEPTH = 10
CACHE_TTL = 5.0
NEGATIVE_TTL = 1.0
CACHE_MAX = 10_000
MAX_ALIAS_TARGETS = 1000
ROUTING_CHARS = frozenset("@%!")


@dataclass(slots=True)
class Route:
    verdict: Verdict
    recipients: list[LocalRecipient] = field(default_factory=list)
    remote: list[str] = field(default_factory=list)


def split_address(address: str) -> tuple[str, str]:
    local, _, domain = address.rpartition("@")
    return local, domain.lower()


def unquote_local(local: str) -> str:
    if len(local) >= 2 and local[0] == local[-1] == '"':
        inner = local[1:-1]
        out, escaped = [], False
        for ch in inner:
            if escaped or ch != "\\":
                out.append(ch)
                escaped = False
            else:
                escaped = True
        return "".join(out)
    return local


class DirectoryCache:
    """Remembers directory answers briefly: found ones for ``ttl``, misses for ``negative_ttl``.

    RCPT lookups are the hot path of the MX (a thread hop each on SQLite). A user or alias
    added a moment ago is seen within ``negative_ttl`` (a second, as Postfix's proxymap
    caches do); one removed a moment ago may be accepted for up to ``ttl`` seconds and then
    fails at commit with a 451 (retried by the sender), never lost.
    """

    def __init__(self, *, ttl: float = CACHE_TTL, negative_ttl: float = NEGATIVE_TTL,
                 max_entries: int = CACHE_MAX) -> None:
        self._ttl = ttl
        self._negative_ttl = negative_ttl
        self._max = max_entries
        self._entries: dict[tuple[str, str], tuple[float, Any]] = {}

    async def get(self, kind: str, key: str, lookup: Callable[[str], Awaitable[Any]]) -> Any:
        now = time.monotonic()
        hit = self._entries.get((kind, key))
        if hit is not None and hit[0] > now:
            return hit[1]
        value = await lookup(key)
        if len(self._entries) >= self._max:
            self._entries.clear()
        self._entries[(kind, key)] = (now + (self._ttl if value else self._negative_ttl), value)
        return value


class Router:
    def __init__(
        self, store: MailStore, *, delimiter: str = "+", cache_ttl: float = CACHE_TTL,
        negative_ttl: float = NEGATIVE_TTL,
    ) -> None:
        self._store = store
        self._delimiter = delimiter
        self._cache = DirectoryCache(ttl=cache_ttl, negative_ttl=negative_ttl)

    async def _has_domain(self, domain: str) -> bool:
        return bool(await self._cache.get("domain", domain.lower(), self._store.has_domain))

    async def _alias(self, source: str) -> Any:
        return await self._cache.get("alias", source.lower(), self._store.get_alias)

    async def _account(self, address: str) -> Any:
        return await self._cache.get("account", address.lower(), self._store.get_account)

    async def is_local_domain(self, domain: str) -> bool:
        return await self._has_domain(domain)

    async def route(self, address: str, *, forward: bool = False) -> Route:
        """Resolve one RCPT address; lookup failures are temporary (451), never 550.

        ``forward``: the caller can queue remote alias targets (``Route.remote``); without it
        an alias that reaches a remote address is a temporary refusal."""
        local, domain = split_address(address)
        try:
            if not domain or not await self._has_domain(domain):
                return Route(results.RELAY_DENIED)
            if ROUTING_CHARS & set(unquote_local(local)):
                return Route(results.RELAY_DENIED)
            route = Route(results.accept())
            found = await self._expand(f"{unquote_local(local)}@{domain}", address, route, set(), 0)
        except StoreError:
            return Route(results.LOOKUP_FAILED)
        if not found:
            return Route(results.USER_UNKNOWN)
        if not route.recipients and not route.remote:
            return Route(results.ALIAS_LOOP)
        if route.remote and not forward:
            return Route(results.NO_FORWARDING)
        return route

    async def _expand(self, address: str, rcpt: str, route: Route, seen: set[str], depth: int) -> bool:
        """Add what ``address`` reaches to ``route``; False when it names nothing at all."""
        key = address.lower()
        if key in seen or depth > MAX_ALIAS_DEPTH:
            return True  # a loop: reaches nothing more, but the name did exist
        seen.add(key)
        local, domain = split_address(address)
        for candidate in self._candidates(local, domain):
            if candidate.startswith("@"):
                alias = await self._alias(candidate)
                if alias is not None:
                    await self._fan_out(alias.targets, rcpt, route, seen, depth)
                    return True
                continue
            alias = await self._alias(candidate)
            if alias is not None:
                await self._fan_out(alias.targets, rcpt, route, seen, depth)
                return True
            account = await self._account(candidate)
            if account is not None:
                if all(r.account_id != account.id for r in route.recipients):
                    route.recipients.append(LocalRecipient(account.id, account.address, rcpt))
                return True
        return False

    def _candidates(self, local: str, domain: str) -> list[str]:
        names = [f"{local}@{domain}"]
        if self._delimiter and self._delimiter in local:
            base = local.split(self._delimiter, 1)[0]
            if base:
                names.append(f"{base}@{domain}")
        names.append(f"@{domain}")
        return names

    async def _fan_out(self, targets: tuple[str, ...], rcpt: str, route: Route, seen: set[str], depth: int) -> None:
        for target in targets[:MAX_ALIAS_TARGETS]:
            local, domain = split_address(target)
            if await self._has_domain(domain):
                await self._expand(f"{local}@{domain}", rcpt, route, seen, depth + 1)
            elif target.lower() not in (r.lower() for r in route.remote):
                route.remote.append(target)
