"""Wiring of authenticated submission: ``[listen] submission`` (587, STARTTLS required before
AUTH unless the connection counts as secure, ``[auth] loopback_is_secure``) and
``[listen] submissions`` (465, implicit TLS, RFC 8314).

Submission is served by every SMTP process (the main one and the ``--smtp-worker`` processes, bound
with SO_REUSEPORT like the MX): signing, parsing and the SMTP engine are pure Python, one core
per process. Each process queues into the shared store and delivers through its own runner."""

from __future__ import annotations

import ssl

from merpati.assembly.context import AppContext, Stoppable
from merpati.config import ConfigError
from merpati.net.channel import ByteChannel
from merpati.net.listeners import Listener
from merpati.net.smtp import SmtpConnection, SmtpTimeouts, client_info
from merpati.services.smtp.submission import SubmissionService, SubmissionSession, SubmissionSettings
from merpati.wire import sasl
from merpati.wire.smtp import BareLineEndings, Reply, SmtpLimits, SmtpServer

LISTENERS: tuple[str, ...] = ("submission", "submissions")


class SubmissionFactory:
    """One engine + session + connection driver per accepted submission connection."""

    def __init__(self, ctx: AppContext, service: SubmissionService, *, implicit_tls: bool) -> None:
        config = ctx.config
        self._ctx = ctx
        self._service = service
        self._implicit = implicit_tls
        self._limits = SmtpLimits(
            message_size=config.limits.message_size,
            max_recipients=max(1, config.submission.max_recipients),
            max_line=config.limits.max_line,
            soft_error_limit=config.smtp.soft_error_limit,
            hard_error_limit=config.smtp.hard_error_limit,
        )
        self._timeouts = SmtpTimeouts.from_config(config.smtp)
        self._bare = BareLineEndings(config.smtp.bare_line_endings)

    def __call__(self, channel: ByteChannel) -> SmtpConnection:
        ctx = self._ctx
        info = client_info(channel, tls=self._implicit)
        secure = ctx.authenticator.is_secure(info.ip, tls=self._implicit)
        engine = SmtpServer(
            hostname=ctx.config.hostname,
            limits=self._limits,
            tls_available=ctx.tls is not None and not self._implicit,
            tls_active=self._implicit,
            auth_mechanisms=sasl.MECHANISMS,
            auth_allowed=secure,
            require_tls=not secure,
            bare_line_endings=self._bare,
            banner=ctx.config.smtp.banner,
        )
        session = SubmissionSession(engine=engine, service=self._service, client=info)
        return SmtpConnection(
            channel, engine=engine, session=session, timeouts=self._timeouts,  # type: ignore[arg-type]
            tls_context=ctx.tls, hostname=ctx.config.hostname,
        )

    async def refuse(self, channel: ByteChannel, text: str) -> None:
        try:
            await channel.write(Reply(421, "4.7.0", f"{self._ctx.config.hostname} {text}").to_bytes())
        finally:
            channel.close()


def build_service(ctx: AppContext) -> SubmissionService:
    config = ctx.config
    return SubmissionService(
        store=ctx.store,
        queue=ctx.store.queue,  # type: ignore[attr-defined]
        router=ctx.router,
        pipeline=ctx.pipeline,
        authenticator=ctx.authenticator,
        settings=SubmissionSettings(
            hostname=config.hostname,
            max_messages_per_hour=config.submission.max_messages_per_hour,
            max_received=config.smtp.max_received,
            recipient_delimiter=config.smtp.recipient_delimiter,
        ),
    )


class _Listeners:
    def __init__(self, listeners: list[Listener]) -> None:
        self._listeners = listeners

    async def stop(self, grace: float) -> None:
        for listener in self._listeners:
            await listener.stop(grace=grace)


async def start(ctx: AppContext) -> list[Stoppable]:
    config = ctx.config
    if not (config.listen.submission or config.listen.submissions):
        return []
    if config.listen.submissions and ctx.tls is None:
        raise ConfigError("listen.submissions: implicit TLS needs [tls] cert and key")
    service = build_service(ctx)
    listeners: list[Listener] = []
    for name, addresses, implicit in (
        ("submission", config.listen.submission, False),
        ("submissions", config.listen.submissions, True),
    ):
        if not addresses:
            continue
        factory = SubmissionFactory(ctx, service, implicit_tls=implicit)
        tls: ssl.SSLContext | None = ctx.tls if implicit else None
        listeners.append(Listener(
            name, addresses, factory, refuse=factory.refuse, ssl_context=tls, reuse_port=ctx.processes > 1,
            max_connections=config.smtp.max_connections, max_per_ip=config.smtp.max_connections_per_ip,
        ))
    started = _Listeners([])
    try:
        for listener in listeners:
            await listener.start()
            started._listeners.append(listener)
    except BaseException:
        await started.stop(grace=0)
        raise
    return [started]
