"""Shared CLI plumbing: config loading, store lifetime, password input, user-facing errors."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from merpati.admin.errors import AdminError
from merpati.config import Config, ConfigError, default_config_path, load_config

if TYPE_CHECKING:
    from merpati.admin.service import AdminService
    from merpati.storage.api import MailStore


class UserError(Exception):
    """A mistake of the person at the keyboard: printed as one line, exit status 1."""


# Exceptions whose message is shown as is (no traceback): the user can act on them.
def user_facing(exc: BaseException) -> str | None:
    from merpati.storage.api import StoreError

    if isinstance(exc, (UserError, AdminError, ConfigError)):
        return str(exc)
    if isinstance(exc, StoreError):
        return f"storage: {exc}"
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"{exc.filename}: {exc.strerror or exc}"
    return None


def config_path(args: argparse.Namespace) -> Path:
    return Path(args.config) if getattr(args, "config", None) else default_config_path()


def load(args: argparse.Namespace) -> Config:
    return load_config(config_path(args))


AdminCall = Callable[["AdminService", argparse.Namespace], Awaitable[int]]


def run_admin(args: argparse.Namespace, call: AdminCall) -> int:
    """Load the config, open the store, run ``call(service, args)``, close the store."""
    config = load(args)
    return asyncio.run(_with_service(config, args, call))


async def open_configured_store(url: str) -> MailStore:
    """``open_store(url)``, with a bad URL reported as a user error."""
    from merpati.storage import open_store

    try:
        return await open_store(url, receive_changes=False)  # the CLI publishes, never subscribes
    except ValueError as exc:  # unknown scheme, relative sqlite path
        raise UserError(f"storage: {exc}") from None


async def _with_service(config: Config, args: argparse.Namespace, call: AdminCall) -> int:
    from merpati.admin.service import AdminService

    store = await open_configured_store(config.storage_url)
    try:
        return await call(AdminService(store, hostname=config.hostname), args)
    finally:
        await store.close()


def read_password(
    *, from_stdin: bool, stdin: TextIO | None = None, prompt: Callable[[str], str] = getpass.getpass
) -> str:
    """The new password: one line from stdin, or asked twice on a terminal.

    With ``--password-stdin``, or when stdin is not a terminal, the first line of stdin is the
    password (its line ending removed). On a terminal the password is asked twice, unechoed.
    """
    stream = stdin if stdin is not None else sys.stdin
    if from_stdin or not stream.isatty():
        line = stream.readline()
        password = line.rstrip("\r\n")
        if not password:
            raise UserError("no password on standard input")
        return password
    first = prompt("New password: ")
    if prompt("Repeat password: ") != first:
        raise UserError("the passwords do not match")
    if not first:
        raise UserError("empty password")
    return first


def print_table(headers: tuple[str, ...], rows: list[tuple[object, ...]], out: TextIO) -> None:
    """Left-aligned text columns, numbers right-aligned."""
    cells = [tuple(str(c) for c in headers)] + [tuple(str(c) for c in row) for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    numeric = [all(isinstance(r[i], int) for r in rows) and rows != [] for i in range(len(headers))]
    for row in cells:
        parts = [c.rjust(w) if numeric[i] else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))]
        out.write("  ".join(parts).rstrip() + "\n")
