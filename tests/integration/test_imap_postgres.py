"""Two `merpati serve` processes on one PostgreSQL database: an IMAP session IDLE on node B
sees mail delivered over SMTP to node A, and flag changes and expunges made through node A's
IMAP (LISTEN/NOTIFY between the nodes); \\Recent is given to one session across both nodes (the
store's watermark). No timing assertions: we only wait for the updates."""

from __future__ import annotations

import asyncio
import secrets
import smtplib
import socket
import time

import pytest

from support.merpati_server import DEFAULT_DOMAIN, PASSWORD, MerpatiServer
from support.net import worker_address

pytestmark = pytest.mark.postgres

PG_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/test"


def _pg(sql: str) -> None:
    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=10)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run())


@pytest.fixture
def pg_url():
    name = "merpati_imap_" + secrets.token_hex(6)
    _pg(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        _pg(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def node(tmp_path, name: str, host: str, url: str) -> MerpatiServer:
    server = MerpatiServer(tmp_path / name, host=host, listeners=("imap",))
    text = server.config_path.read_text()
    old = f'url = "sqlite:///{server.db_path}"'
    assert old in text
    server.config_path.write_text(text.replace(old, f'url = "{url}"'))
    return server


class Imap:
    def __init__(self, server: MerpatiServer, user: str) -> None:
        # start() waits for the SMTP banner; the IMAP listener comes up just after it
        deadline = time.monotonic() + 30
        while True:
            try:
                self.sock = socket.create_connection((server.host, server.ports["imap"]), timeout=30)
                break
            except ConnectionRefusedError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        self.f = self.sock.makefile("rb")
        assert self.f.readline().startswith(b"* OK")
        self.cmd(b'a LOGIN "%s" "%s"' % (user.encode(), PASSWORD.encode()))

    def cmd(self, line: bytes) -> list[bytes]:
        tag = line.split(b" ", 1)[0]
        self.sock.sendall(line + b"\r\n")
        out = []
        while True:
            ln = self.f.readline()
            assert ln, out
            out.append(ln)
            if ln.startswith(tag + b" "):
                assert ln.startswith(tag + b" OK"), out
                return out

    def wait_for(self, needle: bytes) -> bytes:
        while True:
            ln = self.f.readline()
            assert ln, "connection closed"
            if needle in ln:
                return ln


@pytest.fixture
def nodes(tmp_path, pg_url):
    """Two started `merpati serve` nodes on one PostgreSQL database, and a user of the first."""
    a = node(tmp_path, "a", worker_address(2), pg_url)
    b = node(tmp_path, "b", worker_address(3), pg_url)
    a.add_domain(DEFAULT_DOMAIN)
    user = a.new_user("pg")
    a.start()
    b.start()
    try:
        yield a, b, user
    finally:
        a.stop()
        b.stop()


def test_idle_on_one_node_sees_changes_made_on_the_other(nodes) -> None:
    a, b, user = nodes
    watcher = Imap(b, user)
    watcher.cmd(b"s SELECT INBOX")
    watcher.sock.sendall(b"i IDLE\r\n")
    assert watcher.f.readline().startswith(b"+ ")
    with smtplib.SMTP(a.host, a.port, timeout=30) as s:
        s.sendmail("ann@x.test", [user], b"From: ann@x.test\r\nSubject: cross-node\r\n\r\nhello\r\n")
    assert watcher.wait_for(b"EXISTS") == b"* 1 EXISTS\r\n"
    actor = Imap(a, user)
    actor.cmd(b"s SELECT INBOX")
    actor.cmd(b"f STORE 1 +FLAGS (\\Flagged)")
    assert b"\\Flagged" in watcher.wait_for(b"FETCH")
    actor.cmd(b"g STORE 1 +FLAGS (\\Deleted)")
    actor.cmd(b"h EXPUNGE")
    assert watcher.wait_for(b"EXPUNGE") == b"* 1 EXPUNGE\r\n"
    watcher.sock.sendall(b"DONE\r\n")
    assert watcher.wait_for(b"i OK").startswith(b"i OK")


def test_recent_is_given_to_one_session_across_nodes(nodes) -> None:
    a, b, user = nodes
    with smtplib.SMTP(a.host, a.port, timeout=30) as s:
        s.sendmail("ann@x.test", [user], b"From: ann@x.test\r\nSubject: one\r\n\r\nhello\r\n")
    first = Imap(a, user)
    out = first.cmd(b"s SELECT INBOX")
    assert b"* 1 EXISTS\r\n" in out and b"* 1 RECENT\r\n" in out
    second = Imap(b, user)
    out = second.cmd(b"s SELECT INBOX")
    assert b"* 1 EXISTS\r\n" in out and b"* 0 RECENT\r\n" in out
    assert b'* STATUS "INBOX" (RECENT 0)\r\n' in Imap(b, user).cmd(b"t STATUS INBOX (RECENT)")
    first.sock.close()
    second.sock.close()
    with smtplib.SMTP(b.host, b.port, timeout=30) as s:  # nobody has INBOX selected now
        s.sendmail("ann@x.test", [user], b"From: ann@x.test\r\nSubject: two\r\n\r\nhello\r\n")
    out = Imap(a, user).cmd(b"e EXAMINE INBOX")
    assert b"* 2 EXISTS\r\n" in out and b"* 1 RECENT\r\n" in out  # seen, not claimed
    out = Imap(b, user).cmd(b"s SELECT INBOX")
    assert b"* 2 EXISTS\r\n" in out and b"* 1 RECENT\r\n" in out
    out = Imap(a, user).cmd(b"s SELECT INBOX")
    assert b"* 2 EXISTS\r\n" in out and b"* 0 RECENT\r\n" in out
