"""The single admin API: domains, users, aliases, mailboxes, export/import.

The CLI calls it today; the daemon's control socket will call it later. It holds no state of
its own besides the ``MailStore`` it was given, which the caller opened and the caller closes.
Every method is async and raises ``AdminError`` subclasses (one-line messages) for the caller's
mistakes; storage failures (``TemporaryStoreError``) pass through unchanged.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from merpati.admin import passwords, transfer
from merpati.admin.errors import ConflictError, InvalidInput, NotFoundError
from merpati.admin.transfer import Format, TransferResult
from merpati.core.address import AddressError, parse_address, parse_domain
from merpati.storage.api import AlreadyExists, MailStore, NotFound
from merpati.storage.models import Account, Alias


@dataclass(frozen=True, slots=True)
class MailboxRow:
    name: str
    messages: int
    unseen: int
    size: int  # octets


def normalize_domain(text: str) -> str:
    """Validate a domain name and return its normal form (lower case, NFC; one trailing dot
    dropped). Address literals are refused: a mail domain here is a name."""
    name = text[:-1] if text.endswith(".") else text
    try:
        return parse_domain(name, allow_utf8=True)
    except AddressError as exc:
        raise InvalidInput(f"invalid domain name {text!r}: {exc}") from None


def normalize_address(text: str) -> str:
    """Validate ``local@domain``; return the normal form (domain lower-cased, local part kept)."""
    try:
        address = parse_address(text, allow_utf8=True)
    except AddressError as exc:
        raise InvalidInput(f"invalid address {text!r}: {exc}") from None
    if address.is_address_literal:
        raise InvalidInput(f"invalid address {text!r}: use a domain name, not an address literal")
    return str(address)


def normalize_alias_source(text: str) -> str:
    """``local@domain`` or ``@domain`` (the domain's catch-all)."""
    if text.startswith("@"):
        return "@" + normalize_domain(text[1:])
    return normalize_address(text)


class AdminService:
    """Account administration over one ``MailStore``.

    ``hostname`` names the host in exported maildir file names.
    """

    def __init__(self, store: MailStore, *, hostname: str | None = None) -> None:
        self.store = store
        self.hostname = hostname or socket.gethostname() or "localhost"

    # -- domains ----------------------------------------------------------------------------
    async def add_domain(self, name: str) -> str:
        domain = normalize_domain(name)
        try:
            await self.store.add_domain(domain)
        except AlreadyExists:
            raise ConflictError(f"domain {domain} already exists") from None
        return domain

    async def remove_domain(self, name: str) -> None:
        domain = normalize_domain(name)
        try:
            await self.store.remove_domain(domain)
        except NotFound:
            raise NotFoundError(f"unknown domain: {domain}") from None

    async def list_domains(self) -> list[str]:
        return sorted(await self.store.list_domains())

    async def _require_domain(self, domain: str) -> None:
        if not await self.store.has_domain(domain):
            raise NotFoundError(f"unknown domain: {domain} (add it with `merpati domain add {domain}`)")

    # -- users ------------------------------------------------------------------------------
    async def add_user(self, address: str, password: str) -> Account:
        addr = normalize_address(address)
        _check_password(password)
        await self._require_domain(addr.rpartition("@")[2])
        if await self.store.get_account(addr) is not None:
            raise ConflictError(f"user {addr} already exists")
        try:
            return await self.store.create_account(addr, passwords.hash_password(password))
        except AlreadyExists:
            raise ConflictError(f"user {addr} already exists") from None
        except NotFound:
            raise NotFoundError(f"unknown domain: {addr.rpartition('@')[2]}") from None

    async def set_password(self, address: str, password: str) -> None:
        addr = normalize_address(address)
        _check_password(password)
        try:
            await self.store.set_password(addr, passwords.hash_password(password))
        except NotFound:
            raise NotFoundError(f"unknown user: {addr}") from None

    async def remove_user(self, address: str) -> None:
        addr = normalize_address(address)
        try:
            await self.store.delete_account(addr)
        except NotFound:
            raise NotFoundError(f"unknown user: {addr}") from None

    async def list_users(self, domain: str | None = None) -> list[Account]:
        if domain is not None:
            domain = normalize_domain(domain)
            await self._require_domain(domain)
        return sorted(await self.store.list_accounts(domain), key=lambda a: _addr_key(a.address))

    async def get_user(self, address: str) -> Account:
        addr = normalize_address(address)
        account = await self.store.get_account(addr)
        if account is None:
            raise NotFoundError(f"unknown user: {addr}")
        return account

    # -- aliases ----------------------------------------------------------------------------
    async def add_alias(self, source: str, targets: Sequence[str]) -> Alias:
        src = normalize_alias_source(source)
        if not targets:
            raise InvalidInput("an alias needs at least one target")
        normalized = [normalize_address(t) for t in targets]
        await self._require_domain(src.rpartition("@")[2])
        if src in normalized:
            raise InvalidInput(f"alias {src} cannot point to itself")
        try:
            return await self.store.add_alias(src, normalized)
        except NotFound:
            raise NotFoundError(f"unknown domain: {src.rpartition('@')[2]}") from None

    async def remove_alias(self, source: str, targets: Sequence[str] = ()) -> None:
        src = normalize_alias_source(source)
        normalized = [normalize_address(t) for t in targets]
        alias = await self.store.get_alias(src)
        if alias is None:
            raise NotFoundError(f"unknown alias: {src}")
        missing = [t for t in normalized if t.lower() not in {x.lower() for x in alias.targets}]
        if missing:
            raise NotFoundError(f"alias {src} has no target {missing[0]}")
        try:
            await self.store.remove_alias(src, normalized)
        except NotFound:
            raise NotFoundError(f"unknown alias: {src}") from None

    async def list_aliases(self, domain: str | None = None) -> list[Alias]:
        if domain is not None:
            domain = normalize_domain(domain)
            await self._require_domain(domain)
        return sorted(await self.store.list_aliases(domain), key=lambda a: _addr_key(a.source))

    # -- mailboxes --------------------------------------------------------------------------
    async def list_mailboxes(self, address: str) -> list[MailboxRow]:
        account = await self.get_user(address)
        rows = []
        for mailbox in await self.store.list_mailboxes(account.id):
            status = await self.store.mailbox_status(mailbox.id)
            rows.append(MailboxRow(mailbox.name, status.messages, status.unseen, status.size))
        return rows

    # -- export / import --------------------------------------------------------------------
    async def export_mail(
        self,
        address: str,
        out: Path,
        *,
        fmt: Format = Format.MBOX,
        mailboxes: Sequence[str] | None = ("INBOX",),
    ) -> TransferResult:
        """Write the named mailboxes (``None``: all of them) of ``address`` to ``out``.

        One mailbox: ``out`` is an mbox file or a maildir. All (``None``): ``out`` is a folder of
        ``<name>.mbox`` files, or a Maildir++ root (INBOX at the top, ``.Name`` folders).
        """
        account = await self.get_user(address)
        return await transfer.export_mail(
            self.store, account, Path(out), fmt=fmt, mailboxes=mailboxes, hostname=self.hostname
        )

    async def import_mail(
        self,
        address: str,
        source: Path,
        *,
        fmt: Format | None = None,
        mailbox: str | None = None,
    ) -> TransferResult:
        """Read mbox or maildir mail (format detected when ``fmt`` is None) into ``address``."""
        account = await self.get_user(address)
        return await transfer.import_mail(self.store, account, Path(source), fmt=fmt, mailbox=mailbox)


def _check_password(password: str) -> None:
    if not password:
        raise InvalidInput("empty password")
    if any(c in password for c in "\r\n\0"):
        raise InvalidInput("the password contains a line break or NUL")


def _addr_key(address: str) -> tuple[str, str]:
    local, _, domain = address.rpartition("@")
    return domain, local.lower()
