"""A byte channel over an asyncio transport, with a buffer we own.

Why not ``asyncio.StreamReader``: after STARTTLS every plaintext byte the client pipelined
behind the command must be thrown away (CVE-2011-0411). StreamReader keeps its buffer private,
so bytes that arrived between our last read and the upgrade would survive into the TLS session.
Here the buffer is ours: ``start_tls`` empties it, and ``discard`` is explicit.

Flow control: reading pauses while more than ``high_water`` bytes wait unread, so a client
that floods us cannot grow memory; writing awaits ``drain`` while the transport is paused.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from typing import Any


class ChannelClosed(Exception):
    """The peer closed the connection or it broke."""


class ByteChannel(asyncio.Protocol):
    def __init__(
        self, *, high_water: int = 256 * 1024, on_connect: Callable[[ByteChannel], None] | None = None
    ) -> None:
        self._high_water = high_water
        self._on_connect = on_connect
        self._buffer = bytearray()
        self._eof = False
        self._error: BaseException | None = None
        self._readable: asyncio.Event | None = None
        self._writable: asyncio.Event | None = None
        self._reading_paused = False
        self.transport: asyncio.Transport | None = None
        self._deadline = float("inf")
        self._timer: asyncio.TimerHandle | None = None
        self._timed_out = False

    # -- asyncio.Protocol --------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        self._readable = asyncio.Event()
        self._writable = asyncio.Event()
        self._writable.set()
        if self._on_connect is not None:
            self._on_connect(self)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        assert self._readable is not None
        self._readable.set()
        if len(self._buffer) > self._high_water and not self._reading_paused and self.transport:
            self._reading_paused = True
            self.transport.pause_reading()

    def eof_received(self) -> bool:
        self._eof = True
        if self._readable is not None:
            self._readable.set()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._eof = True
        self._error = exc
        if self._readable is not None:
            self._readable.set()
        if self._writable is not None:
            self._writable.set()

    def pause_writing(self) -> None:
        assert self._writable is not None
        self._writable.clear()

    def resume_writing(self) -> None:
        assert self._writable is not None
        self._writable.set()

    # -- our API -------------------------------------------------------------------------
    @property
    def at_eof(self) -> bool:
        return self._eof and not self._buffer

    def has_buffered(self) -> bool:
        return bool(self._buffer)

    def set_deadline(self, when: float) -> None:
        """``read`` raises TimeoutError once the loop's clock passes ``when``.

        One timer per connection, moved lazily: pushing the deadline later costs an attribute
        write, not a new timer (asyncio.timeout per read cost ~25 µs a read here).
        """
        self._deadline = when
        if self._timer is None or when < self._timer.when():
            self._arm()

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        if self._deadline != float("inf") and not self._eof:
            self._timer = asyncio.get_running_loop().call_at(self._deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if asyncio.get_running_loop().time() >= self._deadline:
            self._timed_out = True
            if self._readable is not None:
                self._readable.set()
        else:
            self._arm()

    async def read(self) -> bytes:
        """Every buffered byte (waiting for at least one); b"" at end of stream.

        Raises TimeoutError when the deadline passes first.
        """
        assert self._readable is not None
        while not self._buffer:
            if self._eof:
                return b""
            if self._timed_out:
                self._timed_out = False
                raise TimeoutError
            self._readable.clear()
            await self._readable.wait()
        data = bytes(self._buffer)
        self._buffer.clear()
        if self._reading_paused and self.transport is not None:
            self._reading_paused = False
            self.transport.resume_reading()
        return data

    def discard(self) -> None:
        self._buffer.clear()

    async def write(self, data: bytes) -> None:
        if not data:
            return
        if self.transport is None or self.transport.is_closing():
            raise ChannelClosed("connection closed")
        self.transport.write(data)
        assert self._writable is not None
        if not self._writable.is_set():
            await self._writable.wait()
            if self.transport.is_closing():
                raise ChannelClosed("connection closed")

    async def start_tls(self, context: ssl.SSLContext, *, timeout: float) -> None:
        """Upgrade to TLS as the server; everything received in plaintext so far is dropped."""
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        # start_tls moves the socket to the TLS protocol before its first await, so no plaintext
        # reaches us after this clear; what arrives later is decrypted and must be kept.
        self._buffer.clear()
        new = await loop.start_tls(
            self.transport, self, context, server_side=True, ssl_handshake_timeout=timeout
        )
        if new is None:
            raise ChannelClosed("TLS handshake failed")
        self.transport = new

    def extra(self, name: str, default: Any = None) -> Any:
        return self.transport.get_extra_info(name, default) if self.transport else default

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()
