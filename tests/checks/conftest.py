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
from importlib import resources
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


def _pending_sql(backend: str) -> str | None:
    """Migration 0006 while it still waits for 0005 to land (``.sql.pending``)."""
    folder = resources.files(f"merpati.storage.{backend}").joinpath("migrations")
    for entry in folder.iterdir():
        if entry.name.startswith("0006_checks") and entry.name.endswith(".pending"):
            return entry.read_text(encoding="utf-8")
    return None


async def _ensure_tables_sqlite(path: Path) -> None:
    import sqlite3

    sql = _pending_sql("sqlite")
    if sql is None:
        return
    con = sqlite3.connect(path)
    try:
        if con.execute("SELECT 1 FROM sqlite_master WHERE name = 'greylist'").fetchone() is None:
            con.executescript(sql)
    finally:
        con.close()


@asynccontextmanager
async def open_checks_store(kind: str, tmp_path: Path):
    if kind == "sqlite":
        path = tmp_path / "m.db"
        store = await open_store(f"sqlite:///{path}")
        await store.close()
        await _ensure_tables_sqlite(path)
        store = await open_store(f"sqlite:///{path}")
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
        sql = _pending_sql("postgres")
        if sql is not None:
            conn = await asyncpg.connect(url)
            try:
                if not await conn.fetchval("SELECT to_regclass('greylist') IS NOT NULL"):
                    await conn.execute(sql)
            finally:
                await conn.close()
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
