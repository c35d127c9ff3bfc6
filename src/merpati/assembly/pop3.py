"""Wiring of the pop3 part: the ``pop3`` (STLS, RFC 2595) and ``pop3s`` (implicit TLS,
RFC 8314) listeners over one ``Pop3Service`` (maildrop locks, size cache) per process. Every SMTP
process serves them (SO_REUSEPORT), as Dovecot runs several pop3 processes; the maildrop lock is
the store's, so it holds across processes and nodes. With ``[pop3] login_delay`` set, only the
main process serves POP3 (the last-login times are kept in that process, per node)."""

from __future__ import annotations

from merpati.assembly.context import AppContext, Stoppable
from merpati.config import ConfigError
from merpati.net.listeners import Listener
from merpati.net.pop3 import Pop3Factory, Pop3Timeouts
from merpati.services.pop3 import Pop3Service, Pop3Settings

LISTENERS: tuple[str, ...] = ("pop3", "pop3s")


def build_service(ctx: AppContext) -> Pop3Service:
    settings = Pop3Settings(
        retr_marks_seen=ctx.config.pop3.retr_marks_seen, login_delay=float(ctx.config.pop3.login_delay)
    )
    return Pop3Service(ctx.store, ctx.authenticator, settings)


async def start(ctx: AppContext) -> list[Stoppable]:
    config = ctx.config
    if not (config.listen.pop3 or config.listen.pop3s):
        return []
    if config.listen.pop3s and ctx.tls is None:
        raise ConfigError("listen.pop3s: implicit TLS needs a certificate ([tls] cert and key)")
    if config.pop3.login_delay < 0:
        raise ConfigError("pop3.login_delay: expected 0 or a positive number of seconds")
    if config.pop3.idle_timeout <= 0:
        raise ConfigError("pop3.idle_timeout: expected a positive number of seconds")
    # The last-login times behind [LOGIN-DELAY] live in the process: with a login delay set,
    # POP3 is served by the main process only, so every login of the node is seen by one record.
    shared = config.pop3.login_delay == 0
    if not shared and not ctx.main_process:
        return []
    service = build_service(ctx)
    timeouts = Pop3Timeouts.from_idle(config.pop3.idle_timeout)
    listeners: list[Stoppable] = []
    for name, implicit in (("pop3", False), ("pop3s", True)):
        addresses = getattr(config.listen, name)
        if not addresses:
            continue
        factory = Pop3Factory(
            service, ctx.authenticator, tls_context=ctx.tls, implicit_tls=implicit, timeouts=timeouts,
            login_delay=config.pop3.login_delay,
        )
        listener = Listener(
            name, addresses, factory, refuse=factory.refuse,
            max_connections=config.pop3.max_connections, max_per_ip=config.pop3.max_connections_per_ip,
            ssl_context=ctx.tls if implicit else None, reuse_port=shared and ctx.processes > 1,
        )
        try:
            await listener.start()
        except BaseException:
            for started in listeners:
                await started.stop(grace=0)
            raise
        listeners.append(listener)
    return listeners
