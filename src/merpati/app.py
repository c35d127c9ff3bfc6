"""The composition root: config → store → routing/pipeline → listeners, passed down by constructor.

Nothing here is module-level state, so two servers can run in one process (the end-to-end
tests do). ``run`` serves until ``stop`` is set (SIGTERM/SIGINT when run from the CLI), then
shuts down gracefully: listeners stop accepting, transactions in flight finish, the store closes.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import ssl
from collections.abc import Callable

from merpati.assembly import imap as imap_part
from merpati.assembly import pop3 as pop3_part
from merpati.assembly import queue as queue_part
from merpati.assembly import submission as submission_part
from merpati.assembly.context import AppContext, Stoppable
from merpati.config import Config, ConfigError
from merpati.core.diskspace import DiskSpace
from merpati.core.logging import configure as configure_log_lines
from merpati.delivery.checks.build import BuiltChecks, ChecksConfigError, build_checks
from merpati.delivery.pipeline import InboundPipeline, PipelineSettings
from merpati.delivery.routing import Router
from merpati.net.channel import ByteChannel
from merpati.net.listeners import Listener, split_hostport
from merpati.net.smtp import SmtpConnection, SmtpTimeouts, client_info
from merpati.net.tls import TlsUnavailable, server_context
from merpati.net.workers import WorkerSupervisor, default_worker_count, die_with_parent
from merpati.resolver import DnsPythonResolver
from merpati.services.auth import Authenticator, AuthSettings
from merpati.services.smtp.inbound import InboundSession, SessionPolicy, parse_networks
from merpati.storage import open_store
from merpati.wire.smtp import BareLineEndings, Reply, SmtpLimits, SmtpServer

log = logging.getLogger("merpati")

# The parts beside the MX, started in this order (stopped in reverse) by the main process;
# SMTP worker processes start WORKER_PARTS too (submission and a queue runner of their own, and
# POP3: its one-session-per-maildrop lock holds across processes and nodes).
PARTS = (queue_part, submission_part, imap_part, pop3_part)
WORKER_PARTS = (queue_part, submission_part, pop3_part)
IMPLEMENTED_LISTENERS = ("smtp",) + tuple(name for part in PARTS for name in part.LISTENERS)
ALL_LISTENERS = ("smtp", "submission", "submissions", "imap", "imaps", "pop3", "pop3s")
SHUTDOWN_GRACE = 30.0


def check_config(config: Config) -> None:
    """Refuse at start-up what cannot be served, rather than silently ignoring it."""
    for name in ALL_LISTENERS:
        addresses = getattr(config.listen, name)
        if addresses and name not in IMPLEMENTED_LISTENERS:
            raise ConfigError(f"listen.{name}: this listener is not implemented yet; set it to []")
        for spec in addresses:
            try:
                split_hostport(spec)
            except ValueError as exc:
                raise ConfigError(f"listen.{name}: {exc}") from None
    if config.smtp.workers < 0:
        raise ConfigError("smtp.workers: expected 0 (one per core) or a positive number")
    if config.smtp.bare_line_endings not in ("reject", "normalize"):
        raise ConfigError('smtp.bare_line_endings: expected "reject" or "normalize"')
    try:
        parse_networks(config.smtp.trusted_networks)
    except ValueError as exc:
        raise ConfigError(f"smtp.trusted_networks: {exc}") from None


def configure_logging() -> None:
    configure_log_lines()


class SmtpFactory:
    """Builds one engine + session + connection driver per accepted MX connection."""

    def __init__(
        self, config: Config, pipeline: InboundPipeline, tls: ssl.SSLContext | None, checks: BuiltChecks | None = None
    ) -> None:
        self._config = config
        self._pregreet_wait = checks.pregreet_wait if checks is not None else None
        self._pipeline = pipeline
        self._tls = tls
        self._limits = SmtpLimits(
            message_size=config.limits.message_size,
            max_recipients=config.limits.max_recipients,
            max_line=config.limits.max_line,
            soft_error_limit=config.smtp.soft_error_limit,
            hard_error_limit=config.smtp.hard_error_limit,
        )
        space = DiskSpace(config.data_dir, minimum=config.limits.message_size * 3 // 2)
        self._policy = SessionPolicy(
            trusted_networks=parse_networks(config.smtp.trusted_networks), space_ok=space.ok,
            checks=checks.pipeline if checks is not None else None,
        )
        self._timeouts = SmtpTimeouts.from_config(config.smtp)
        self._bare = BareLineEndings(config.smtp.bare_line_endings)

    def __call__(self, channel: ByteChannel) -> SmtpConnection:
        engine = SmtpServer(
            hostname=self._config.hostname,
            limits=self._limits,
            tls_available=self._tls is not None,
            tls_active=False,
            auth_mechanisms=(),
            auth_allowed=False,
            bare_line_endings=self._bare,
            banner=self._config.smtp.banner,
        )
        session = InboundSession(
            engine=engine, pipeline=self._pipeline, client=client_info(channel, tls=False), policy=self._policy
        )
        return SmtpConnection(
            channel, engine=engine, session=session, timeouts=self._timeouts,
            tls_context=self._tls, hostname=self._config.hostname, pregreet_wait=self._pregreet_wait,
        )

    async def refuse(self, channel: ByteChannel, text: str) -> None:
        try:
            await channel.write(Reply(421, "4.7.0", f"{self._config.hostname} {text}").to_bytes())
        finally:
            channel.close()


def smtp_worker_count(config: Config) -> int:
    """How many processes serve the MX listeners; 1 when there is no file for workers to read."""
    if not config.listen.smtp or config.source is None:
        return 1
    return config.smtp.workers or default_worker_count()


async def run(
    config: Config,
    *,
    stop: asyncio.Event | None = None,
    ready: Callable[[], None] | None = None,
    smtp_worker: int | None = None,
) -> None:
    """Serve until ``stop`` is set. ``smtp_worker``: run as MX worker N of the main process."""
    configure_logging()
    check_config(config)
    try:
        tls = server_context(config.tls)
    except TlsUnavailable as exc:
        raise ConfigError(str(exc)) from None
    if smtp_worker is not None:
        die_with_parent()
    workers = smtp_worker_count(config)
    config.data_dir.mkdir(parents=True, exist_ok=True)
    # Nothing in an SMTP worker process subscribes to changes (IMAP and the Bayes training
    # run in the main process): it only publishes them.
    store = await open_store(config.storage_url, receive_changes=smtp_worker is None)
    if smtp_worker is not None and hasattr(store, "relay_writes"):
        store.relay_writes()
    listeners: list[Listener] = []
    started: list[Stoppable] = []
    supervisor: WorkerSupervisor | None = None
    try:
        router = Router(store, delimiter=config.smtp.recipient_delimiter)
        pipeline = InboundPipeline(
            store=store, router=router,
            settings=PipelineSettings(hostname=config.hostname, max_received=config.smtp.max_received),
        )
        try:
            resolver = DnsPythonResolver(config.dns.nameservers, timeout=config.dns.timeout)
        except ValueError as exc:
            raise ConfigError(f"dns.nameservers: {exc}") from None
        try:
            checks = build_checks(config.checks, hostname=config.hostname, resolver=resolver, store=store)
        except (ChecksConfigError, ValueError) as exc:
            raise ConfigError(str(exc)) from None
        smtp = SmtpFactory(config, pipeline, tls, checks)
        if config.listen.smtp:
            listeners.append(Listener(
                "smtp", config.listen.smtp, smtp, refuse=smtp.refuse, reuse_port=workers > 1,
                max_connections=config.smtp.max_connections, max_per_ip=config.smtp.max_connections_per_ip,
            ))
        for listener in listeners:
            await listener.start()
        ctx = AppContext(
            config=config, store=store, tls=tls, router=router, pipeline=pipeline,
            authenticator=Authenticator(store, AuthSettings.from_config(config.auth)),
            main_process=smtp_worker is None, processes=workers, worker=smtp_worker,
        )
        for part in PARTS if smtp_worker is None else WORKER_PARTS:
            started.extend(await part.start(ctx))
        if smtp_worker is None:
            started.extend(await checks.start_background(store))  # Bayes training, greylist expiry
        if smtp_worker is None and workers > 1:
            assert config.source is not None
            if hasattr(store, "serve_relayed_writes"):  # SQLite: one writer for all MX processes
                await store.serve_relayed_writes()
            supervisor = WorkerSupervisor(config.source, workers - 1, grace=SHUTDOWN_GRACE)
            await supervisor.start()
        stop = stop or _signal_event()
        role = f"smtp worker {smtp_worker}" if smtp_worker is not None else f"{workers} smtp process(es)"
        log.info("merpati %s serving (%s)", config.hostname, role)
        if ready is not None:
            ready()
        await stop.wait()
        log.info("shutting down")
    finally:
        if supervisor is not None:
            await supervisor.stop()
        for service in reversed(started):
            await service.stop(grace=SHUTDOWN_GRACE)
        for listener in listeners:
            await listener.stop(grace=SHUTDOWN_GRACE)
        await store.close()
        log.info("stopped")


def _signal_event() -> asyncio.Event:
    event = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, event.set)
        except (NotImplementedError, RuntimeError):  # not the main thread
            pass
    return event
