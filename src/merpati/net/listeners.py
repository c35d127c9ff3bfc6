"""Listening sockets, connection admission (total and per-IP caps) and graceful shutdown.

A ``Listener`` accepts connections for one protocol on several addresses and runs one task per
connection. Shutdown: stop accepting, ask every connection to finish (idle ones close at once
with a 421, busy ones after their current transaction), wait up to a grace period, then cancel.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from merpati.net.channel import ByteChannel

log = logging.getLogger("merpati.net")


class Connection(Protocol):
    async def run(self) -> None: ...
    def request_shutdown(self) -> None: ...


ConnectionFactory = Callable[[ByteChannel], Connection]
RefuseWriter = Callable[[ByteChannel, str], Awaitable[None]]


def split_hostport(spec: str) -> tuple[str, int]:
    host, sep, port = spec.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"listen address {spec!r} is not host:port")
    host = host.strip("[]")
    return host, int(port)


class Listener:
    def __init__(
        self,
        name: str,
        addresses: tuple[str, ...],
        factory: ConnectionFactory,
        *,
        refuse: RefuseWriter,
        max_connections: int,
        max_per_ip: int,
        ssl_context=None,
        reuse_port: bool = False,
    ) -> None:
        self.name = name
        self._addresses = addresses
        self._factory = factory
        self._refuse = refuse
        self._max = max_connections
        self._max_per_ip = max_per_ip
        self._ssl = ssl_context
        self._reuse_port = reuse_port
        self._servers: list[asyncio.base_events.Server] = []
        self._tasks: dict[asyncio.Task[None], Connection | None] = {}
        self._per_ip: dict[str, int] = {}

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        for spec in self._addresses:
            host, port = split_hostport(spec)
            server = await loop.create_server(
                lambda: ByteChannel(on_connect=self._accepted), host, port,
                reuse_address=True, reuse_port=self._reuse_port or None, ssl=self._ssl, backlog=1024,
            )
            self._servers.append(server)
            log.info("%s listening on %s", self.name, spec)

    def _accepted(self, channel: ByteChannel) -> None:
        task = asyncio.get_running_loop().create_task(self._serve(channel))
        self._tasks[task] = None
        task.add_done_callback(self._tasks.pop)

    async def _serve(self, channel: ByteChannel) -> None:
        peer = channel.extra("peername") or ("?", 0)
        ip = str(peer[0])
        if len(self._tasks) > self._max:
            await self._refuse(channel, "Server busy, try again later")
            return
        if self._per_ip.get(ip, 0) >= self._max_per_ip:
            await self._refuse(channel, "Too many connections from your address")
            return
        self._per_ip[ip] = self._per_ip.get(ip, 0) + 1
        task = asyncio.current_task()
        try:
            connection = self._factory(channel)
            if task is not None:
                self._tasks[task] = connection
            await connection.run()
        except Exception:
            log.exception("%s connection from %s failed", self.name, ip)
        finally:
            channel.close()
            left = self._per_ip.get(ip, 1) - 1
            if left:
                self._per_ip[ip] = left
            else:
                self._per_ip.pop(ip, None)

    async def stop(self, *, grace: float) -> None:
        for server in self._servers:
            server.close()
        for connection in list(self._tasks.values()):
            if connection is not None:
                connection.request_shutdown()
        pending = set(self._tasks)
        if pending:
            _, late = await asyncio.wait(pending, timeout=grace)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late, timeout=5)
        for server in self._servers:
            await server.wait_closed()
