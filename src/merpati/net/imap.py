"""Drive one IMAP connection: socket bytes ⇄ the sans-IO engine ⇄ the session service.

* Output is collected and written whenever the loop must wait for input, so a pipelined
  burst of commands gets its answers in one write; long FETCH answers are written as they
  are built (the session's ``writer``).
* Timeouts are deadlines per command (a client trickling bytes does not extend them):
  ``[imap] prelogin_timeout`` before authentication, ``idle_timeout`` after (also while in
  IDLE, RFC 9051 §5.4: at least 30 minutes).
* STARTTLS: the tagged OK is written, the engine drops everything buffered behind the
  command (CVE-2011-0411), then the channel upgrades (``ByteChannel.start_tls`` drops what the
  socket still held in plaintext).
* COMPRESS=DEFLATE (RFC 4978): after the OK, writes go through a raw-deflate compressor with a
  sync flush per write; reads are inflated at most ``INFLATE_CHUNK`` octets at a time, so a
  decompression bomb never grows a buffer (the engine's own line limits apply to the result).
* IDLE: the loop waits on the socket and on the account's change feed at once and writes the
  updates as soon as they are committed (RFC 2177).
* Bad commands: the connection closes after ``PRELOGIN_ERRORS`` before login (Dovecot: 3)
  and ``MAX_ERRORS`` after (SECURITY-CASES IMAP-08).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import zlib
from dataclasses import dataclass
from typing import Any

from merpati.net.channel import ByteChannel, ChannelClosed
from merpati.services.imap.session import Action, ImapSession
from merpati.wire.imap import commands as c
from merpati.wire.imap.events import (
    NEED_DATA,
    PAUSED,
    AppendLiteral,
    AuthCancel,
    AuthResponse,
    Command,
    ConnectionClosed,
    IdleDone,
    ProtocolError,
)
from merpati.wire.imap.server import ImapServer
from merpati.wire.imap.states import State

log = logging.getLogger("merpati.imap")

TLS_HANDSHAKE_TIMEOUT = 30.0
INFLATE_CHUNK = 65_536
PRELOGIN_ERRORS = 3
MAX_ERRORS = 20
_PAUSING = (c.StartTls, c.Compress, c.Idle, c.Authenticate)


class _Timeout(Exception):
    pass


@dataclass(frozen=True, slots=True)
class ImapTimeouts:
    prelogin: float = 60.0
    idle: float = 1800.0


class ImapConnection:
    def __init__(
        self,
        channel: ByteChannel,
        *,
        engine: ImapServer,
        session: ImapSession,
        timeouts: ImapTimeouts,
        tls_context: ssl.SSLContext | None,
    ) -> None:
        self._channel = channel
        self._engine = engine
        self._session = session
        self._timeouts = timeouts
        self._tls = tls_context
        self._out: list[bytes] = []
        self._shutdown = False
        self._waiting = False
        self._errors = 0
        self._deflate: Any = None
        self._inflate: Any = None
        self._eof = False
        session.writer = self._write_now

    # -- lifecycle ---------------------------------------------------------------------------
    def request_shutdown(self) -> None:
        """Stop at the next command boundary; a connection waiting for its client (or in
        IDLE) wakes at once, says BYE and closes."""
        self._shutdown = True
        if self._waiting:
            self._channel.set_deadline(asyncio.get_running_loop().time())

    async def run(self) -> None:
        try:
            self._out.append(self._session.greeting())
            await self._loop()
            await self._flush_quietly()  # whatever the last answer was (BYE included)
        except _Timeout:
            self._out.append(b"* BYE Disconnected for inactivity\r\n")
            await self._flush_quietly()
        except ChannelClosed:
            pass
        finally:
            try:
                await self._session.close()
            finally:
                self._channel.close()

    def _deadline(self) -> float:
        loop = asyncio.get_running_loop()
        authed = self._session.state is not State.NOT_AUTHENTICATED
        return loop.time() + (self._timeouts.idle if authed else self._timeouts.prelogin)

    # -- the main loop -----------------------------------------------------------------------
    async def _loop(self) -> None:
        engine, session = self._engine, self._session
        deadline = self._deadline()
        while True:
            ev = engine.next_event()
            more = engine.data_to_send()
            if more:
                self._out.append(more)
            if ev is NEED_DATA:
                if not await self._feed(deadline):
                    return
                continue
            if ev is PAUSED:
                raise RuntimeError("IMAP engine paused without a pending decision")
            if isinstance(ev, Command):
                if not await self._command(ev):
                    return
                deadline = self._deadline()
            elif isinstance(ev, AppendLiteral):
                refusal = await session.append_literal(ev)
                if refusal is None:
                    engine.accept_literal()
                else:
                    self._out.append(refusal)
                    engine.reject_literal()
            elif isinstance(ev, AuthResponse):
                outcome = await session.auth_response(ev.tag, ev.data)
                self._out.append(outcome.data)
                if outcome.action is Action.AUTH_CONTINUE:
                    engine.continue_auth()
                else:
                    engine.resume()
                    self._after_login()
                    if outcome.status == "BAD" and not self._count_error():
                        return
                deadline = self._deadline()
            elif isinstance(ev, AuthCancel):
                self._out.append(session.auth_cancel(ev.tag).data)
            elif isinstance(ev, ProtocolError):
                self._out.append(engine.error_response(ev))
                if ev.fatal or engine.closed:
                    self._out.append(b"* BYE Protocol error\r\n")
                    await self._flush_quietly()
                    return
                if ev.status == "BAD" and not self._count_error():
                    return
            elif isinstance(ev, ConnectionClosed):
                await self._flush_quietly()
                return
            elif isinstance(ev, IdleDone):  # only inside _idle; harmless here
                self._out.append(await session.idle_done(ev.tag))

    def _count_error(self) -> bool:
        """Count a BAD; False (after writing BYE) when the connection must close."""
        self._errors += 1
        limit = PRELOGIN_ERRORS if self._session.state is State.NOT_AUTHENTICATED else MAX_ERRORS
        if self._errors >= limit:
            self._out.append(b"* BYE Too many invalid commands\r\n")
            return False
        return True

    def _after_login(self) -> None:
        session, engine = self._session, self._engine
        if session.state is not State.NOT_AUTHENTICATED and not engine.authenticated:
            engine.set_authenticated()
            self._errors = 0
        if session.utf8 and not engine.utf8:
            engine.enable_utf8()

    async def _command(self, ev: Command) -> bool:
        """Run one command; False when the connection must close."""
        engine, session = self._engine, self._session
        outcome = await session.execute(ev.tag, ev.command)
        self._out.append(outcome.data)
        action = outcome.action
        pausing = isinstance(ev.command, _PAUSING)
        if action is Action.START_TLS:
            engine.start_tls()
            await self._upgrade()
        elif action is Action.COMPRESS:
            rest = engine.start_compress()
            await self._flush()
            self._deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
            self._inflate = zlib.decompressobj(-15)
            if rest:
                self._pending_compressed(rest)
        elif action is Action.IDLE:
            engine.start_idle()
            return await self._idle()
        elif action is Action.AUTH_CONTINUE:
            engine.continue_auth()
        elif pausing:
            engine.resume()
        self._after_login()
        if action is Action.LOGOUT:
            await self._flush_quietly()
            return False
        if outcome.status == "BAD" and not self._count_error():
            await self._flush_quietly()
            return False
        return True

    # -- STARTTLS ----------------------------------------------------------------------------
    async def _upgrade(self) -> None:
        await self._flush()
        if self._tls is None:
            raise ChannelClosed("STARTTLS without a TLS context")
        try:
            await self._channel.start_tls(self._tls, timeout=TLS_HANDSHAKE_TIMEOUT)
        except (ssl.SSLError, OSError, asyncio.TimeoutError, ConnectionError) as exc:
            log.info("IMAP TLS handshake failed: %s", exc)
            raise ChannelClosed("TLS handshake failed") from None
        self._session.tls = True

    # -- IDLE --------------------------------------------------------------------------------
    async def _idle(self) -> bool:
        engine, session = self._engine, self._session
        deadline = self._deadline()
        loop = asyncio.get_running_loop()
        while True:
            ev = engine.next_event()
            if isinstance(ev, IdleDone):
                self._out.append(await session.idle_done(ev.tag))
                return True
            if isinstance(ev, ProtocolError):
                self._out.append(engine.error_response(ev))
                return not (ev.fatal or engine.closed)
            if isinstance(ev, ConnectionClosed):
                return False
            if ev is not NEED_DATA:
                raise RuntimeError(f"unexpected event during IDLE: {ev!r}")
            await self._flush()
            if self._inflate is not None and self._inflate.unconsumed_tail:
                self._engine.receive_data(self._inflate_some(b""))
                continue
            if self._shutdown:
                return await self._say_bye()
            if loop.time() >= deadline:
                raise _Timeout()
            self._channel.set_deadline(deadline)
            read = asyncio.ensure_future(self._channel.read())
            waits = {read}
            change = None
            if session.subscription is not None:
                change = asyncio.ensure_future(session.wait_change())
                waits.add(change)
            self._waiting = True
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                self._waiting = False
                for t in waits:
                    if not t.done():
                        t.cancel()
            if change is not None and change.done() and not change.cancelled() and change.result():
                data = await session.idle_sync()
                if data:
                    self._out.append(data)
                    if data.startswith(b"* BYE"):
                        await self._flush_quietly()
                        return False
            if read.done() and not read.cancelled():
                exc = read.exception()
                if isinstance(exc, TimeoutError):
                    if self._shutdown:
                        return await self._say_bye()
                    raise _Timeout()
                if exc is not None:
                    raise ChannelClosed(str(exc))
                self._take(read.result())

    async def _say_bye(self) -> bool:
        self._out.append(b"* BYE Server shutting down\r\n")
        await self._flush_quietly()
        return False

    # -- input -------------------------------------------------------------------------------
    async def _feed(self, deadline: float) -> bool:
        """Flush output, then wait for input until the deadline; False at end of stream."""
        await self._flush()
        if self._inflate is not None and self._inflate.unconsumed_tail:
            self._engine.receive_data(self._inflate_some(b""))
            return True
        if self._shutdown and not self._engine.in_command:
            return await self._say_bye()
        loop = asyncio.get_running_loop()
        if loop.time() >= deadline:
            raise _Timeout()
        self._channel.set_deadline(deadline)
        self._waiting = not self._engine.in_command
        try:
            data = await self._channel.read()
        except TimeoutError:
            if self._shutdown:
                return await self._say_bye()
            raise _Timeout() from None
        finally:
            self._waiting = False
        if not data:
            if self._eof:
                return False
            self._eof = True
            self._engine.receive_eof()
            return True
        self._take(data)
        return True

    def _take(self, data: bytes) -> None:
        if not data:
            if not self._eof:
                self._eof = True
                self._engine.receive_eof()
            return
        if self._inflate is not None:
            data = self._inflate_some(data)
        self._engine.receive_data(data)

    def _pending_compressed(self, data: bytes) -> None:
        self._engine.receive_data(self._inflate_some(data))

    def _inflate_some(self, data: bytes) -> bytes:
        inflater = self._inflate
        try:
            if not data:
                data = inflater.unconsumed_tail
            return inflater.decompress(data, INFLATE_CHUNK)  # type: ignore[no-any-return]
        except zlib.error:
            raise ChannelClosed("invalid DEFLATE stream") from None

    # -- output ------------------------------------------------------------------------------
    def _encode(self, data: bytes) -> bytes:
        if self._deflate is None:
            return data
        return self._deflate.compress(data) + self._deflate.flush(zlib.Z_SYNC_FLUSH)  # type: ignore[no-any-return]

    async def _write_now(self, data: bytes) -> None:
        if self._out:
            data = b"".join(self._out) + data
            self._out.clear()
        if data:
            await self._channel.write(self._encode(data))

    async def _flush(self) -> None:
        if self._out:
            data = b"".join(self._out)
            self._out.clear()
            if data:
                await self._channel.write(self._encode(data))

    async def _flush_quietly(self) -> None:
        try:
            await self._flush()
        except ChannelClosed:
            pass


def peer_ip(channel: ByteChannel) -> str:
    peer = channel.extra("peername") or ("0.0.0.0", 0)
    return str(peer[0])
