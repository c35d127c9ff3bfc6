"""The one-session-per-maildrop rule (RFC 1939 §8: "exclusive-access lock on the maildrop").

The store's ``lock_maildrop`` is exclusive across processes and nodes (SQLite: a ``flock``
released by the kernel when the holder dies; PostgreSQL: an advisory lock released with its
connection). A store that does not implement it yet (``NotImplementedError``) falls back to
``LocalMaildropLocks``: exclusive within this server process only, which is every POP3
session of a single-node deployment (POP3 runs in the main process only).
"""

from __future__ import annotations

from typing import Any, Protocol

from merpati.storage.api import MailStore


class Lock(Protocol):
    @property
    def held(self) -> bool: ...

    async def release(self) -> None: ...


class LocalLock:
    def __init__(self, owner: LocalMaildropLocks, account_id: int) -> None:
        self._owner = owner
        self.account_id = account_id
        self._held = True

    @property
    def held(self) -> bool:
        return self._held

    async def release(self) -> None:
        if self._held:
            self._held = False
            self._owner._release(self.account_id, self)


class LocalMaildropLocks:
    """In-process maildrop locks (one holder per account id)."""

    def __init__(self) -> None:
        self._holders: dict[int, LocalLock] = {}

    def try_lock(self, account_id: int) -> LocalLock | None:
        if account_id in self._holders:
            return None
        lock = LocalLock(self, account_id)
        self._holders[account_id] = lock
        return lock

    def _release(self, account_id: int, lock: LocalLock) -> None:
        if self._holders.get(account_id) is lock:
            del self._holders[account_id]

    def __len__(self) -> int:
        return len(self._holders)


class MaildropLocker:
    """Takes maildrop locks from the store, or from the in-process fallback while the store
    cannot (decided once, at the first attempt)."""

    def __init__(self, store: MailStore) -> None:
        self._store = store
        self.local = LocalMaildropLocks()
        self._store_supported: bool | None = None

    async def try_lock(self, account_id: int) -> Lock | None:
        if self._store_supported is not False:
            try:
                lock: Any = await self._store.lock_maildrop(account_id)
            except (NotImplementedError, AttributeError):
                self._store_supported = False
            else:
                self._store_supported = True
                return lock  # type: ignore[no-any-return]
        return self.local.try_lock(account_id)
