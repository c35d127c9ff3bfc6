"""A SQLite store with one account, a POP3 service over it, and helpers to drive sessions."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from merpati.core.passwords import hash_password
from merpati.mime import parse_message
from merpati.services.auth import Authenticator, AuthSettings
from merpati.services.pop3 import Pop3Service, Pop3Session, Pop3Settings
from merpati.storage import open_store
from merpati.storage.api import MailStore
from merpati.storage.models import INBOX, Delivery
from merpati.wire.pop3 import Login, Ok

PASSWORD = "right password"
ADDRESS = "ann@a.test"


def message(n: int, body: bytes = b"hello\r\n") -> bytes:
    return b"From: b@b.test\r\nTo: ann@a.test\r\nSubject: message %d\r\n\r\n" % n + body


@dataclass
class Env:
    store: MailStore
    account_id: int
    service: Pop3Service
    auth: Authenticator
    sleeps: list[float]
    clock: list[float] = field(default_factory=lambda: [1000.0])

    async def deliver(self, *datas: bytes, account_id: int | None = None) -> list[int]:
        now = datetime.now(timezone.utc)
        metas = await self.store.deliver([
            Delivery(account_id=account_id or self.account_id, data=d, parsed=parse_message(d), internaldate=now)
            for d in datas
        ])
        return [m.uid for m in metas]

    async def inbox(self) -> Any:
        return await self.store.get_mailbox(self.account_id, INBOX)

    async def uids(self) -> list[int]:
        mb = await self.inbox()
        return [m.uid for m in await self.store.list_messages(mb.id)]

    async def login(self, session: Pop3Session | None = None, password: str = PASSWORD) -> Pop3Session:
        session = session or self.service.session(remote_ip="192.0.2.1")
        response = await session.handle(Login(ADDRESS, password, "USER"))
        assert isinstance(response, Ok), response
        return session


async def make_env(
    tmp: Path, settings: Pop3Settings | None = None, *, wrap: Callable[[MailStore], Any] | None = None
) -> Env:
    store = await open_store(f"sqlite:///{tmp / 'm.db'}")
    await store.add_domain("a.test")
    account = await store.create_account(ADDRESS, hash_password(PASSWORD))
    sleeps: list[float] = []
    clock = [1000.0]

    async def sleep(d: float) -> None:
        sleeps.append(d)

    auth = Authenticator(store, AuthSettings(failure_delay=0.5), sleep=sleep, clock=lambda: clock[0])
    used = wrap(store) if wrap else store
    service = Pop3Service(used, auth, settings, clock=lambda: clock[0])
    return Env(store, account.id, service, auth, sleeps, clock)


class CountingStore:
    """Delegates to a store, counting calls per method and optionally failing some."""

    def __init__(self, inner: MailStore, fail: dict[str, BaseException] | None = None) -> None:
        self._inner = inner
        self.calls: dict[str, int] = {}
        self.fail = fail or {}

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not callable(attr):
            return attr

        async def call(*args: Any, **kw: Any) -> Any:
            self.calls[name] = self.calls.get(name, 0) + 1
            if name in self.fail:
                raise self.fail[name]
            return await attr(*args, **kw)

        return call
