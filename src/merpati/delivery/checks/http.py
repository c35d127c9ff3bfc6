"""A minimal HTTP/1.1 client on asyncio streams: one request per connection, bounded replies.

Enough for rspamd's ``/checkv2`` (aiohttp is not a dependency): ``POST`` with a body and
``Content-Length``, ``Connection: close``, a response with ``Content-Length``, chunked
encoding or read to the end. Every size is bounded; header values are stripped of control
characters before they are sent (envelope data comes from remote clients).
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

MAX_HEAD = 64 * 1024
MAX_BODY = 8 * 1024 * 1024

_CTL = re.compile(r"[\x00-\x1f\x7f]")


class HttpError(Exception):
    pass


@dataclass(frozen=True, slots=True)
class Endpoint:
    host: str
    port: int
    base_path: str

    @classmethod
    def parse(cls, url: str) -> Endpoint:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"expected an http:// URL, not {url!r}")
        return cls(parts.hostname, parts.port or 80, parts.path.rstrip("/"))


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


def _header_value(value: str) -> str:
    return _CTL.sub(" ", value).strip()[:2000]


async def post(
    endpoint: Endpoint, path: str, body: bytes, headers: list[tuple[str, str]], *, timeout: float
) -> Response:
    """POST and read the whole response within ``timeout`` seconds; HttpError, OSError or TimeoutError."""
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection(endpoint.host, endpoint.port, limit=MAX_HEAD)
        try:
            head = [f"POST {endpoint.base_path}{path} HTTP/1.1", f"Host: {endpoint.host}:{endpoint.port}",
                    f"Content-Length: {len(body)}", "Connection: close"]
            head += [f"{name}: {_header_value(value)}" for name, value in headers]
            writer.write(("\r\n".join(head) + "\r\n\r\n").encode("utf-8", "replace"))
            writer.write(body)
            await writer.drain()
            return await _read_response(reader)
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except (OSError, ConnectionError):
                pass


async def _read_response(reader: asyncio.StreamReader) -> Response:
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError:
        raise HttpError("response head too large") from None
    except asyncio.IncompleteReadError:
        raise HttpError("connection closed before a response") from None
    lines = raw.decode("latin-1").split("\r\n")
    status_line = lines[0].split(" ", 2)
    if len(status_line) < 2 or not status_line[0].startswith("HTTP/1.") or not status_line[1].isdigit():
        raise HttpError(f"bad status line {lines[0][:80]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise HttpError("bad header line")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = await _read_chunked(reader)
    elif "content-length" in headers:
        try:
            length = int(headers["content-length"])
        except ValueError:
            raise HttpError("bad Content-Length") from None
        if not 0 <= length <= MAX_BODY:
            raise HttpError("response body too large")
        try:
            body = await reader.readexactly(length)
        except asyncio.IncompleteReadError:
            raise HttpError("response body cut short") from None
    else:
        body = await reader.read(MAX_BODY + 1)
        if len(body) > MAX_BODY:
            raise HttpError("response body too large")
    return Response(int(status_line[1]), headers, body)


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    out = bytearray()
    while True:
        line = await reader.readline()
        if not line.endswith(b"\n"):
            raise HttpError("chunked body cut short")
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise HttpError("bad chunk size") from None
        if size == 0:
            while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                pass
            return bytes(out)
        if len(out) + size > MAX_BODY:
            raise HttpError("response body too large")
        try:
            out += await reader.readexactly(size + 2)
        except asyncio.IncompleteReadError:
            raise HttpError("chunked body cut short") from None
        del out[-2:]
