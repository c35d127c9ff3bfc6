"""Helpers for the queue tests: a fake clock, a scriptable loopback SMTP server, messages.

``SinkServer`` is a tiny asyncio SMTP server on a loopback address: it answers like a real MX
(EHLO with PIPELINING, 8BITMIME, SMTPUTF8, DSN, SIZE, optionally STARTTLS), records every
accepted message, and can be told to misbehave (per-recipient replies, silence, garbage,
response injection after STARTTLS).
"""

from __future__ import annotations

import asyncio
import re
import ssl
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path


def enable_pending_migrations() -> None:
    """Until the queue migration can take its number (0005 needs 0003 and 0004 in the tree),
    it ships as ``NNNN_queue.sql.pending``: append such files as the next versions. A no-op
    once the real ``0005_queue.sql`` is in place."""
    from merpati.storage import migrations
    from merpati.storage.postgres import store as pg_store
    from merpati.storage.sqlite import workers

    if getattr(migrations.load_migrations, "_with_pending", False):
        return
    original = migrations.load_migrations

    def load(backend: str) -> list[migrations.Migration]:
        found = original(backend)
        folder = resources.files(f"merpati.storage.{backend}").joinpath("migrations")
        pending = sorted(e.name for e in folder.iterdir() if e.name.endswith(".sql.pending"))
        for name in pending:
            text = folder.joinpath(name).read_text(encoding="utf-8")
            found.append(migrations.Migration(len(found) + 1, name, text))
        return found

    load._with_pending = True  # type: ignore[attr-defined]
    migrations.load_migrations = load
    workers.load_migrations = load
    pg_store.load_migrations = load


class FakeClock:
    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def message(subject: str = "hello", sender: str = "alice@a.test", to: str = "bob@b.test", body: str = "Hi.\r\n") -> bytes:
    return (
        f"From: <{sender}>\r\nTo: <{to}>\r\nSubject: {subject}\r\nMessage-ID: <{subject}@a.test>\r\n"
        f"Date: Thu, 01 Jan 2026 00:00:00 +0000\r\n\r\n{body}"
    ).encode()


@dataclass
class Received:
    sender: str
    recipients: list[str]
    data: bytes
    mail_params: str
    rcpt_params: list[str]
    tls: bool
    peer: str


@dataclass
class SinkBehaviour:
    """What the sink answers. Functions get the argument and return a reply line (no CRLF)."""

    greeting: str | None = "220 sink.test ESMTP"
    starttls: bool = False
    inject_after_starttls: bytes = b""  # SMTP-14: sent right behind "220 Ready"
    extensions: tuple[str, ...] = ("PIPELINING", "8BITMIME", "SMTPUTF8", "DSN", "SIZE 10000000", "ENHANCEDSTATUSCODES")
    rcpt: Callable[[str], str] = lambda address: "250 2.1.5 Ok"
    data_end: Callable[[bytes], str] = lambda data: "250 2.0.0 Ok: queued"
    silent_after: str | None = None  # "greeting" / "EHLO" / "DATA-END": stop answering from there on
    garbage_on: str | None = None  # the command whose reply is garbage
    hold_data_end: asyncio.Event | None = None  # wait for this event before answering the end of data
    # async (peer ip, body) -> reply line, or None to drop the connection without a reply
    on_data_end: Callable[[str, bytes], Awaitable[str | None]] | None = None


class SinkServer:
    def __init__(self, host: str, port: int = 0, behaviour: SinkBehaviour | None = None,
                 cert: tuple[str, str] | None = None) -> None:
        self.host = host
        self.port = port
        self.behaviour = behaviour or SinkBehaviour()
        self.received: list[Received] = []
        self.connections = 0
        self.commands: list[str] = []
        self._server: asyncio.base_events.Server | None = None
        self._tls: ssl.SSLContext | None = None
        if cert is not None:
            self._tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self._tls.load_cert_chain(*cert)
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> SinkServer:
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for w in list(self._writers):
                w.transport.abort()
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> SinkServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        try:
            await self._session(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError, asyncio.CancelledError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        b = self.behaviour
        peer = writer.get_extra_info("peername")[0]
        if b.greeting is None or b.silent_after == "connect":
            await asyncio.sleep(3600)
            return
        await self._send(writer, b.greeting)
        tls = False
        sender, rcpts, mail_params, rcpt_params = "", [], "", []
        while True:
            line = await reader.readline()
            if not line:
                return
            text = line.decode("utf-8", "replace").rstrip("\r\n")
            self.commands.append(text)
            verb = text.split(" ", 1)[0].upper()
            if b.silent_after == verb:
                await asyncio.sleep(3600)
                return
            if b.garbage_on == verb:
                writer.write(b"garbage \x00\xff not smtp\r\n")
                await writer.drain()
                continue
            if verb in ("EHLO", "HELO"):
                exts = list(b.extensions) + (["STARTTLS"] if b.starttls and not tls and self._tls else [])
                lines = ["sink.test"] + exts
                out = "".join(f"250{'-' if i < len(lines) - 1 else ' '}{x}\r\n" for i, x in enumerate(lines))
                writer.write(out.encode())
                await writer.drain()
            elif verb == "STARTTLS" and self._tls is not None:
                writer.write(b"220 2.0.0 Ready\r\n" + b.inject_after_starttls)
                await writer.drain()
                await writer.start_tls(self._tls)
                tls = True
            elif verb == "MAIL":
                m = re.match(r"MAIL FROM:<([^>]*)>(.*)", text, re.I)
                sender, rcpts, rcpt_params = (m.group(1) if m else ""), [], []
                mail_params = m.group(2).strip() if m else ""
                await self._send(writer, "250 2.1.0 Ok")
            elif verb == "RCPT":
                m = re.match(r"RCPT TO:<([^>]*)>(.*)", text, re.I)
                address = m.group(1) if m else ""
                reply = b.rcpt(address)
                if reply.startswith("2"):
                    rcpts.append(address)
                    rcpt_params.append(m.group(2).strip() if m else "")
                await self._send(writer, reply)
            elif verb == "DATA":
                if not rcpts:
                    await self._send(writer, "554 5.5.1 Error: no valid recipients")
                    continue
                await self._send(writer, "354 End data with <CR><LF>.<CR><LF>")
                body = bytearray()
                while True:
                    chunk = await reader.readline()
                    if not chunk:
                        return
                    if chunk == b".\r\n":
                        break
                    body += chunk[1:] if chunk.startswith(b"..") else chunk
                if b.silent_after == "DATA-END":
                    await asyncio.sleep(3600)
                    return
                if b.hold_data_end is not None:
                    await b.hold_data_end.wait()
                if b.on_data_end is not None:
                    answer = await b.on_data_end(peer, bytes(body))
                    if answer is None:
                        writer.transport.abort()
                        return
                    reply = answer
                else:
                    reply = b.data_end(bytes(body))
                if reply.startswith("2"):
                    self.received.append(Received(sender, list(rcpts), bytes(body), mail_params, rcpt_params, tls, peer))
                await self._send(writer, reply)
            elif verb == "RSET":
                sender, rcpts = "", []
                await self._send(writer, "250 2.0.0 Ok")
            elif verb == "QUIT":
                await self._send(writer, "221 2.0.0 Bye")
                return
            elif verb == "NOOP":
                await self._send(writer, "250 2.0.0 Ok")
            else:
                await self._send(writer, "502 5.5.2 Error: command not recognized")

    @staticmethod
    async def _send(writer: asyncio.StreamWriter, line: str) -> None:
        writer.write(line.encode() + b"\r\n")
        await writer.drain()


def self_signed_pair(hostname: str = "sink.test") -> tuple[str, str]:
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    folder = Path(tempfile.mkdtemp(prefix="sink-tls-"))
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=10)).sign(key, hashes.SHA256())
    )
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ))
    return str(folder / "cert.pem"), str(folder / "key.pem")


@dataclass
class StaticDialer:
    """Connects every address to one (host, port): a sink standing in for any MX."""

    host: str
    port: int
    attempts: list[str] = field(default_factory=list)

    async def connect(self, address: str, port: int, *, timeout: float):  # noqa: ANN201
        from merpati.queue.dialer import TcpDialer

        self.attempts.append(f"{address}:{port}")
        return await TcpDialer().connect(self.host, self.port, timeout=timeout)
