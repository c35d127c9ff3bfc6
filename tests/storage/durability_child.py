"""Child process for the SIGKILL durability test: deliver forever, print "UID TOKEN" after each
deliver() returns (flushed), until killed. Usage: durability_child.py URL ACCOUNT_ID TASKS"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from storage_helpers import PARSED_TYPE, T0, durable_message, parse  # noqa: E402

from merpati.storage import Delivery, open_store  # noqa: E402


async def main(url: str, account_id: int, tasks: int) -> None:
    store = await open_store(url, parsed_type=PARSED_TYPE)
    out = sys.stdout

    async def worker(w: int) -> None:
        n = 0
        while True:
            token = f"w{w}-{n}"
            data = durable_message(token)
            [meta] = await store.deliver([Delivery(account_id, data, parse(data), T0)])
            out.write(f"{meta.uid} {token}\n")
            out.flush()
            n += 1

    await asyncio.gather(*(worker(w) for w in range(tasks)))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
