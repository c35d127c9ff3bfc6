"""DkimSigners: one key load per burst, the parsed key kept while it is unchanged."""

from __future__ import annotations

import asyncio

from merpati.mailauth import generate_key
from merpati.queue.signing import SIGNER_TTL, DkimSigners
from merpati.storage.queue_api import DkimKey


class Keys:
    def __init__(self, pem: str) -> None:
        self.pem = pem
        self.reads = 0

    async def get_dkim_key(self, domain: str) -> DkimKey | None:
        self.reads += 1
        await asyncio.sleep(0)
        if domain != "a.test":
            return None
        return DkimKey("a.test", "sel", "ed25519-sha256", self.pem, "", created=0.0)


def test_a_burst_loads_the_key_once_and_an_unchanged_key_is_not_parsed_again() -> None:
    async def go() -> None:
        now = [0.0]
        keys = Keys(generate_key("ed25519")[0].decode())
        signers = DkimSigners(keys, clock=lambda: now[0])  # type: ignore[arg-type]
        got = await asyncio.gather(*(signers.get("A.test") for _ in range(10)))
        assert keys.reads == 1 and got[0] is not None and all(g is got[0] for g in got)
        assert await signers.get("b.test") is None and await signers.get("b.test") is None
        assert keys.reads == 2  # "no key" is cached too
        now[0] += SIGNER_TTL + 1
        assert await signers.get("a.test") is got[0]  # read again, same key: same signer
        assert keys.reads == 3
        keys.pem = generate_key("ed25519")[0].decode()
        now[0] += SIGNER_TTL + 1
        fresh = await signers.get("a.test")
        assert fresh is not None and fresh is not got[0]
        assert not signers._loading

    asyncio.run(go())
