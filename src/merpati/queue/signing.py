"""DKIM signers from the keys in the store: one ``DkimSigner`` per domain, cached a minute.

Submission signs what leaves for another domain with the sender's domain key; the runner
signs the DSNs it sends (From: MAILER-DAEMON@<hostname>) with the key of the host name's
closest domain that has one (mx.a.test → a.test), so DMARC at the receiver passes on them.

Loading a key (PEM parse and the RSA consistency check) costs tens of milliseconds of CPU: the
first submissions of a burst share one load instead of each doing its own.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from merpati.mailauth import DkimSigner
from merpati.storage.api import StoreError
from merpati.storage.queue_api import QueueStore

log = logging.getLogger("merpati.queue")

SIGNER_TTL = 60.0


class DkimSigners:
    def __init__(self, queue: QueueStore, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._queue = queue
        self._clock = clock
        self._cache: dict[str, tuple[float, DkimSigner | None]] = {}
        self._parsed: dict[tuple[str, str, str], DkimSigner] = {}  # (domain, selector, PEM): the key unchanged
        self._loading: dict[str, asyncio.Future[DkimSigner | None]] = {}

    async def get(self, domain: str) -> DkimSigner | None:
        domain = domain.lower().rstrip(".")
        hit = self._cache.get(domain)
        if hit is not None and hit[0] > self._clock():
            return hit[1]
        loading = self._loading.get(domain)
        if loading is None:
            loading = asyncio.ensure_future(self._load(domain))
            self._loading[domain] = loading
            loading.add_done_callback(lambda _: self._loading.pop(domain, None))
        return await asyncio.shield(loading)

    async def _load(self, domain: str) -> DkimSigner | None:
        signer = None
        try:
            key = await self._queue.get_dkim_key(domain)
            if key is not None:
                ident = (key.domain, key.selector, key.private_key)
                signer = self._parsed.get(ident)
                if signer is None:
                    signer = DkimSigner(key.domain, key.selector, key.private_key)
                    if len(self._parsed) > 1000:
                        self._parsed.clear()
                    self._parsed[ident] = signer
        except (StoreError, ValueError) as exc:
            log.warning("DKIM key of %s unusable: %s", domain, exc)
            return None  # not cached: try again next time
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[domain] = (self._clock() + SIGNER_TTL, signer)
        return signer

    async def for_host(self, hostname: str) -> DkimSigner | None:
        """The signer of the host name's closest enclosing domain with a key (at least 2 labels)."""
        labels = hostname.lower().rstrip(".").split(".")
        for start in range(0, max(1, len(labels) - 1)):
            signer = await self.get(".".join(labels[start:]))
            if signer is not None:
                return signer
        return None

    @staticmethod
    def sign(signer: DkimSigner | None, data: bytes) -> bytes:
        if signer is None:
            return data
        try:
            return signer.sign(data) + data
        except Exception:  # a broken key must not lose the message: send it unsigned
            log.exception("DKIM signing for %s failed", signer.domain)
            return data
