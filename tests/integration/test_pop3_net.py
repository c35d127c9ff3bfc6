"""The POP3 connection driver in-process over real loopback sockets, with settings a subprocess
server cannot be given quickly: TLS required on loopback (POP-02), short idle and login
timeouts (POP-07), per-IP caps, graceful shutdown, a client that stops reading.

Each test builds its own store, service and listener (net.Listener + net.pop3.Pop3Factory),
exactly as ``assembly.pop3`` wires them, on this worker's loopback address.
"""

from __future__ import annotations

import asyncio
import base64
import socket
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from support.merpati_server import write_self_signed
from support.net import free_port, worker_address

from merpati.config.schema import TlsConfig
from merpati.core.passwords import hash_password
from merpati.mime import parse_message
from merpati.net.listeners import Listener
from merpati.net.pop3 import Pop3Factory, Pop3Timeouts
from merpati.net.tls import server_context
from merpati.services.auth import Authenticator, AuthSettings
from merpati.services.pop3 import Pop3Service
from merpati.storage import open_store
from merpati.storage.api import MailStore
from merpati.storage.models import INBOX, Delivery

USER = "ann@a.test"
PASSWORD = "pw-ann"
HOST = worker_address(2)


@dataclass
class Server:
    host: str
    port: int
    store: MailStore
    account_id: int
    listener: Listener
    service: Pop3Service

    async def deliver(self, *datas: bytes) -> None:
        now = datetime.now(timezone.utc)
        await self.store.deliver([Delivery(self.account_id, d, parse_message(d), now) for d in datas])

    async def count(self) -> int:
        mb = await self.store.get_mailbox(self.account_id, INBOX)
        assert mb is not None
        return len(await self.store.list_messages(mb.id))


@asynccontextmanager
async def pop3_server(
    tmp: Path, *, loopback_is_secure: bool = True, idle: float = 600.0, prelogin: float = 180.0,
    max_per_ip: int = 50, implicit_tls: bool = False,
) -> AsyncIterator[Server]:
    write_self_signed(tmp / "cert.pem", tmp / "key.pem", "pop.test")
    tls = server_context(TlsConfig(cert=str(tmp / "cert.pem"), key=str(tmp / "key.pem")))
    store = await open_store(f"sqlite:///{tmp / 'm.db'}")
    await store.add_domain("a.test")
    account = await store.create_account(USER, hash_password(PASSWORD))
    auth = Authenticator(store, AuthSettings(loopback_is_secure=loopback_is_secure, failure_delay=0))
    service = Pop3Service(store, auth)
    factory = Pop3Factory(
        service, auth, tls_context=tls, implicit_tls=implicit_tls,
        timeouts=Pop3Timeouts(prelogin=prelogin, idle=idle),
    )
    port = free_port(HOST)
    listener = Listener(
        "pop3", (f"{HOST}:{port}",), factory, refuse=factory.refuse, max_connections=100, max_per_ip=max_per_ip,
        ssl_context=tls if implicit_tls else None,
    )
    await listener.start()
    try:
        yield Server(HOST, port, store, account.id, listener, service)
    finally:
        await listener.stop(grace=5)
        await store.close()


def client_tls() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class Client:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, srv: Server, **kw: object) -> Client:
        reader, writer = await asyncio.open_connection(srv.host, srv.port, **kw)  # type: ignore[arg-type]
        return cls(reader, writer)

    async def line(self, timeout: float = 10) -> bytes:
        return await asyncio.wait_for(self.reader.readline(), timeout)

    async def cmd(self, text: bytes) -> bytes:
        self.writer.write(text + b"\r\n")
        await self.writer.drain()
        return await self.line()

    async def multiline(self) -> list[bytes]:
        out = []
        while (line := await self.line()) != b".\r\n":
            out.append(line)
        return out

    async def closed(self, timeout: float = 10) -> bool:
        data = await asyncio.wait_for(self.reader.read(), timeout)
        return data == b"" or data.endswith(b"\r\n")

    def close(self) -> None:
        self.writer.close()


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def test_plaintext_login_refused_before_stls_when_loopback_is_not_secure(tmp_path: Path) -> None:
    """POP-02 / AUTH-06: USER, PASS and AUTH get -ERR and are not advertised; after STLS they work."""

    async def go() -> None:
        async with pop3_server(tmp_path, loopback_is_secure=False) as srv:
            c = await Client.connect(srv)
            assert (await c.line()).startswith(b"+OK")
            c.writer.write(b"CAPA\r\n")
            caps = [await c.line()] + await c.multiline()
            assert b"STLS\r\n" in caps and b"USER\r\n" not in caps and not any(x.startswith(b"SASL") for x in caps)
            refused = b"-ERR [AUTH] Plaintext authentication disallowed on non-secure (SSL/TLS) connections.\r\n"
            assert await c.cmd(b"USER " + USER.encode()) == refused
            plain = base64.b64encode(b"\0" + USER.encode() + b"\0" + PASSWORD.encode())
            assert await c.cmd(b"AUTH PLAIN " + plain) == refused
            assert await c.cmd(b"STLS") == b"+OK Begin TLS negotiation now.\r\n"
            await c.writer.start_tls(client_tls())
            c.writer.write(b"CAPA\r\n")
            caps = [await c.line()] + await c.multiline()
            assert b"USER\r\n" in caps and b"STLS\r\n" not in caps
            assert (await c.cmd(b"AUTH PLAIN " + plain)).startswith(b"+OK")
            assert await c.cmd(b"QUIT") == b"+OK Logging out, 0 messages deleted, 0 left.\r\n"
            c.close()

    run(go())


def test_implicit_tls_listener_allows_login(tmp_path: Path) -> None:
    async def go() -> None:
        async with pop3_server(tmp_path, loopback_is_secure=False, implicit_tls=True) as srv:
            c = await Client.connect(srv, ssl=client_tls())
            assert (await c.line()).startswith(b"+OK")
            c.writer.write(b"CAPA\r\n")
            caps = [await c.line()] + await c.multiline()
            assert b"USER\r\n" in caps and b"STLS\r\n" not in caps
            assert await c.cmd(b"USER " + USER.encode()) == b"+OK\r\n"
            assert (await c.cmd(b"PASS " + PASSWORD.encode())).startswith(b"+OK")
            c.close()

    run(go())


def test_prelogin_and_idle_timeouts(tmp_path: Path) -> None:
    """POP-07: an idle connection is closed, before login and after; nothing marked is removed."""

    async def go() -> None:
        async with pop3_server(tmp_path, prelogin=0.5, idle=1.0) as srv:
            await srv.deliver(b"Subject: a\r\n\r\nx\r\n")
            c = await Client.connect(srv)
            await c.line()
            assert await c.line() == b"-ERR Disconnected for inactivity.\r\n"
            assert await c.closed()
            c = await Client.connect(srv)
            await c.line()
            await c.cmd(b"USER " + USER.encode())
            assert (await c.cmd(b"PASS " + PASSWORD.encode())).startswith(b"+OK")
            assert await c.cmd(b"DELE 1") == b"+OK Message 1 deleted.\r\n"
            assert await c.line() == b"-ERR Disconnected for inactivity.\r\n"
            assert await c.closed()
            assert await srv.count() == 1
            c = await Client.connect(srv)  # and the lock went with the connection
            await c.line()
            await c.cmd(b"USER " + USER.encode())
            assert (await c.cmd(b"PASS " + PASSWORD.encode())).startswith(b"+OK")
            c.close()

    run(go())


def test_trickling_bytes_does_not_extend_the_deadline(tmp_path: Path) -> None:
    async def go() -> None:
        async with pop3_server(tmp_path, prelogin=1.0) as srv:
            c = await Client.connect(srv)
            await c.line()
            for ch in b"CAPA":  # one byte every 0.4 s: never a complete command
                c.writer.write(bytes([ch]))
                await c.writer.drain()
                await asyncio.sleep(0.4)
            assert await c.line() == b"-ERR Disconnected for inactivity.\r\n"

    run(go())


def test_per_ip_connection_cap(tmp_path: Path) -> None:
    async def go() -> None:
        async with pop3_server(tmp_path, max_per_ip=2) as srv:
            a, b = await Client.connect(srv), await Client.connect(srv)
            assert (await a.line()).startswith(b"+OK") and (await b.line()).startswith(b"+OK")
            c = await Client.connect(srv)
            assert await c.line() == b"-ERR [SYS/TEMP] Too many connections from your address\r\n"
            assert await c.closed()
            a.close()
            await a.writer.wait_closed()
            for _ in range(100):  # the slot frees once the server saw the close
                d = await Client.connect(srv)
                if (await d.line()).startswith(b"+OK"):
                    break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError("the connection slot was never freed")
            b.close()
            d.close()

    run(go())


def test_graceful_shutdown_answers_idle_sessions_and_removes_nothing(tmp_path: Path) -> None:
    async def go() -> None:
        async with pop3_server(tmp_path) as srv:
            await srv.deliver(b"Subject: a\r\n\r\nx\r\n", b"Subject: b\r\n\r\ny\r\n")
            c = await Client.connect(srv)
            await c.line()
            await c.cmd(b"USER " + USER.encode())
            await c.cmd(b"PASS " + PASSWORD.encode())
            assert await c.cmd(b"DELE 1") == b"+OK Message 1 deleted.\r\n"
            await srv.listener.stop(grace=5)
            assert await c.line() == b"-ERR [SYS/TEMP] Server shutting down.\r\n"
            assert await c.closed()
            assert await srv.count() == 2

    run(go())


def test_client_that_stops_reading_is_dropped_and_the_lock_freed(tmp_path: Path) -> None:
    async def go() -> None:
        async with pop3_server(tmp_path, idle=1.0) as srv:
            big = b"Subject: big\r\n\r\n" + (b"x" * 998 + b"\r\n") * 8000  # 8 MB
            await srv.deliver(big)
            reader, writer = await asyncio.open_connection(srv.host, srv.port, limit=1024)
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            c = Client(reader, writer)
            await c.line()
            await c.cmd(b"USER " + USER.encode())
            await c.cmd(b"PASS " + PASSWORD.encode())
            writer.transport.pause_reading()  # type: ignore[attr-defined]
            writer.write(b"RETR 1\r\n")
            for _ in range(200):  # the server gives up writing within its idle timeout
                await asyncio.sleep(0.1)
                probe = await Client.connect(srv)
                await probe.line()
                await probe.cmd(b"USER " + USER.encode())
                answer = await probe.cmd(b"PASS " + PASSWORD.encode())
                probe.close()
                if answer.startswith(b"+OK"):
                    break
            else:
                raise AssertionError("the stalled session kept its lock")
            writer.close()

    run(go())


def test_assembly_refuses_pop3s_without_a_certificate(tmp_path: Path) -> None:
    import dataclasses
    from types import SimpleNamespace

    import pytest

    from merpati.assembly import pop3 as pop3_part
    from merpati.config import Config, ConfigError
    from merpati.config.schema import ListenConfig

    async def go() -> None:
        config = Config(listen=dataclasses.replace(ListenConfig(), smtp=(), pop3s=(f"{HOST}:{free_port(HOST)}",)))
        ctx = SimpleNamespace(config=config, tls=None, store=None, authenticator=None)
        with pytest.raises(ConfigError, match="listen.pop3s"):
            await pop3_part.start(ctx)  # type: ignore[arg-type]
        assert await pop3_part.start(SimpleNamespace(config=Config(), tls=None)) == []  # type: ignore[arg-type]
        assert pop3_part.LISTENERS == ("pop3", "pop3s")

    run(go())
