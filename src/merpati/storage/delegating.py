"""The ``MailStore`` methods that are the same on every backend: validate, then run one unit of work.

A backend supplies ``_ops`` (a module of functions ``fn(conn, *args)``), ``_read`` (run one
function in a read-only transaction) and ``_write`` (run one in a write transaction that
returns ``(result, changes)`` and publishes the changes after commit), plus ``_parsed_type``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from types import ModuleType
from typing import Any

from merpati.storage import common
from merpati.storage.api import InvalidInput
from merpati.storage.search_store import SearchMethods
from merpati.storage.models import (
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


class OpsBackedStore(SearchMethods):  # search, sort, thread, thread_data: search_store.py
    _ops: ModuleType
    _parsed_type: Any

    async def _read(self, fn: Any, *args: Any) -> Any:
        raise NotImplementedError

    async def _write(self, fn: Any, *args: Any) -> Any:
        raise NotImplementedError

    def _op(self, name: str) -> Any:
        fn = getattr(self._ops, name, None)
        if fn is None:
            raise NotImplementedError(f"{type(self).__name__}.{name} is not implemented yet")
        return fn

    def _parse_cls(self) -> Any:
        return self._parsed_type or common.default_parsed_type()

    # -- domains ----------------------------------------------------------------------------
    async def add_domain(self, name: str) -> None:
        await self._write(self._ops.add_domain, name)

    async def remove_domain(self, name: str) -> None:
        await self._write(self._ops.remove_domain, name)
        self.search_gc_soon()

    async def list_domains(self) -> list[str]:
        return await self._read(self._ops.list_domains)  # type: ignore[no-any-return]

    async def has_domain(self, name: str) -> bool:
        return await self._read(self._ops.has_domain, name)  # type: ignore[no-any-return]

    # -- accounts ---------------------------------------------------------------------------
    async def create_account(self, address: str, password_hash: str) -> Account:
        return await self._write(self._ops.create_account, address, password_hash)  # type: ignore[no-any-return]

    async def delete_account(self, address: str) -> None:
        await self._write(self._ops.delete_account, address)
        self.search_gc_soon()

    async def get_account(self, address: str) -> Account | None:
        return await self._read(self._ops.get_account, address)  # type: ignore[no-any-return]

    async def get_account_by_id(self, account_id: int) -> Account | None:
        return await self._read(self._ops.get_account_by_id, account_id)  # type: ignore[no-any-return]

    async def list_accounts(self, domain: str | None = None) -> list[Account]:
        return await self._read(self._ops.list_accounts, domain)  # type: ignore[no-any-return]

    async def set_password(self, address: str, password_hash: str) -> None:
        await self._write(self._ops.set_password, address, password_hash)

    # -- aliases ----------------------------------------------------------------------------
    async def add_alias(self, source: str, targets: Sequence[str]) -> Alias:
        return await self._write(self._ops.add_alias, source, list(targets) if not isinstance(targets, str) else targets)  # type: ignore[no-any-return]

    async def remove_alias(self, source: str, targets: Sequence[str] = ()) -> None:
        await self._write(self._ops.remove_alias, source, list(targets) if not isinstance(targets, str) else targets)

    async def get_alias(self, source: str) -> Alias | None:
        return await self._read(self._ops.get_alias, source)  # type: ignore[no-any-return]

    async def list_aliases(self, domain: str | None = None) -> list[Alias]:
        return await self._read(self._ops.list_aliases, domain)  # type: ignore[no-any-return]

    # -- mailboxes --------------------------------------------------------------------------
    async def list_mailboxes(self, account_id: int) -> list[Mailbox]:
        return await self._read(self._ops.list_mailboxes, account_id)  # type: ignore[no-any-return]

    async def get_mailbox(self, account_id: int, name: str) -> Mailbox | None:
        return await self._read(self._ops.get_mailbox, account_id, name)  # type: ignore[no-any-return]

    async def create_mailbox(self, account_id: int, name: str, *, special_use: SpecialUse | None = None) -> Mailbox:
        return await self._write(self._ops.create_mailbox, account_id, name, special_use)  # type: ignore[no-any-return]

    async def delete_mailbox(self, account_id: int, name: str) -> None:
        await self._write(self._ops.delete_mailbox, account_id, name)
        self.search_gc_soon()

    async def rename_mailbox(self, account_id: int, old: str, new: str) -> Mailbox:
        return await self._write(self._ops.rename_mailbox, account_id, old, new)  # type: ignore[no-any-return]

    async def mailbox_status(self, mailbox_id: int) -> MailboxStatus:
        return await self._read(self._ops.mailbox_status, mailbox_id)  # type: ignore[no-any-return]

    async def get_mailbox_by_id(self, mailbox_id: int) -> Mailbox | None:
        return await self._read(self._op("get_mailbox_by_id"), mailbox_id)  # type: ignore[no-any-return]

    # -- \Recent watermark ------------------------------------------------------------------
    async def claim_recent(self, mailbox_id: int, upto_uid: int) -> int:
        if isinstance(upto_uid, bool) or not isinstance(upto_uid, int) or upto_uid < 0:
            raise InvalidInput(f"invalid UID {upto_uid!r}")
        return await self._write(self._op("claim_recent"), mailbox_id, min(upto_uid, 0xFFFFFFFF))  # type: ignore[no-any-return]

    async def peek_recent(self, mailbox_id: int) -> int:
        return await self._read(self._op("peek_recent"), mailbox_id)  # type: ignore[no-any-return]

    # -- subscriptions ----------------------------------------------------------------------
    async def subscribe(self, account_id: int, name: str) -> None:
        await self._write(self._op("subscribe"), account_id, common.normalize_mailbox_name(name))

    async def unsubscribe(self, account_id: int, name: str) -> None:
        await self._write(self._op("unsubscribe"), account_id, common.lookup_mailbox_name(name))

    async def list_subscriptions(self, account_id: int) -> list[str]:
        return await self._read(self._op("list_subscriptions"), account_id)  # type: ignore[no-any-return]

    # -- messages ---------------------------------------------------------------------------
    async def deliver(self, deliveries: Sequence[Delivery]) -> list[MessageMeta]:
        prepared = common.prepare_deliveries(deliveries)  # on the loop, not in the unit of work
        if not prepared:
            return []
        return await self._write(self._ops.deliver, prepared)  # type: ignore[no-any-return]

    async def append(
        self,
        mailbox_id: int,
        data: bytes,
        parsed: Any,
        *,
        flags: frozenset[str] = frozenset(),
        internaldate: datetime,
    ) -> MessageMeta:
        [meta] = await self.append_many(mailbox_id, [AppendMessage(data, parsed, internaldate, flags)])
        return meta

    async def append_many(self, mailbox_id: int, messages: Sequence[AppendMessage]) -> list[MessageMeta]:
        prepared = common.prepare_appends(messages)  # on the loop, not in the unit of work
        if not prepared:
            return []
        return await self._write(self._op("append"), mailbox_id, prepared)  # type: ignore[no-any-return]

    async def list_messages(
        self,
        mailbox_id: int,
        *,
        uid_min: int = 1,
        uid_max: int | None = None,
        changedsince: int | None = None,
    ) -> list[MessageMeta]:
        if changedsince is None:
            return await self._read(self._ops.list_messages, mailbox_id, uid_min, uid_max)  # type: ignore[no-any-return]
        return await self._read(  # type: ignore[no-any-return]
            self._op("list_messages_changed"), mailbox_id, uid_min, uid_max, common.clean_modseq(changedsince)
        )

    async def expunged_since(
        self, mailbox_id: int, modseq: int, *, uid_min: int = 1, uid_max: int | None = None
    ) -> list[int]:
        return await self._read(  # type: ignore[no-any-return]
            self._op("expunged_since"), mailbox_id, common.clean_modseq(modseq), uid_min, uid_max
        )

    async def read_messages(self, mailbox_id: int, uids: Sequence[int]) -> dict[int, bytes]:
        clean = common.clean_uids(uids)
        if not clean:
            return {}
        rows = await self._read(self._op("read_blobs"), mailbox_id, clean, "data")
        return {uid: bytes(data) for uid, data in rows}

    async def get_parsed_many(self, mailbox_id: int, uids: Sequence[int]) -> dict[int, Any]:
        clean = common.clean_uids(uids)
        if not clean:
            return {}
        rows = await self._read(self._op("read_blobs"), mailbox_id, clean, "parsed")
        cls = self._parse_cls()
        return {uid: cls.from_json(text) for uid, text in rows}

    async def read_message(self, mailbox_id: int, uid: int) -> bytes:
        return bytes(await self._read(self._ops.read_blob, mailbox_id, uid, "data"))

    async def get_parsed(self, mailbox_id: int, uid: int) -> Any:
        text = await self._read(self._ops.read_blob, mailbox_id, uid, "parsed")
        return self._parse_cls().from_json(text)

    async def get_envelope(self, mailbox_id: int, uid: int) -> MessageEnvelope | None:
        return common.envelope_from_text(await self._read(self._ops.read_blob, mailbox_id, uid, "envelope"))

    async def store_flags(
        self, mailbox_id: int, uids: Sequence[int], flags: frozenset[str], *, mode: FlagMode,
        unchangedsince: int | None = None,
    ) -> list[MessageMeta]:
        if unchangedsince is not None:
            changed, _failed = await self.store_flags_conditional(
                mailbox_id, uids, flags, mode=mode, unchangedsince=unchangedsince
            )
            return changed
        clean, norm = common.clean_uids(uids), common.normalize_flags(flags)
        mode = FlagMode(mode)
        return await self._write(self._ops.store_flags, mailbox_id, clean, norm, mode)  # type: ignore[no-any-return]

    async def store_flags_conditional(
        self, mailbox_id: int, uids: Sequence[int], flags: frozenset[str], *, mode: FlagMode, unchangedsince: int
    ) -> tuple[list[MessageMeta], list[int]]:
        clean, norm = common.clean_uids(uids), common.normalize_flags(flags)
        mode, limit = FlagMode(mode), common.clean_modseq(unchangedsince)
        changed, failed = await self._write(self._op("store_flags_conditional"), mailbox_id, clean, norm, mode, limit)
        return changed, failed

    async def expunge(self, mailbox_id: int, uids: Sequence[int]) -> list[int]:
        removed = await self._write(self._ops.expunge, mailbox_id, common.clean_uids(uids))
        if removed:
            self.search_gc_soon()  # search documents whose last message went (search_store.py)
        return removed  # type: ignore[no-any-return]

    async def copy_messages(self, src_mailbox_id: int, uids: Sequence[int], dst_mailbox_id: int) -> list[tuple[int, int]]:
        clean = common.clean_uids(uids)
        return await self._write(self._op("copy_messages"), src_mailbox_id, clean, dst_mailbox_id, False)  # type: ignore[no-any-return]

    async def move_messages(self, src_mailbox_id: int, uids: Sequence[int], dst_mailbox_id: int) -> list[tuple[int, int]]:
        clean = common.clean_uids(uids)
        return await self._write(self._op("copy_messages"), src_mailbox_id, clean, dst_mailbox_id, True)  # type: ignore[no-any-return]

    async def lock_maildrop(self, account_id: int) -> Any:
        raise NotImplementedError(f"{type(self).__name__}.lock_maildrop is not implemented yet")

    # -- quota ------------------------------------------------------------------------------
    async def get_quota(self, account_id: int) -> QuotaUsage:
        return await self._read(self._op("get_quota"), account_id)  # type: ignore[no-any-return]

    async def set_quota(self, account_id: int, *, bytes: int | None = None, messages: int | None = None) -> QuotaUsage:  # noqa: A002
        limit_bytes = common.clean_limit(bytes, "storage limit")
        limit_messages = common.clean_limit(messages, "message limit")
        return await self._write(self._op("set_quota"), account_id, limit_bytes, limit_messages)  # type: ignore[no-any-return]
