"""Outbound connections for the queue: the ``Dialer`` protocol and its TCP implementation.

DESIGN.md puts the concrete dialer in ``net``; ``queue`` may not import ``net`` and the
outbound side needs none of the listener machinery, so the small TCP dialer lives here,
behind the ``Dialer`` protocol that tests replace.

``Connection`` keeps its own receive buffer (not ``asyncio.StreamReader``'s private one) so
that ``start_tls`` can drop every plaintext byte that arrived after the server's ``220``
(SECURITY-CASES SMTP-14: "the client must discard or abort on any bytes buffered after the
220"). Reads wait until a deadline on the loop's clock; writes respect flow control.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from typing import Any, Protocol


class ConnectionClosed(Exception):
    """The peer closed the connection or it broke."""


class Connection(asyncio.Protocol):
    def __init__(self, *, high_water: int = 1 << 20) -> None:
        self._buffer = bytearray()
        self._high_water = high_water
        self._eof = False
        self._error: BaseException | None = None
        self._readable = asyncio.Event()
        self._writable = asyncio.Event()
        self._writable.set()
        self._paused = False
        self.transport: asyncio.Transport | None = None
        self.tls = False

    # -- asyncio.Protocol --------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        self._readable.set()
        if len(self._buffer) > self._high_water and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()

    def eof_received(self) -> bool:
        self._eof = True
        self._readable.set()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._eof = True
        self._error = exc
        self._readable.set()
        self._writable.set()

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    # -- our API ---------------------------------------------------------------------------
    async def read(self, deadline: float) -> bytes:
        """Whatever is buffered (waiting for at least one byte until ``deadline``, a loop time).

        Raises ``TimeoutError`` at the deadline and ``ConnectionClosed`` at end of stream.
        """
        loop = asyncio.get_running_loop()
        while not self._buffer:
            if self._eof:
                raise ConnectionClosed("connection closed by the server")
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError
            self._readable.clear()
            try:
                await asyncio.wait_for(self._readable.wait(), remaining)
            except asyncio.TimeoutError:
                raise TimeoutError from None
        data = bytes(self._buffer)
        self._buffer.clear()
        if self._paused and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        return data

    def discard(self) -> None:
        self._buffer.clear()

    async def write(self, data: bytes, deadline: float | None = None) -> None:
        if self.transport is None or self.transport.is_closing():
            raise ConnectionClosed("connection closed")
        self.transport.write(data)
        if not self._writable.is_set():
            loop = asyncio.get_running_loop()
            timeout = None if deadline is None else max(0.0, deadline - loop.time())
            try:
                await asyncio.wait_for(self._writable.wait(), timeout)
            except asyncio.TimeoutError:
                raise TimeoutError from None
            if self.transport.is_closing():
                raise ConnectionClosed("connection closed")

    async def start_tls(self, context: ssl.SSLContext, *, server_hostname: str | None, timeout: float) -> None:
        """Upgrade to TLS as the client. Every byte received so far is dropped first."""
        assert self.transport is not None
        self._buffer.clear()
        loop = asyncio.get_running_loop()
        new = await loop.start_tls(
            self.transport, self, context, server_side=False, server_hostname=server_hostname,
            ssl_handshake_timeout=timeout,
        )
        if new is None:
            raise ConnectionClosed("TLS handshake failed")
        self.transport = new  # type: ignore[assignment]
        self._buffer.clear()  # nothing received before the handshake may count
        self.tls = True

    @property
    def pending(self) -> int:
        """Bytes received and not read yet."""
        return len(self._buffer)

    @property
    def closed(self) -> bool:
        """The peer closed (or broke) the connection, or we did."""
        return self._eof or self.transport is None or self.transport.is_closing()

    def extra(self, name: str, default: Any = None) -> Any:
        return self.transport.get_extra_info(name, default) if self.transport else default

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


class Dialer(Protocol):
    async def connect(self, address: str, port: int, *, timeout: float) -> Connection:
        """A connected ``Connection`` to ``address`` (an IP literal) or an OSError/TimeoutError."""
        ...


class TcpDialer:
    """Plain TCP from ``bind_address`` (Postfix ``smtp_bind_address``; "" lets the OS choose)."""

    def __init__(self, *, bind_address: str = "") -> None:
        self.bind_address = bind_address

    async def connect(self, address: str, port: int, *, timeout: float) -> Connection:
        loop = asyncio.get_running_loop()
        local: tuple[str, int] | None = None
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        if self.bind_address:
            bind_family = socket.AF_INET6 if ":" in self.bind_address else socket.AF_INET
            if bind_family != family:
                raise OSError(f"bind address {self.bind_address} cannot reach {address}")
            local = (self.bind_address, 0)
        transport, protocol = await asyncio.wait_for(
            loop.create_connection(Connection, address, port, family=family, local_addr=local), timeout
        )
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        return protocol


def client_tls_context(*, verify: bool = False) -> ssl.SSLContext:
    """Opportunistic TLS (RFC 7435): encrypt whatever the peer offers, verify only on demand."""
    ctx = ssl.create_default_context()
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx
