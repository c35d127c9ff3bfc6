"""Queue test fixtures: async tests on a fresh loop, the two storage backends.

``backend`` is parametrised over SQLite (a file under ``tmp_path``) and PostgreSQL (one
database per test session, a fresh schema per test), as in tests/storage. ``qstore`` is an
open store's ``queue`` (``storage.queue_api.QueueStore``).
"""

from __future__ import annotations

import asyncio
import inspect
import os
import secrets
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import queue_support  # noqa: E402

queue_support.enable_pending_migrations()

from merpati.storage import open_store  # noqa: E402

PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"
PG_ADMIN_DSN = f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/test"


@dataclass
class Backend:
    name: str
    url: str
    fresh_schema: bool = False
    opened: list[Any] = field(default_factory=list)

    async def open(self, **options: Any) -> Any:
        store = await open_store(self.url, **options)
        self.opened.append(store)
        return store

    async def reset(self) -> None:
        if self.fresh_schema:
            import asyncpg

            conn = await asyncpg.connect(self.url)
            try:
                await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
            finally:
                await conn.close()


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    names = pyfuncitem._fixtureinfo.argnames
    kwargs = {n: pyfuncitem.funcargs[n] for n in names}
    timeout = getattr(pyfuncitem.module, "ASYNC_TIMEOUT", 60)

    async def run() -> None:
        backends = [v for v in kwargs.values() if isinstance(v, Backend)]
        for b in backends:
            await b.reset()
        try:
            await asyncio.wait_for(pyfuncitem.obj(**kwargs), timeout=timeout)
        finally:
            for b in backends:
                while b.opened:
                    await b.opened.pop().close()

    asyncio.run(run())
    return True


def _create_pg_database() -> tuple[str | None, str]:
    import asyncpg

    name = f"merpati_qtest_{secrets.token_hex(6)}"

    async def create() -> None:
        conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    try:
        asyncio.run(create())
    except (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        return None, f"PostgreSQL at {PG_HOST}:{PG_PORT} unreachable: {exc!r}"
    return name, ""


@pytest.fixture(scope="session")
def pg_database() -> Any:
    name, reason = _create_pg_database()
    yield name, reason
    if name is not None:
        import asyncpg

        async def drop() -> None:
            conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
            try:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            finally:
                await conn.close()

        asyncio.run(drop())


def pg_url(pg_database: Any) -> str:
    name, reason = pg_database
    if name is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason} (CI=true: PostgreSQL tests must run)")
        pytest.skip(reason)
    return f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path, pg_database: Any) -> Backend:
    if request.param == "sqlite":
        return Backend("sqlite", f"sqlite:///{tmp_path}/data/merpati.db")
    return Backend("postgres", pg_url(pg_database), fresh_schema=True)


@pytest.fixture
def sqlite_backend(tmp_path: Path) -> Backend:
    return Backend("sqlite", f"sqlite:///{tmp_path}/data/merpati.db")
