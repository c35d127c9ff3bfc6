"""Storage test fixtures: async tests without plugins, and the two backends.

* ``async def`` tests run on a fresh event loop each (``pytest_pyfunc_call`` below); a
  fixture value that is a ``LazyStore`` is opened on that loop before the test and closed
  after it, so tests just take ``store``.
* ``backend`` is parametrised over "sqlite" and "postgres". SQLite uses a file under
  ``tmp_path``. PostgreSQL (127.0.0.1:5432, trust auth, user postgres) gets one database per
  test session (per xdist worker), ``merpati_test_<random>``, created through the ``test``
  database and dropped at the end; each test starts from an empty schema. When PostgreSQL is
  unreachable, its cases are skipped locally but fail under ``CI=true``.
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

from storage_helpers import PARSED_TYPE  # noqa: E402

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
        """Open one more store instance on this backend's database (closed after the test)."""
        options.setdefault("parsed_type", PARSED_TYPE)
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


class LazyStore:
    """Placeholder replaced, on the test's loop, by an open store of ``backend``."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    names = pyfuncitem._fixtureinfo.argnames
    kwargs = {n: pyfuncitem.funcargs[n] for n in names}

    async def run() -> None:
        backends = {id(v.backend): v.backend for v in kwargs.values() if isinstance(v, LazyStore)}
        backends.update({id(v): v for v in kwargs.values() if isinstance(v, Backend)})
        for b in backends.values():
            await b.reset()
        for n, v in list(kwargs.items()):
            if isinstance(v, LazyStore):
                kwargs[n] = await v.backend.open()
        try:
            await asyncio.wait_for(pyfuncitem.obj(**kwargs), timeout=60)
        finally:
            for b in backends.values():
                while b.opened:
                    await b.opened.pop().close()

    asyncio.run(run())
    return True


def _pg_reachable_and_create() -> tuple[str | None, str]:
    import asyncpg

    name = f"merpati_test_{secrets.token_hex(6)}"

    async def create() -> None:
        conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')  # name is ours: hex only
        finally:
            await conn.close()

    try:
        asyncio.run(create())
    except (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        return None, f"PostgreSQL at {PG_HOST}:{PG_PORT} unreachable: {exc!r}"
    return name, ""


@pytest.fixture(scope="session")
def pg_database() -> Any:
    """Name of this session's PostgreSQL database, or (None, reason) when unreachable."""
    name, reason = _pg_reachable_and_create()
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


def require_postgres(pg_database: Any) -> str:
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
    return Backend("postgres", require_postgres(pg_database), fresh_schema=True)


@pytest.fixture
def store(backend: Backend) -> LazyStore:
    return LazyStore(backend)
