"""Password logins for IMAP, POP3 and submission: verification, the auth cache, brute-force delays.

- **Verification**: argon2id (``core.passwords``), run in a thread so a login storm does not
  stall the event loop. An unknown user costs one dummy verify, and every failure gets the
  same generic answer, so neither timing nor text tells whether an account exists.
- **Auth cache** (Dovecot's ``auth_cache``): after a successful verify we keep
  HMAC-SHA256(process key, account id, password) with the account's current password hash and an
  expiry. A later login with the same password hits the cache only while the account's stored
  hash is still the one we verified against, so a password change (on any node: we compare with
  the hash read from the store on every login) drops the entry. Wrong passwords are never cached
  as right; the process key never leaves memory, so the cache holds nothing that can be brute-forced
  offline. Concurrent logins with the same credentials share one verification (a client opening
  ten connections at once costs one argon2 verify, not ten).
- **Failure delay**: each recent failure of the same remote IP or the same username doubles the
  delay before the failure is answered (from ``failure_delay`` up to ``max_failure_delay``);
  failures older than ``failure_window`` are forgotten. The sleep happens before the answer, so a
  client that pipelines guesses gains nothing.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import hmac
import ipaddress
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from merpati.core.passwords import dummy_verify, verify_password
from merpati.storage.api import MailStore
from merpati.storage.models import Account

log = logging.getLogger("merpati.auth")

MAX_TRACKED = 100_000  # failure records kept (IPs + usernames); the oldest are dropped beyond
# argon2id allocates its 19 MiB per verify; in the default executor (up to 32 threads) a login
# storm leaves that much per thread in malloc's arenas. Two threads use both cores here.
VERIFY_THREADS = 2


@dataclass(frozen=True, slots=True)
class AuthSettings:
    loopback_is_secure: bool = True
    cache_ttl: float = 300.0
    cache_size: int = 10_000
    failure_delay: float = 0.5
    max_failure_delay: float = 15.0
    failure_window: float = 900.0

    @classmethod
    def from_config(cls, auth: object) -> AuthSettings:
        """From ``config.AuthConfig`` (duck-typed: services do not import the config package)."""
        return cls(**{name: getattr(auth, name) for name in cls.__dataclass_fields__})


@dataclass(slots=True)
class _CacheEntry:
    account_id: int
    password_hash: str
    expires: float


class _Failures:
    """Recent failure times per key, bounded in memory."""

    def __init__(self, window: float, clock: Callable[[], float]) -> None:
        self._window = window
        self._clock = clock
        self._times: OrderedDict[str, list[float]] = OrderedDict()

    def count(self, key: str) -> int:
        times = self._times.get(key)
        if not times:
            return 0
        horizon = self._clock() - self._window
        while times and times[0] < horizon:
            times.pop(0)
        if not times:
            del self._times[key]
        return len(times)

    def add(self, key: str) -> None:
        times = self._times.setdefault(key, [])
        times.append(self._clock())
        del times[:-64]  # the delay is capped long before this many
        self._times.move_to_end(key)
        while len(self._times) > MAX_TRACKED:
            self._times.popitem(last=False)

    def clear(self, key: str) -> None:
        self._times.pop(key, None)


class Authenticator:
    """One per process, shared by every protocol's sessions."""

    def __init__(
        self,
        store: MailStore,
        settings: AuthSettings | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] = asyncio.sleep,
    ) -> None:
        self._store = store
        self.settings = settings or AuthSettings()
        self._clock = clock
        self._sleep = sleep
        self._key = os.urandom(32)
        self._cache: OrderedDict[bytes, _CacheEntry] = OrderedDict()
        self._verifying: dict[tuple[bytes, str], asyncio.Future[bool]] = {}  # verifications in flight
        self._failures = _Failures(self.settings.failure_window, clock)
        self.stats = {"verified": 0, "cache_hits": 0, "failures": 0}
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None

    async def _in_pool(self, fn: Callable[..., object], *args: object) -> object:
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(VERIFY_THREADS, thread_name_prefix="argon2")
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None

    def is_secure(self, remote_ip: str | None, *, tls: bool) -> bool:
        """Whether plaintext credentials may be sent on this connection (TLS, or trusted loopback)."""
        if tls:
            return True
        if not self.settings.loopback_is_secure or not remote_ip:
            return False
        try:
            return ipaddress.ip_address(remote_ip.split("%", 1)[0]).is_loopback
        except ValueError:
            return False

    async def authenticate(self, username: str, password: str, *, remote_ip: str | None = None) -> Account | None:
        """The account when the credentials are right, else None after the failure delay.

        ``username`` is the full address (case-insensitive). Never raises for bad credentials.
        """
        account = await self._check(username, password)
        if account is not None:
            if remote_ip:
                self._failures.clear("ip:" + remote_ip)
            self._failures.clear("user:" + username.lower())
            return account
        self.stats["failures"] += 1
        delay = self.failure_delay(username, remote_ip)
        if remote_ip:
            self._failures.add("ip:" + remote_ip)
        self._failures.add("user:" + username.lower())
        log.info("auth failed user=%r ip=%s delay=%.1fs", username[:64], remote_ip, delay)
        if delay > 0:
            await self._sleep(delay)  # type: ignore[misc]
        return None

    def failure_delay(self, username: str, remote_ip: str | None) -> float:
        """The delay the next failure of this user/IP gets: base doubled per recent failure, capped."""
        s = self.settings
        if s.failure_delay <= 0:
            return 0.0
        recent = self._failures.count("user:" + username.lower())
        if remote_ip:
            recent = max(recent, self._failures.count("ip:" + remote_ip))
        return min(s.max_failure_delay, s.failure_delay * (2 ** min(recent, 32)))

    def forget(self, account_id: int | None = None) -> None:
        """Drop cached credentials (of one account, or all): for tests and admin password changes."""
        if account_id is None:
            self._cache.clear()
            return
        for key in [k for k, e in self._cache.items() if e.account_id == account_id]:
            del self._cache[key]

    async def _check(self, username: str, password: str) -> Account | None:
        if not username or not password or "@" not in username or len(username) > 320:
            await self._in_pool(dummy_verify, password[:1024])
            return None
        account = await self._store.get_account(username)
        if account is None:
            await self._in_pool(dummy_verify, password[:1024])
            return None
        key = self._cache_key(account.id, password)
        entry = self._cache.get(key)
        now = self._clock()
        if entry is not None:
            if entry.expires > now and hmac.compare_digest(entry.password_hash, account.password_hash):
                self.stats["cache_hits"] += 1
                return account
            del self._cache[key]
        ok = await self._verify(key, account.password_hash, password)
        if not ok:
            return None
        if self.settings.cache_ttl > 0 and self.settings.cache_size > 0:
            self._cache[key] = _CacheEntry(account.id, account.password_hash, now + self.settings.cache_ttl)
            while len(self._cache) > self.settings.cache_size:
                self._cache.popitem(last=False)
        return account

    async def _verify(self, key: bytes, password_hash: str, password: str) -> bool:
        """One argon2 verify per (credentials, stored hash) at a time; concurrent callers share it."""
        flight = (key, password_hash)
        running = self._verifying.get(flight)
        if running is None:
            running = asyncio.ensure_future(self._in_pool(verify_password, password_hash, password))
            self._verifying[flight] = running
            self.stats["verified"] += 1
            running.add_done_callback(lambda _: self._verifying.pop(flight, None))
        return bool(await asyncio.shield(running))  # a cancelled caller does not cancel the others'

    def _cache_key(self, account_id: int, password: str) -> bytes:
        msg = account_id.to_bytes(8, "big") + password.encode("utf-8", "surrogatepass")
        return hmac.new(self._key, msg, hashlib.sha256).digest()
