"""A queue node for the multi-process tests: one QueueRunner on a shared store.

    python queue_node.py URL SINK_HOST SINK_PORT OWNER BIND_ADDRESS [LEASE]

Every domain's MX is the sink. Runs until the queue, once filled, is empty for a while (then prints its
stats as JSON and exits 0) or until it is killed.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import queue_support  # noqa: E402

queue_support.enable_pending_migrations()

from merpati.queue.client import ClientSettings, ClientTimeouts  # noqa: E402
from merpati.queue.dialer import TcpDialer  # noqa: E402
from merpati.queue.policy import RetryPolicy  # noqa: E402
from merpati.queue.runner import QueueRunner, RunnerSettings  # noqa: E402
from merpati.resolver import FakeResolver  # noqa: E402
from merpati.storage import open_store  # noqa: E402


async def main(url: str, host: str, port: int, owner: str, bind: str, lease: float) -> None:
    store = await open_store(url)
    resolver = FakeResolver({"b.test": {"MX": [(10, "mx.b.test")]}, "mx.b.test": {"A": [host]}})
    runner = QueueRunner(
        store.queue,
        resolver=resolver,
        policy=RetryPolicy(schedule=(1.0,), lifetime=3600.0, delay_warning=0),
        settings=RunnerSettings(hostname=f"{owner}.a.test", port=port, concurrency=8, lease=lease, poll_interval=0.05),
        client=ClientSettings(helo_name=f"{owner}.a.test", timeouts=ClientTimeouts(greeting=30, command=30, data_done=60)),
        dialer=TcpDialer(bind_address=bind),
        owner=owner,
    )
    await runner.start()
    print("started", flush=True)
    idle, waited, seen = 0, 0, False
    while not ((seen and idle >= 20) or (not seen and waited >= 600)):  # 2 s idle after work; 60 s max without
        await asyncio.sleep(0.1)
        waited += 1
        if (await store.queue.counts())["items"]:
            seen, idle = True, 0
        else:
            idle += 1
    await runner.stop(grace=5)
    await store.close()
    print(json.dumps(runner.stats), flush=True)


if __name__ == "__main__":
    url, host, port, owner, bind = sys.argv[1:6]
    lease = float(sys.argv[6]) if len(sys.argv) > 6 else 2.0
    asyncio.run(main(url, host, int(port), owner, bind, lease))
