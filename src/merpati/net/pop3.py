"""Drive one POP3 connection: socket bytes ⇄ the sans-IO engine ⇄ the session service.

Responses are written in command order: the engine's own answers (``data_to_send``) are
flushed before the answer to the next decision event. Output is batched and flushed whenever
the loop must wait for input (or grows past ``FLUSH_AT``), so a pipelined group of commands
(RFC 2449 PIPELINING) gets its answers in few writes, and a long run of pipelined RETRs
streams with the transport's flow control instead of piling up in memory.

Timeouts are deadlines per command, not per read, so trickling bytes does not extend them:
``prelogin`` before login, ``idle`` (RFC 1939 §3: at least 10 minutes) after. A write that
cannot drain within ``idle`` (a client that stopped reading) ends the connection too. A
connection that ends without QUIT removes nothing (the session just releases its lock).

STLS (RFC 2595): the engine answers +OK and stops reading; we flush, upgrade (the channel
drops every plaintext byte still buffered), then ``engine.tls_started()`` drops the engine's.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass

from merpati.net.channel import ByteChannel, ChannelClosed
from merpati.services.auth import Authenticator
from merpati.services.pop3 import Pop3Service, Pop3Session
from merpati.wire.pop3 import (
    NEED_DATA,
    PAUSED,
    Close,
    Err,
    Pop3Limits,
    Pop3Server,
    RespCode,
    StartTls,
    to_bytes,
)

log = logging.getLogger("merpati.pop3")

TLS_HANDSHAKE_TIMEOUT = 30.0
PRELOGIN_TIMEOUT = 180.0  # Dovecot's login timeout (3 min); never longer than the idle timeout
FLUSH_AT = 256 * 1024  # flush the output batch once it holds this much
WRITE_BUFFER_SOFT = 64 * 1024  # below this a write never waits, so it needs no timer


@dataclass(frozen=True, slots=True)
class Pop3Timeouts:
    prelogin: float
    idle: float
    tls_handshake: float = TLS_HANDSHAKE_TIMEOUT

    @classmethod
    def from_idle(cls, idle: float) -> Pop3Timeouts:
        return cls(prelogin=min(PRELOGIN_TIMEOUT, idle), idle=idle)


class _Timeout(Exception):
    pass


class Pop3Connection:
    def __init__(
        self,
        channel: ByteChannel,
        *,
        engine: Pop3Server,
        session: Pop3Session,
        timeouts: Pop3Timeouts,
        tls_context: ssl.SSLContext | None,
    ) -> None:
        self._channel = channel
        self._engine = engine
        self._session = session
        self._timeouts = timeouts
        self._tls = tls_context
        self._out: list[bytes] = []
        self._out_size = 0
        self._shutdown = False
        self._idle = False

    def request_shutdown(self) -> None:
        self._shutdown = True
        if self._idle:
            transport = self._channel.transport
            if transport is not None and not transport.is_closing():
                transport.write(_SHUTTING_DOWN)
            self._channel.close()

    async def run(self) -> None:
        try:
            await self._channel.write(self._engine.greeting())
            await self._loop()
        except _Timeout:
            self._emit(to_bytes(Err("Disconnected for inactivity.")))
            await self._flush_quietly()
        except (ChannelClosed, ConnectionError):
            pass
        finally:
            await self._session.close()
            self._channel.close()

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout()
        engine = self._engine
        while True:
            event = engine.next_event()
            own = engine.data_to_send()
            if own:
                self._emit(own)
            if event is NEED_DATA:
                if not await self._feed(loop, deadline):
                    return
                continue
            if event is PAUSED:  # we answer every decision event at once, so this is a bug
                raise RuntimeError("POP3 engine paused without a pending response")
            if isinstance(event, Close):
                await self._flush_quietly()
                return
            if isinstance(event, StartTls):
                await self._upgrade()
            else:
                self._emit(engine.send(await self._session.handle(event)))
                if self._out_size >= FLUSH_AT:
                    await self._flush()
            deadline = loop.time() + self._timeout()

    def _timeout(self) -> float:
        return self._timeouts.idle if self._engine.logged_in else self._timeouts.prelogin

    def _emit(self, data: bytes) -> None:
        self._out.append(data)
        self._out_size += len(data)

    async def _upgrade(self) -> None:
        await self._flush()
        if self._tls is None:
            raise ChannelClosed("STLS without a TLS context")
        try:
            await self._channel.start_tls(self._tls, timeout=self._timeouts.tls_handshake)
        except (ssl.SSLError, OSError, asyncio.TimeoutError, ConnectionError) as exc:
            log.info("pop3 TLS handshake failed: %s", exc)
            raise ChannelClosed("TLS handshake failed") from None
        self._engine.tls_started()

    async def _feed(self, loop: asyncio.AbstractEventLoop, deadline: float) -> bool:
        """Flush output, then wait for input until the deadline; False at end of stream."""
        await self._flush()
        if self._shutdown and not self._channel.has_buffered():
            self._emit(_SHUTTING_DOWN)
            await self._flush_quietly()
            return False
        if loop.time() >= deadline:
            raise _Timeout()
        self._idle = True
        self._channel.set_deadline(deadline)
        try:
            data = await self._channel.read()
        except TimeoutError:
            raise _Timeout() from None
        finally:
            self._idle = False
        if data:
            self._engine.receive_data(data)
        else:
            self._engine.receive_eof()  # the engine runs complete lines left, then says Close
        return True

    async def _flush(self) -> None:
        if not self._out:
            return
        data = self._out[0] if len(self._out) == 1 else b"".join(self._out)
        self._out.clear()
        self._out_size = 0
        transport = self._channel.transport
        if transport is not None and len(data) + transport.get_write_buffer_size() < WRITE_BUFFER_SOFT:
            await self._channel.write(data)  # cannot block: no timer needed
            return
        try:
            async with asyncio.timeout(self._timeouts.idle):
                await self._channel.write(data)
        except TimeoutError:
            self._channel.abort()
            raise ChannelClosed("client stopped reading") from None

    async def _flush_quietly(self) -> None:
        try:
            await self._flush()
        except (ChannelClosed, ConnectionError):
            pass


_SHUTTING_DOWN = to_bytes(Err("Server shutting down.", RespCode.SYS_TEMP))


class Pop3Factory:
    """Builds engine + session + driver per accepted connection of one POP3 listener."""

    def __init__(
        self,
        service: Pop3Service,
        authenticator: Authenticator,
        *,
        tls_context: ssl.SSLContext | None,
        implicit_tls: bool,
        timeouts: Pop3Timeouts,
        limits: Pop3Limits = Pop3Limits(),
        login_delay: int = 0,
    ) -> None:
        self._service = service
        self._auth = authenticator
        self._tls = tls_context
        self._implicit = implicit_tls
        self._timeouts = timeouts
        self._limits = limits
        self._login_delay = login_delay

    def __call__(self, channel: ByteChannel) -> Pop3Connection:
        peer = channel.extra("peername") or ("", 0)
        ip = str(peer[0]) if peer[0] else None
        engine = Pop3Server(
            limits=self._limits,
            tls_available=self._tls is not None and not self._implicit,
            tls_active=self._implicit,
            plaintext_auth=self._auth.is_secure(ip, tls=self._implicit),
            login_delay=self._login_delay,
        )
        return Pop3Connection(
            channel, engine=engine, session=self._service.session(remote_ip=ip),
            timeouts=self._timeouts, tls_context=self._tls,
        )

    async def refuse(self, channel: ByteChannel, text: str) -> None:
        try:
            await channel.write(to_bytes(Err(text, RespCode.SYS_TEMP)))
        finally:
            channel.close()
