"""Fixtures for the check tests: async tests on a fresh loop, stores on both backends.

* ``async def`` tests run with ``asyncio.run`` (no plugin).
* ``open_checks_store(kind, tmp_path)`` opens a MailStore (SQLite in ``tmp_path``, or a fresh
  PostgreSQL database on 127.0.0.1:5432 dropped afterwards) and its ``ChecksStore``.
"""

from __future__ import annotations

import asyncio
import inspect
import secrets
import sys
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from merpati.storage import open_store  # noqa: E402
from merpati.storage.checks_api import checks_store  # noqa: E402

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    names = pyfuncitem._fixtureinfo.argnames
    kwargs = {n: pyfuncitem.funcargs[n] for n in names}
    asyncio.run(pyfuncitem.obj(**kwargs))
    return True


@asynccontextmanager
async def open_checks_store(kind: str, tmp_path: Path):
    if kind == "sqlite":
        store = await open_store(f"sqlite:///{tmp_path / 'm.db'}")
        try:
            yield store, checks_store(store)
        finally:
            await store.close()
        return
    import asyncpg

    name = f"merpati_checks_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(PG_ADMIN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = f"postgresql://postgres@127.0.0.1:5432/{name}"
    try:
        store = await open_store(url)
        try:
            yield store, checks_store(store)
        finally:
            await store.close()
    finally:
        admin = await asyncpg.connect(PG_ADMIN)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
