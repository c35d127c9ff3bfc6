"""A small TTL cache for DNS answers, owned by one resolver instance.

Positive answers live for their TTL (capped), negative ones (NXDOMAIN, NODATA) for a short
fixed time, temporary errors are never cached. The size is bounded: when full, the oldest
entry goes first (insertion order), which is good enough for a cache this small.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

__all__ = ["TtlCache"]


class TtlCache:
    def __init__(
        self,
        *,
        max_entries: int = 4096,
        max_ttl: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._entries: dict[tuple[str, str], tuple[float, Any]] = {}
        self._max_entries = max_entries
        self._max_ttl = max_ttl
        self._clock = clock

    def get(self, key: tuple[str, str]) -> Any | None:
        """The cached value (an answer list or a permanent DnsError), or None."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, value = entry
        if self._clock() >= expires:
            del self._entries[key]
            return None
        return value

    def put(self, key: tuple[str, str], value: Any, ttl: float) -> None:
        if self._max_entries <= 0 or ttl <= 0:
            return
        self._entries.pop(key, None)
        while len(self._entries) >= self._max_entries:
            del self._entries[next(iter(self._entries))]
        self._entries[key] = (self._clock() + min(ttl, self._max_ttl), value)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
