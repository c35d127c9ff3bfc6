"""In-process IMAP sessions over a real SQLite store, driven with typed commands (no engine,
no sockets): what the services layer does, checked byte for byte."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from merpati.core.passwords import hash_password
from merpati.mime import parse_message
from merpati.services.auth import Authenticator, AuthSettings
from merpati.services.imap.session import ImapContext, ImapSession, ImapSettings
from merpati.storage import Delivery, open_store
from merpati.wire.imap import commands as c
from merpati.wire.imap.seqset import SequenceSet

PASSWORD = "secret-pw"
_HASH: list[str] = []


def password_hash() -> str:
    if not _HASH:
        _HASH.append(hash_password(PASSWORD))
    return _HASH[0]


def message(subject: str = "hello", body: str = "body text\r\n", *, frm: str = "Ann <ann@x.test>",
            to: str = "bob@a.test", extra: str = "") -> bytes:
    return (f"From: {frm}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: Mon, 7 Feb 1994 21:52:25 -0800\r\n"
            f"Message-ID: <{subject.replace(' ', '.')}@x.test>\r\n{extra}\r\n{body}").encode()


@dataclass
class Env:
    store: Any
    ctx: ImapContext
    accounts: dict[str, Any] = field(default_factory=dict)
    tags: Any = field(default_factory=lambda: itertools.count(1))

    async def user(self, local: str = "bob") -> str:
        address = f"{local}@a.test"
        self.accounts[address] = await self.store.create_account(address, password_hash())
        return address

    def session(self, *, tls: bool = False, ip: str = "127.0.0.1") -> ImapSession:
        return ImapSession(self.ctx, remote_ip=ip, tls=tls)

    async def run(self, s: ImapSession, cmd: Any, tag: str | None = None) -> bytes:
        tag = tag or f"t{next(self.tags)}"
        out = await s.execute(tag, cmd)
        return out.data

    async def login(self, address: str, **kw: Any) -> ImapSession:
        s = self.session(**kw)
        data = await self.run(s, c.Login(address, PASSWORD))
        assert b"OK" in data.splitlines()[-1], data
        return s

    async def deliver(self, address: str, raw: bytes, *, mailbox: str = "INBOX", flags: frozenset[str] = frozenset()) -> Any:
        account = self.accounts[address]
        [meta] = await self.store.deliver([Delivery(
            account_id=account.id, data=raw, parsed=parse_message(raw),
            internaldate=datetime(2024, 5, 6, 7, 8, 9, tzinfo=timezone.utc), mailbox=mailbox, flags=flags)])
        return meta


async def make_env(tmp_path: Path, **settings: Any) -> Env:
    store = await open_store(f"sqlite:///{tmp_path / 'm.db'}")
    await store.add_domain("a.test")
    auth = Authenticator(store, AuthSettings(failure_delay=0.0))
    ctx = ImapContext(store=store, authenticator=auth, settings=ImapSettings(**settings))
    return Env(store, ctx)


def seq(text: str) -> SequenceSet:
    return SequenceSet.parse(text)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def lines(data: bytes) -> list[bytes]:
    return data.split(b"\r\n")[:-1]
