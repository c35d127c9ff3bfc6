"""Drive one SMTP connection: socket bytes ⇄ the sans-IO engine ⇄ the session service.

Replies are written in command order: the engine's own replies (``data_to_send``) are flushed
before the reply to the next decision event. Output is batched and flushed whenever the loop
must wait for input, so a pipelined group of commands gets its replies in one write.

Timeouts follow RFC 5321 §4.5.3.2 but as deadlines per command, not per read (Postfix
``smtpd_per_request_deadline``): a client that trickles one byte at a time does not extend
them. In DATA a minimum transfer rate applies once a block timeout has passed.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass

from merpati.config.schema import SmtpConfig
from merpati.delivery.envelope import ClientInfo
from merpati.net.channel import ByteChannel, ChannelClosed
from merpati.services.smtp.inbound import InboundSession
from merpati.wire.smtp import (
    NEED_DATA,
    PAUSED,
    Close,
    DataChunk,
    DataEnd,
    DataStart,
    Quit,
    Reply,
    SmtpServer,
    StartTls,
)

log = logging.getLogger("merpati.smtp")

TLS_HANDSHAKE_TIMEOUT = 30.0


class _Timeout(Exception):
    pass


@dataclass(frozen=True, slots=True)
class SmtpTimeouts:
    command: float
    data_block: float
    data_done: float
    lifetime: float
    min_data_rate: int
    error_sleep: float
    soft_error_limit: int

    @classmethod
    def from_config(cls, smtp: SmtpConfig) -> SmtpTimeouts:
        return cls(
            command=smtp.command_timeout,
            data_block=smtp.data_block_timeout,
            data_done=smtp.data_done_timeout,
            lifetime=smtp.session_lifetime,
            min_data_rate=smtp.min_data_rate,
            error_sleep=smtp.error_sleep,
            soft_error_limit=smtp.soft_error_limit,
        )


class SmtpConnection:
    def __init__(
        self,
        channel: ByteChannel,
        *,
        engine: SmtpServer,
        session: InboundSession,
        timeouts: SmtpTimeouts,
        tls_context: ssl.SSLContext | None,
        hostname: str,
        pregreet_wait: float | None = None,
    ) -> None:
        self._channel = channel
        self._pregreet_wait = pregreet_wait  # None: no pre-greeting detection (not an MX port)
        self._engine = engine
        self._session = session
        self._timeouts = timeouts
        self._tls = tls_context
        self._hostname = hostname
        self._out = bytearray()
        self._shutdown = False
        self._idle = False
        self._in_data = False
        self._data_started = 0.0
        self._data_bytes = 0
        self._eof = False

    def request_shutdown(self) -> None:
        self._shutdown = True
        if self._idle:
            self._channel.transport and self._channel.transport.write(self._service_closing())
            self._channel.close()

    def _service_closing(self) -> bytes:
        return Reply(421, "4.3.2", f"{self._hostname} Service shutting down").to_bytes()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        self._end_of_life = loop.time() + self._timeouts.lifetime
        try:
            early = await self._before_greeting(loop)
            await self._channel.write(self._engine.greeting())
            if early:
                self._engine.receive_data(early)
            await self._loop(loop)
        except _Timeout:
            self._out += Reply(421, "4.4.2", f"{self._hostname} Error: timeout exceeded").to_bytes()
            await self._flush_quietly()
        except ChannelClosed:
            pass
        finally:
            self._channel.close()

    async def _before_greeting(self, loop: asyncio.AbstractEventLoop) -> bytes:
        """Pre-greeting detection (SECURITY-CASES SMTP-09, postscreen's pregreet test): what the
        client sends before our banner, waiting up to ``pregreet_wait`` seconds for it; then the
        session's connect stage (``on_connect``), which decides what early talk means."""
        early = b""
        if self._pregreet_wait is not None:
            if self._pregreet_wait > 0:
                self._channel.set_deadline(loop.time() + self._pregreet_wait)
                try:
                    early = await self._channel.read()
                except TimeoutError:
                    pass
            elif self._channel.has_buffered():
                early = await self._channel.read()
        on_connect = getattr(self._session, "on_connect", None)
        if on_connect is not None:
            await on_connect(early)
        return early

    async def _loop(self, loop: asyncio.AbstractEventLoop) -> None:
        deadline = loop.time() + self._timeouts.command
        while True:
            event = self._engine.next_event()
            self._out += self._engine.data_to_send()  # its own replies come first, in order
            if event is NEED_DATA:
                if not await self._feed(loop, deadline):
                    return
                continue
            if event is PAUSED:  # we always answer decision events, so this is a bug
                raise RuntimeError("SMTP engine paused without a pending reply")
            if isinstance(event, Close):
                await self._flush_quietly()
                return
            if isinstance(event, Quit):
                self._out += self._engine.send(Reply(221, "2.0.0", "Bye"))
                await self._flush_quietly()
                return
            await self._dispatch(event)
            if self._engine.closed:
                self._out += self._engine.data_to_send()
                await self._flush_quietly()
                return
            if not isinstance(event, DataChunk):
                deadline = loop.time() + self._timeouts.command

    async def _dispatch(self, event: object) -> None:
        reply = await self._session.handle(event)
        if isinstance(event, DataStart):
            self._in_data = reply is not None and reply.code < 400
            self._data_started = asyncio.get_running_loop().time()
            self._data_bytes = 0
        elif isinstance(event, DataChunk):
            self._data_bytes += len(event.data)
        elif isinstance(event, DataEnd):
            self._in_data = False
        if reply is None:
            return
        if reply.code >= 500 and self._engine_errors() > self._timeouts.soft_error_limit:
            await self._flush()
            await asyncio.sleep(self._timeouts.error_sleep)
        self._out += self._engine.send(reply)
        if isinstance(event, StartTls) and reply.code == 220:
            await self._upgrade()

    def _engine_errors(self) -> int:
        return int(getattr(self._engine, "error_count", 0))

    async def _upgrade(self) -> None:
        await self._flush()
        if self._tls is None:
            raise ChannelClosed("STARTTLS without a TLS context")
        try:
            await self._channel.start_tls(self._tls, timeout=TLS_HANDSHAKE_TIMEOUT)
        except (ssl.SSLError, OSError, asyncio.TimeoutError, ConnectionError) as exc:
            log.info("TLS handshake failed: %s", exc)
            raise ChannelClosed("TLS handshake failed") from None
        log.debug('TLS established')
        self._engine.tls_started()
        self._session.tls_started()

    async def _feed(self, loop: asyncio.AbstractEventLoop, deadline: float) -> bool:
        """Flush output, then wait for input until the deadline; False at end of stream."""
        if self._engine_errors() > self._timeouts.soft_error_limit and self._out:
            await asyncio.sleep(self._timeouts.error_sleep)
        await self._flush()
        if self._shutdown and not self._session.in_transaction and not self._channel.has_buffered():
            self._out += self._service_closing()
            await self._flush_quietly()
            return False
        now = loop.time()
        if self._in_data:
            deadline = self._data_deadline(now)
        deadline = min(deadline, self._end_of_life)
        if now >= deadline:
            raise _Timeout()
        self._idle = not self._session.in_transaction
        self._channel.set_deadline(deadline)
        try:
            data = await self._channel.read()
        except TimeoutError:
            raise _Timeout() from None
        finally:
            self._idle = False
        if not data:
            if self._eof:  # the engine asked for more after end of stream: nothing will come
                return False
            self._eof = True
            self._engine.receive_eof()
            return True
        self._engine.receive_data(data)
        return True

    def _data_deadline(self, now: float) -> float:
        elapsed = now - self._data_started
        if elapsed > self._timeouts.data_block:
            if self._data_bytes / max(elapsed, 1e-9) < self._timeouts.min_data_rate:
                return now  # too slow: time out now
        return min(now + self._timeouts.data_block, self._data_started + self._timeouts.data_done)

    async def _flush(self) -> None:
        if self._out:
            data = bytes(self._out)
            self._out.clear()
            await self._channel.write(data)

    async def _flush_quietly(self) -> None:
        try:
            await self._flush()
        except ChannelClosed:
            pass


def client_info(channel: ByteChannel, *, tls: bool) -> ClientInfo:
    peer = channel.extra("peername") or ("0.0.0.0", 0)
    return ClientInfo(ip=str(peer[0]), port=int(peer[1]), tls=tls)
