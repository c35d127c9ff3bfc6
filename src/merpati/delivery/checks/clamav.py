"""ClamAV integration: each message is streamed to clamd with INSTREAM (clamd's protocol).

``address`` is ``host:port`` (``[v6]:port``) or the path of clamd's Unix socket. The
command is ``zINSTREAM\\0``, then chunks of ``<4-byte big-endian length><bytes>``, then a
zero-length chunk; clamd answers ``stream: OK``, ``stream: <signature> FOUND`` or
``<text> ERROR`` (for example a message over its StreamMaxLength). clamd parses mail itself,
so a virus in a base64 MIME attachment is found. An infected message is rejected with
``554 5.7.1`` naming the signature; clamd down, slow or in error raises ``CheckUnavailable``
(the failure policy applies).
"""

from __future__ import annotations

import asyncio
import re
import struct

from merpati.delivery.checks.context import CheckContext
from merpati.delivery.checks.results import CheckUnavailable, Result, reject, sanitize

CHUNK = 64 * 1024
MAX_REPLY = 4096
_FOUND = re.compile(r"^stream: (.+) FOUND$")


def parse_address(address: str) -> tuple[str, int] | str:
    """("host", port) for host:port, else the Unix socket path."""
    text = address.strip()
    if text.startswith("/") or text.startswith("."):
        return text
    if text.startswith("["):
        host, _, port = text[1:].partition("]:")
    else:
        host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f'expected "host:port" or a socket path, not {address!r}')
    return host, int(port)


class ClamavCheck:
    name = "clamav"
    concurrent = True

    def __init__(self, address: str, *, timeout: float = 30.0) -> None:
        self._address = parse_address(address)
        self._timeout = timeout

    async def scan(self, data: bytes) -> str | None:
        """The signature found, or None when clean; CheckUnavailable when clamd cannot say."""
        try:
            async with asyncio.timeout(self._timeout):
                if isinstance(self._address, str):
                    reader, writer = await asyncio.open_unix_connection(self._address)
                else:
                    reader, writer = await asyncio.open_connection(*self._address)
                try:
                    writer.write(b"zINSTREAM\0")
                    view = memoryview(data)
                    for start in range(0, len(view), CHUNK):
                        piece = view[start : start + CHUNK]
                        writer.write(struct.pack(">I", len(piece)))
                        writer.write(piece)
                        await writer.drain()
                    writer.write(struct.pack(">I", 0))
                    await writer.drain()
                    reply = await _read_reply(reader)
                finally:
                    writer.close()
                    try:
                        await writer.wait_closed()
                    except (OSError, ConnectionError):
                        pass
        except TimeoutError:
            raise CheckUnavailable(f"no answer within {self._timeout:g}s") from None
        except (OSError, ConnectionError) as exc:
            raise CheckUnavailable(f"{type(exc).__name__}: {exc}") from None
        if reply == "stream: OK":
            return None
        m = _FOUND.match(reply)
        if m:
            return m.group(1)
        raise CheckUnavailable(sanitize(f"clamd said: {reply}", 160))

    async def on_data(self, ctx: CheckContext) -> Result | None:
        assert ctx.message is not None
        signature = await self.scan(ctx.message)
        if signature is None:
            return None
        return reject(f"Message rejected: virus found: {sanitize(signature, 120)}", 554, "5.7.1")


async def _read_reply(reader: asyncio.StreamReader) -> str:
    data = bytearray()
    while len(data) < MAX_REPLY:
        chunk = await reader.read(MAX_REPLY)
        if not chunk:
            break
        data += chunk
        if b"\0" in data or b"\n" in data:
            break
    text = bytes(data).split(b"\0", 1)[0].split(b"\n", 1)[0]
    if not text:
        raise CheckUnavailable("clamd closed the connection without an answer")
    return text.decode("utf-8", "replace").strip()
