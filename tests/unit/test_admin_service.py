"""AdminService against a real SQLite store: domains, users, aliases, mailboxes, errors."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from merpati.admin.errors import ConflictError, InvalidInput, NotFoundError
from merpati.admin.passwords import verify_password
from merpati.admin.service import AdminService, normalize_address, normalize_domain
from merpati.mime import parse_message
from merpati.storage import open_store
from merpati.storage.models import Delivery


def run(tmp_path: Path, body: Callable[[AdminService], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        store = await open_store(f"sqlite:///{tmp_path / 'm.db'}")
        try:
            return await body(AdminService(store, hostname="test.host"))
        finally:
            await store.close()

    return asyncio.run(main())


def test_normalize() -> None:
    assert normalize_domain("Example.TEST.") == "example.test"
    assert normalize_address("John.Doe@Example.TEST") == "John.Doe@example.test"
    for bad in ("", "no-at-sign", "a@", "@b.test", "a b@c.test", "a@[127.0.0.1]", "a@b..test"):
        with pytest.raises(InvalidInput):
            normalize_address(bad)
    for bad in ("", "[127.0.0.1]", "a@b", "bad domain", "-x.test"):
        with pytest.raises(InvalidInput):
            normalize_domain(bad)


def test_domains(tmp_path: Path) -> None:
    async def body(admin: AdminService) -> None:
        assert await admin.add_domain("B.test") == "b.test"
        await admin.add_domain("a.test")
        assert await admin.list_domains() == ["a.test", "b.test"]
        with pytest.raises(ConflictError, match="already exists"):
            await admin.add_domain("A.TEST")
        await admin.remove_domain("b.test")
        with pytest.raises(NotFoundError, match="unknown domain: b.test"):
            await admin.remove_domain("b.test")
        assert await admin.list_domains() == ["a.test"]

    run(tmp_path, body)


def test_users(tmp_path: Path) -> None:
    async def body(admin: AdminService) -> None:
        with pytest.raises(NotFoundError, match="unknown domain: example.test"):
            await admin.add_user("joe@example.test", "pw")
        await admin.add_domain("example.test")
        account = await admin.add_user("Joe@Example.Test", "pw1")
        assert account.address == "Joe@example.test"
        assert verify_password(account.password_hash, "pw1")
        with pytest.raises(ConflictError, match="already exists"):
            await admin.add_user("joe@example.test", "pw")
        with pytest.raises(InvalidInput):
            await admin.add_user("not an address", "pw")
        with pytest.raises(InvalidInput, match="empty password"):
            await admin.add_user("ann@example.test", "")
        await admin.set_password("joe@example.test", "pw2")
        assert verify_password((await admin.get_user("JOE@example.test")).password_hash, "pw2")
        with pytest.raises(NotFoundError, match="unknown user"):
            await admin.set_password("nobody@example.test", "pw")
        await admin.add_user("ann@example.test", "pw")
        assert [a.address for a in await admin.list_users()] == ["ann@example.test", "Joe@example.test"]
        assert [a.address for a in await admin.list_users("EXAMPLE.test")] == ["ann@example.test", "Joe@example.test"]
        with pytest.raises(NotFoundError):
            await admin.list_users("other.test")
        rows = await admin.list_mailboxes("ann@example.test")
        assert {r.name for r in rows} >= {"INBOX", "Sent", "Drafts", "Trash", "Junk", "Archive"}
        assert all(r.messages == r.unseen == r.size == 0 for r in rows)
        await admin.remove_user("ann@example.test")
        with pytest.raises(NotFoundError):
            await admin.remove_user("ann@example.test")
        with pytest.raises(NotFoundError):
            await admin.list_mailboxes("ann@example.test")

    run(tmp_path, body)


def test_aliases(tmp_path: Path) -> None:
    async def body(admin: AdminService) -> None:
        with pytest.raises(NotFoundError, match="unknown domain"):
            await admin.add_alias("info@example.test", ["x@remote.test"])
        await admin.add_domain("example.test")
        alias = await admin.add_alias("Info@EXAMPLE.test", ["a@example.test", "b@Remote.Test"])
        assert alias.source.lower() == "info@example.test"
        assert set(alias.targets) == {"a@example.test", "b@remote.test"}
        await admin.add_alias("@example.test", ["catch@example.test"])
        with pytest.raises(InvalidInput):
            await admin.add_alias("info@example.test", ["bad target"])
        with pytest.raises(InvalidInput):
            await admin.add_alias("info@example.test", [])
        assert [a.source for a in await admin.list_aliases("example.test")] == ["@example.test", "Info@example.test"]
        with pytest.raises(NotFoundError, match="has no target"):
            await admin.remove_alias("info@example.test", ["zz@example.test"])
        await admin.remove_alias("info@example.test", ["a@example.test"])
        remaining = {a.source.lower(): a.targets for a in await admin.list_aliases()}
        assert remaining["info@example.test"] == ("b@remote.test",)
        await admin.remove_alias("info@example.test")
        with pytest.raises(NotFoundError, match="unknown alias"):
            await admin.remove_alias("info@example.test")

    run(tmp_path, body)


def test_mailbox_counts(tmp_path: Path) -> None:
    async def body(admin: AdminService) -> None:
        await admin.add_domain("example.test")
        account = await admin.add_user("joe@example.test", "pw")
        data = b"Subject: hi\r\n\r\nhello\r\n"
        when = datetime(2024, 1, 1, tzinfo=timezone.utc)
        await admin.store.deliver(
            [
                Delivery(account.id, data, parse_message(data), when),
                Delivery(account.id, data, parse_message(data), when, flags=frozenset({"\\Seen"})),
            ]
        )
        rows = {r.name: r for r in await admin.list_mailboxes("joe@example.test")}
        assert (rows["INBOX"].messages, rows["INBOX"].unseen, rows["INBOX"].size) == (2, 1, 2 * len(data))

    run(tmp_path, body)
