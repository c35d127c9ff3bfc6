"""Numbered schema migrations, shipped as package data.

Each backend has a ``migrations/`` folder of files named ``NNNN_description.sql``. A store
applies, on open and in order, every file whose number is above the largest row of its
``schema_version`` table, each in the same transaction as its ``schema_version`` row, under
a lock (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: an advisory lock), so two processes or nodes
starting together apply each migration once. A database newer than the code is refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

from merpati.storage.api import StoreError

_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def load_migrations(backend: str) -> list[Migration]:
    """The migrations of ``backend`` ("sqlite" or "postgres"), ordered by version."""
    folder = resources.files(f"merpati.storage.{backend}").joinpath("migrations")
    out = []
    for entry in folder.iterdir():
        m = _NAME.match(entry.name)
        if m:
            out.append(Migration(int(m.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    out.sort(key=lambda m: m.version)
    versions = [m.version for m in out]
    if versions != list(range(1, len(out) + 1)):
        raise StoreError(f"{backend} migrations are not numbered 1..n: {versions}")
    return out


def check_not_newer(current: int, migrations: list[Migration]) -> None:
    latest = migrations[-1].version if migrations else 0
    if current > latest:
        raise StoreError(
            f"database schema version {current} is newer than this program's ({latest}); upgrade Merpati"
        )
