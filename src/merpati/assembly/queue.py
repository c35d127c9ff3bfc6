"""Wiring of the outbound queue: a DNS resolver from ``[dns]``, the runner from ``[queue]``
and ``[relay]``, local filing through the inbound pipeline. Every SMTP process (the main one
and each ``--smtp-worker``) runs a runner of its own, so mail submitted in a process is
delivered by that process (handed over already leased, no claim round); the processes share
``[queue] concurrency`` and claim from the same queue like nodes do (leases, fencing).
``store.queue.on_enqueue`` wakes the runner after a local enqueue."""

from __future__ import annotations

import logging
import math
import socket
import time
from collections.abc import Callable

from merpati.assembly.context import AppContext, Stoppable
from merpati.config import Config, ConfigError
from merpati.queue.client import ClientSettings
from merpati.queue.dialer import TcpDialer, client_tls_context
from merpati.queue.local import PipelineLocalDelivery
from merpati.queue.policy import RetryPolicy
from merpati.queue.runner import QueueRunner, Relay, RunnerSettings
from merpati.queue.signing import DkimSigners
from merpati.resolver import DnsPythonResolver, Resolver, parse_nameserver

log = logging.getLogger("merpati.queue")

LISTENERS: tuple[str, ...] = ()


def retry_policy(config: Config) -> RetryPolicy:
    q = config.queue
    try:
        return RetryPolicy.from_strings(q.retry_schedule, q.lifetime, q.delay_warning)
    except ValueError as exc:
        raise ConfigError(f"queue: {exc}") from None


def check_config(config: Config) -> None:
    retry_policy(config)
    for ns in config.dns.nameservers:
        try:
            parse_nameserver(ns)
        except ValueError as exc:
            raise ConfigError(f"dns.nameservers: {exc}") from None
    if config.dns.timeout <= 0:
        raise ConfigError("dns.timeout: must be positive")
    if config.queue.concurrency < 1:
        raise ConfigError("queue.concurrency: must be at least 1")


def resolver(config: Config) -> Resolver:
    return DnsPythonResolver(list(config.dns.nameservers), timeout=config.dns.timeout)


def build_runner(
    ctx: AppContext, *, dns: Resolver | None = None, clock: Callable[[], float] = time.time
) -> QueueRunner:
    config = ctx.config
    processes = max(1, ctx.processes)
    check_config(config)
    relay = Relay(config.relay.host, config.relay.port) if config.relay.host else None
    client = ClientSettings(
        helo_name=config.hostname,
        tls_context=client_tls_context(),
        require_tls=bool(relay and config.relay.username),
        username=config.relay.username if relay else "",
        password=config.relay.password if relay else "",
    )
    settings = RunnerSettings(
        hostname=config.hostname,
        concurrency=max(1, math.ceil(config.queue.concurrency / processes)),
        port=config.queue.port,
        connect_timeout=config.queue.connect_timeout,
        relay=relay,
    )
    return QueueRunner(
        ctx.store.queue,  # type: ignore[attr-defined]
        resolver=dns or resolver(config),
        policy=retry_policy(config),
        settings=settings,
        client=client,
        dialer=TcpDialer(bind_address=config.queue.bind_address),
        local=PipelineLocalDelivery(ctx.router, ctx.pipeline, hostname=config.hostname),
        clock=clock,
        signers=DkimSigners(ctx.store.queue),  # type: ignore[attr-defined]
        owner=node_owner(config, ctx.worker),
    )


def node_owner(config: Config, worker: int | None = None) -> str:
    """A lease owner id that is the same after a restart of this node (same host, same data
    folder, same SMTP worker index), so the restarted runner takes back what the dead one held
    at once. Two live servers must never share a data folder (they would also share the SQLite
    file); the processes of one server differ by their worker index."""
    base = f"{socket.gethostname()}:{config.data_dir.resolve()}"
    return base if worker is None else f"{base}:w{worker}"


async def start(ctx: AppContext) -> list[Stoppable]:
    runner = build_runner(ctx)
    ctx.store.queue.on_enqueue(runner.wake)  # type: ignore[attr-defined]
    ctx.store.queue.attach_runner(runner)  # type: ignore[attr-defined]
    await runner.start(reclaim=True)
    log.info("queue runner started (owner %s, concurrency %d)", runner.owner, runner.settings.concurrency)
    return [runner]
