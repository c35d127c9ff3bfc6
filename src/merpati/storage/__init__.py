"""Merpati storage: the ``MailStore`` contract (``api``), its models, and ``open_store``.

``open_store(url)`` picks the backend from the URL, creates the schema and applies pending
migrations, so every entry point (daemon, CLI) can simply call it:

* ``sqlite:///abs/path/merpati.db`` (``sqlite:////abs/...`` too): embedded, the default;
  the parent folder is created.
* ``postgresql://user@host:port/dbname`` (or ``postgres://``): shared by several nodes;
  changes travel between them over LISTEN/NOTIFY.
"""

from __future__ import annotations

from typing import Any

from merpati.storage.api import (
    AlreadyExists,
    ChangeFeed,
    FeedOverflow,
    InvalidInput,
    MaildropLock,
    MailStore,
    NotFound,
    OverQuota,
    StoreError,
    TemporaryStoreError,
)
from merpati.storage.changes import (
    Change,
    Expunged,
    FlagsChanged,
    MailboxChanged,
    MessageAdded,
    change_from_json,
    change_to_json,
)
from merpati.storage.models import (
    DEFAULT_SPECIAL_MAILBOXES,
    INBOX,
    Account,
    Alias,
    AppendMessage,
    Delivery,
    FlagMode,
    Mailbox,
    MailboxStatus,
    MessageEnvelope,
    MessageMeta,
    QuotaUsage,
    SpecialUse,
)


def sqlite_path_from_url(url: str) -> str:
    """The absolute file path of a ``sqlite:///abs/path`` URL (extra leading slashes collapse)."""
    rest = url[len("sqlite:") :] if url.startswith("sqlite:") else ""
    rest = rest[2:] if rest.startswith("//") else ""
    if not rest.startswith("/") or rest.strip("/") == "":
        raise ValueError(f"storage URL must name an absolute path, like sqlite:///var/lib/merpati/merpati.db: {url!r}")
    return "/" + rest.lstrip("/")


async def open_store(url: str, **options: Any) -> MailStore:
    """Open (creating and migrating as needed) the store named by ``url``.

    Options (keyword-only, all optional): ``parsed_type`` (the class whose ``from_json``
    rebuilds stored parses; default ``merpati.mime.ParsedMessage``); ``max_pending_changes``
    (per-subscriber change-feed bound); SQLite ``readers`` and ``busy_timeout_ms``; PostgreSQL ``min_size``/``max_size``
    (pool bounds). Raises ``ValueError`` for an unknown URL, ``TemporaryStoreError`` when the
    database cannot be reached.
    """
    if url.startswith("sqlite:"):
        from merpati.storage.sqlite.store import SqliteStore

        return await SqliteStore.open(sqlite_path_from_url(url), **options)  # type: ignore[return-value]
    if url.startswith(("postgresql://", "postgres://")):
        from merpati.storage.postgres.store import PgStore

        return await PgStore.open(url, **options)  # type: ignore[return-value]
    raise ValueError(f"unsupported storage URL {url!r} (sqlite:/// or postgresql://)")


__all__ = [
    "DEFAULT_SPECIAL_MAILBOXES",
    "INBOX",
    "Account",
    "Alias",
    "AlreadyExists",
    "AppendMessage",
    "Change",
    "ChangeFeed",
    "Delivery",
    "Expunged",
    "FeedOverflow",
    "FlagMode",
    "FlagsChanged",
    "InvalidInput",
    "MailStore",
    "MaildropLock",
    "Mailbox",
    "MailboxChanged",
    "MailboxStatus",
    "MessageAdded",
    "MessageEnvelope",
    "MessageMeta",
    "NotFound",
    "OverQuota",
    "QuotaUsage",
    "SpecialUse",
    "StoreError",
    "TemporaryStoreError",
    "change_from_json",
    "change_to_json",
    "open_store",
    "sqlite_path_from_url",
]
