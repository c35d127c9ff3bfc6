"""Wiring of the IMAP part: ``imap`` (STARTTLS) and ``imaps`` (implicit TLS) listeners.

One ``ImapContext`` per process (the store, the authenticator and the per-user connection
counters; \\Recent is kept in the store); per connection an engine, a session and a driver.
"""

from __future__ import annotations

from merpati.assembly.context import AppContext, Stoppable
from merpati.config import ConfigError
from merpati.net.channel import ByteChannel
from merpati.net.imap import ImapConnection, ImapTimeouts, peer_ip
from merpati.net.listeners import Listener
from merpati.services.imap.session import ImapContext, ImapSession, ImapSettings
from merpati.wire.imap.limits import ImapLimits
from merpati.wire.imap.server import ImapServer

LISTENERS: tuple[str, ...] = ("imap", "imaps")


class ImapFactory:
    """Builds one engine + session + driver per accepted connection."""

    def __init__(self, ctx: AppContext, *, implicit_tls: bool) -> None:
        config = ctx.config
        self._ctx = ImapContext(
            store=ctx.store,
            authenticator=ctx.authenticator,
            settings=ImapSettings(
                hostname=config.hostname,
                tls_available=ctx.tls is not None,
                message_size=config.limits.message_size,
                max_user_connections_per_ip=config.imap.max_user_connections_per_ip,
                literal_plus=config.imap.literal_plus,
            ),
        )
        self._tls = ctx.tls
        self._implicit = implicit_tls
        self._limits = ImapLimits(
            max_line=max(1024, config.imap.max_line),
            max_line_prelogin=max(1024, config.imap.max_line_prelogin),
            # A literal size is at most 12 digits; a larger limit means "as large as IMAP allows".
            message_size=min(config.limits.message_size, 10**12 - 1),
        )
        self._timeouts = ImapTimeouts(prelogin=config.imap.prelogin_timeout, idle=config.imap.idle_timeout)

    def share(self, other: ImapFactory) -> ImapFactory:
        """Use ``other``'s process-wide context (one set of connection counters for both listeners)."""
        self._ctx = other._ctx
        return self

    def __call__(self, channel: ByteChannel) -> ImapConnection:
        engine = ImapServer(limits=self._limits, literal_plus=self._ctx.settings.literal_plus)
        session = ImapSession(self._ctx, remote_ip=peer_ip(channel), tls=self._implicit)
        return ImapConnection(channel, engine=engine, session=session, timeouts=self._timeouts, tls_context=self._tls)

    async def refuse(self, channel: ByteChannel, text: str) -> None:
        try:
            await channel.write(b"* BYE " + text.encode("ascii", "replace") + b"\r\n")
        finally:
            channel.close()


async def start(ctx: AppContext) -> list[Stoppable]:
    config = ctx.config
    if not ctx.main_process or not (config.listen.imap or config.listen.imaps):
        return []
    listeners: list[Listener] = []
    plain = ImapFactory(ctx, implicit_tls=False)
    if config.listen.imap:
        listeners.append(Listener(
            "imap", config.listen.imap, plain, refuse=plain.refuse,
            max_connections=config.imap.max_connections, max_per_ip=config.imap.max_connections_per_ip,
        ))
    if config.listen.imaps:
        if ctx.tls is None:
            raise ConfigError("listen.imaps: needs [tls] cert and key")
        secure = ImapFactory(ctx, implicit_tls=True).share(plain)
        listeners.append(Listener(
            "imaps", config.listen.imaps, secure, refuse=secure.refuse, ssl_context=ctx.tls,
            max_connections=config.imap.max_connections, max_per_ip=config.imap.max_connections_per_ip,
        ))
    started: list[Stoppable] = []
    try:
        for listener in listeners:
            await listener.start()
            started.append(_Stop(listener))
    except BaseException:
        for s in started:
            await s.stop(grace=1.0)
        raise
    return started


class _Stop:
    def __init__(self, listener: Listener) -> None:
        self._listener = listener

    async def stop(self, grace: float) -> None:
        await self._listener.stop(grace=grace)
