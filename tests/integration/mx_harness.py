"""An in-process Merpati MX on a loopback port, driven by blocking raw sockets.

The server runs ``merpati.app.run`` on its own event loop in a background thread; several can
run at once in one process (DESIGN: no module-level state), which these tests rely on.
"""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import ssl
import threading
import time
from pathlib import Path

from merpati import app
from merpati.admin.certs import generate_self_signed
from merpati.config.schema import (
    Config,
    DnsConfig,
    LimitsConfig,
    ListenConfig,
    SmtpConfig,
    StorageConfig,
    TlsConfig,
)
from merpati.storage import open_store
from support.merpati_server import empty_dns_server


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class MxServer:
    def __init__(self, tmp: Path, *, smtp: SmtpConfig | None = None, limits: LimitsConfig | None = None) -> None:
        self.host = "127.0.0.1"
        self.port = free_port()
        cert, key = tmp / "cert.pem", tmp / "key.pem"
        generate_self_signed(cert, key, "mx.merpati.test")
        self.config = Config(
            hostname="mx.merpati.test",
            data_dir=tmp,
            listen=ListenConfig(smtp=(f"{self.host}:{self.port}",)),
            storage=StorageConfig(url=f"sqlite:///{tmp / 'merpati.db'}"),
            tls=TlsConfig(cert=str(cert), key=str(key)),
            limits=limits or LimitsConfig(),
            smtp=smtp or SmtpConfig(error_sleep=0.0),
            dns=DnsConfig(nameservers=(empty_dns_server(),), timeout=2.0),  # never the machine's resolver
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> MxServer:
        ready = threading.Event()

        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            await app.run(self.config, stop=self._stop, ready=ready.set)

        def target() -> None:
            try:
                asyncio.run(main())
            except BaseException as exc:  # surfaced by start() / stop()
                self._error = exc
                ready.set()

        self._thread = threading.Thread(target=target, daemon=True)
        self._thread.start()
        ready.wait(30)
        if self._error:
            raise self._error
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(60)

    def request_stop(self) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- directory and mailbox helpers (through their own store connection) --------------
    def run_store(self, fn):  # type: ignore[no-untyped-def]
        async def go():  # type: ignore[no-untyped-def]
            store = await open_store(self.config.storage_url)
            try:
                return await fn(store)
            finally:
                await store.close()

        return asyncio.run(go())

    def add_user(self, address: str) -> None:
        domain = address.rpartition("@")[2]

        async def go(store):  # type: ignore[no-untyped-def]
            if not await store.has_domain(domain):
                await store.add_domain(domain)
            await store.create_account(address, "x")

        self.run_store(go)

    def add_alias(self, source: str, *targets: str) -> None:
        self.run_store(lambda store: store.add_alias(source, targets))

    def messages(self, address: str) -> list[bytes]:
        async def go(store):  # type: ignore[no-untyped-def]
            account = await store.get_account(address)
            box = await store.get_mailbox(account.id, "INBOX")
            metas = await store.list_messages(box.id)
            return [await store.read_message(box.id, m.uid) for m in metas]

        return self.run_store(go)

    def with_smtp(self, **changes: object) -> SmtpConfig:
        return dataclasses.replace(self.config.smtp, **changes)  # type: ignore[arg-type]


class Client:
    """A raw SMTP client that reads whole replies (multi-line aware)."""

    def __init__(self, server: MxServer, *, timeout: float = 10.0) -> None:
        self.sock: socket.socket | ssl.SSLSocket = socket.create_connection((server.host, server.port), timeout=timeout)
        self.buf = b""
        self.banner = self.reply()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def line(self) -> bytes:
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"closed; pending {self.buf!r}")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def reply(self) -> tuple[int, str]:
        lines = []
        while True:
            line = self.line()
            lines.append(line[4:].decode("utf-8", "replace"))
            if line[3:4] != b"-":
                return int(line[:3]), "\n".join(lines)

    def cmd(self, command: str | bytes) -> tuple[int, str]:
        data = command.encode() if isinstance(command, str) else command
        self.send(data + b"\r\n")
        return self.reply()

    def closed_soon(self, wait: float = 5.0) -> bool:
        """True when the server closes the connection (reading until EOF)."""
        self.sock.settimeout(wait)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
        except (TimeoutError, socket.timeout):
            return False
        except OSError:
            return True

    def nothing_within(self, wait: float) -> bool:
        self.sock.settimeout(wait)
        try:
            chunk = self.sock.recv(65536)
        except (TimeoutError, socket.timeout, ssl.SSLError):
            return True
        finally:
            self.sock.settimeout(10.0)
        self.buf += chunk
        return False

    def starttls(self) -> None:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        self.sock = ctx.wrap_socket(self.sock, server_hostname="mx.merpati.test")
        self.buf = b""

    def send_message(self, sender: str, rcpts: list[str], body: bytes) -> tuple[int, str]:
        assert self.cmd(f"MAIL FROM:<{sender}>")[0] == 250
        for rcpt in rcpts:
            code, text = self.cmd(f"RCPT TO:<{rcpt}>")
            assert code == 250, text
        assert self.cmd("DATA")[0] == 354
        self.send(body + b"\r\n.\r\n")
        return self.reply()

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def wait_until(predicate, timeout: float = 10.0) -> bool:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return False
