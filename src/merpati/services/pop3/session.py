"""POP3 sessions over the store: login, the maildrop snapshot, TRANSACTION commands, UPDATE.

``Pop3Service`` is one per server (it holds the size cache and the login-delay clock);
``Pop3Service.session(...)`` makes one ``Pop3Session`` per connection. The maildrop lock is
the store's ``lock_maildrop``: exclusive across processes and nodes, released by the kernel
(SQLite ``flock``) or PostgreSQL (advisory lock) if the holder dies.
The net layer feeds every decision event of the wire engine to ``Pop3Session.handle`` and
writes the ``Response`` it returns, and calls ``close()`` when the connection ends, however
it ends.

Contract (RFC 1939 §4-§6, RFC 2449 §8, RFC 3206):

* Login: the authenticator checks the credentials (its failure delays apply); then the
  maildrop lock (``-ERR [IN-USE]`` when another session holds it), then INBOX is listed
  once. ``-ERR [AUTH]`` for bad credentials, ``[LOGIN-DELAY]`` when the account logged in
  less than ``login_delay`` seconds ago, ``[SYS/TEMP]`` when the store cannot answer now,
  ``[SYS/PERM]`` when the account has no INBOX.
* DELE only marks; RSET unmarks. Only QUIT in the TRANSACTION state changes the store: the
  marked messages are removed by one ``expunge`` (one durable commit; IMAP sessions get the
  EXPUNGE from the change feed). A connection that ends any other way removes nothing.
* RETR marks ``\\Seen`` only with ``retr_marks_seen``, and only at QUIT (for messages not
  deleted), so a dropped connection changes no flag either.
* A message another client expunged meanwhile keeps its number; RETR/TOP of it fail.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from merpati.services.auth import Authenticator
from merpati.services.pop3.maildrop import Entry, Maildrop, SizeCache
from merpati.storage.api import MaildropLock, MailStore, NotFound, StoreError, TemporaryStoreError
from merpati.storage.models import INBOX, FlagMode
from merpati.wire.pop3 import (
    Dele,
    Err,
    Listing,
    Login,
    MultiLine,
    Noop,
    Ok,
    Quit,
    RespCode,
    Response,
    Retr,
    Rset,
    Stat,
    Top,
    UidListing,
    top,
)

log = logging.getLogger("merpati.pop3")

SEEN = frozenset({"\\Seen"})
AUTH_FAILED = Err("Authentication failed.", RespCode.AUTH)
IN_USE = Err("Mailbox is locked by another POP3 session.", RespCode.IN_USE)
TEMPORARY = Err("Temporary server problem, try again later.", RespCode.SYS_TEMP)
NO_SUCH_MESSAGE = Err("No such message.")
MAX_LOGIN_TIMES = 100_000  # accounts remembered for the login delay


@dataclass(frozen=True, slots=True)
class Pop3Settings:
    retr_marks_seen: bool = False
    login_delay: float = 0.0  # seconds between two logins of one account (RFC 2449 LOGIN-DELAY); 0: none
    read_ahead_bytes: int = 8 * 1024 * 1024  # per session: bytes read for sizes kept for RETR
    read_chunk: int = 256  # UIDs per bulk read
    size_cache_entries: int = 200_000


class Pop3Service:
    """Shared by every POP3 connection of one server."""

    def __init__(
        self,
        store: MailStore,
        authenticator: Authenticator,
        settings: Pop3Settings | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.authenticator = authenticator
        self.settings = settings or Pop3Settings()
        self.sizes = SizeCache(self.settings.size_cache_entries)
        self._clock = clock
        self._last_login: OrderedDict[int, float] = OrderedDict()

    def session(self, *, remote_ip: str | None) -> Pop3Session:
        return Pop3Session(self, remote_ip=remote_ip)

    def login_too_soon(self, account_id: int) -> bool:
        delay = self.settings.login_delay
        if delay <= 0:
            return False
        last = self._last_login.get(account_id)
        return last is not None and self._clock() - last < delay

    def note_login(self, account_id: int) -> None:
        if self.settings.login_delay <= 0:
            return
        self._last_login[account_id] = self._clock()
        self._last_login.move_to_end(account_id)
        while len(self._last_login) > MAX_LOGIN_TIMES:
            self._last_login.popitem(last=False)


class Pop3Session:
    def __init__(self, service: Pop3Service, *, remote_ip: str | None) -> None:
        self._service = service
        self._store = service.store
        self._remote_ip = remote_ip
        self._lock: MaildropLock | None = None
        self.maildrop: Maildrop | None = None
        self.account_address: str | None = None

    async def handle(self, event: Any) -> Response:
        """The response to one decision event of the wire engine."""
        handler: Callable[[Pop3Session, Any], Awaitable[Response]] = _HANDLERS[type(event)]
        try:
            return await handler(self, event)
        except TemporaryStoreError as exc:
            log.warning("pop3 store unavailable: %s", exc)
            return TEMPORARY
        except StoreError as exc:
            log.error("pop3 store error: %s", exc)
            return Err("Server problem.", RespCode.SYS_PERM)

    async def close(self) -> None:
        """End of the connection (QUIT or not): release the lock; nothing is removed here."""
        if self.maildrop is not None:
            self.maildrop.drop_cache()
        lock, self._lock = self._lock, None
        if lock is not None:
            try:
                await lock.release()
            except Exception:  # noqa: BLE001 - the lock dies with its connection anyway
                log.exception("releasing the maildrop lock failed")

    # -- AUTHORIZATION -----------------------------------------------------------------------
    async def _login(self, event: Login) -> Response:
        if event.authzid and event.authzid.lower() != event.username.lower():
            return AUTH_FAILED  # no proxy logins
        account = await self._service.authenticator.authenticate(
            event.username, event.password, remote_ip=self._remote_ip
        )
        if account is None:
            return AUTH_FAILED
        if self._service.login_too_soon(account.id):
            return Err("Logged in too recently, try again later.", RespCode.LOGIN_DELAY)
        lock = await self._store.lock_maildrop(account.id)  # exclusive across processes and nodes
        if lock is None:
            return IN_USE
        try:
            mailbox = await self._store.get_mailbox(account.id, INBOX)
            if mailbox is None:
                await lock.release()
                return Err("The maildrop does not exist.", RespCode.SYS_PERM)
            metas = await self._store.list_messages(mailbox.id)
        except BaseException:
            await lock.release()
            raise
        self._lock = lock
        settings = self._service.settings
        self.maildrop = Maildrop(
            self._store, mailbox, metas, self._service.sizes,
            read_ahead_bytes=settings.read_ahead_bytes, chunk=settings.read_chunk,
        )
        self.account_address = account.address
        self._service.note_login(account.id)
        log.info("pop3 login user=%s messages=%d", account.address, len(metas))
        return Ok(f"Logged in, {len(metas)} messages.")

    # -- TRANSACTION -------------------------------------------------------------------------
    def _drop(self) -> Maildrop:
        assert self.maildrop is not None, "TRANSACTION command before login"
        return self.maildrop

    def _live_entry(self, msg: int) -> Entry | Err:
        entry = self._drop().entry(msg)
        if entry is None:
            return NO_SUCH_MESSAGE
        if entry.deleted:
            return Err(f"Message {msg} already deleted.")
        return entry

    async def _stat(self, event: Stat) -> Response:
        drop = self._drop()
        live = [e for _, e in drop.live()]
        await drop.ensure_sizes(live)
        return Ok(f"{len(live)} {sum(e.size or 0 for e in live)}")

    async def _list(self, event: Listing) -> Response:
        drop = self._drop()
        if event.msg is not None:
            entry = self._live_entry(event.msg)
            if isinstance(entry, Err):
                return entry
            await drop.ensure_sizes([entry])
            return Ok(f"{event.msg} {entry.size}")
        live = drop.live()
        await drop.ensure_sizes([e for _, e in live])
        return MultiLine.from_lines(f"{len(live)} messages", (f"{i} {e.size}" for i, e in live))

    async def _uidl(self, event: UidListing) -> Response:
        drop = self._drop()
        if event.msg is not None:
            entry = self._live_entry(event.msg)
            if isinstance(entry, Err):
                return entry
            return Ok(f"{event.msg} {drop.uidl(entry)}")
        return MultiLine.from_lines("Unique-ID listing follows", (f"{i} {drop.uidl(e)}" for i, e in drop.live()))

    async def _retr(self, event: Retr) -> Response:
        entry = self._live_entry(event.msg)
        if isinstance(entry, Err):
            return entry
        try:
            data = await self._drop().read(entry)
        except NotFound:
            return Err(f"Message {event.msg} was removed by another client.")
        entry.retrieved = True
        return MultiLine(f"{len(data)} octets", data)

    async def _top(self, event: Top) -> Response:
        entry = self._live_entry(event.msg)
        if isinstance(entry, Err):
            return entry
        try:
            data = await self._drop().read(entry, keep=True)
        except NotFound:
            return Err(f"Message {event.msg} was removed by another client.")
        return MultiLine("Top of message follows", top(data, event.lines))

    async def _dele(self, event: Dele) -> Response:
        entry = self._live_entry(event.msg)
        if isinstance(entry, Err):
            return entry
        entry.deleted = True
        return Ok(f"Message {event.msg} deleted.")

    async def _rset(self, event: Rset) -> Response:
        drop = self._drop()
        for entry in drop.entries:
            entry.deleted = False
        return Ok(f"{len(drop)} messages.")

    async def _noop(self, event: Noop) -> Response:
        return Ok()

    # -- UPDATE ------------------------------------------------------------------------------
    async def _quit(self, event: Quit) -> Response:
        """RFC 1939 §6: remove the marked messages (one durable commit), then release the lock."""
        drop = self._drop()
        deleted = [e.uid for e in drop.entries if e.deleted]
        try:
            if self._service.settings.retr_marks_seen:
                seen = [e.uid for e in drop.entries if e.retrieved and not e.deleted]
                if seen:
                    await self._store.store_flags(drop.mailbox.id, seen, SEEN, mode=FlagMode.ADD)
            removed = await self._store.expunge(drop.mailbox.id, deleted) if deleted else []
        except StoreError as exc:
            log.warning("pop3 update failed for %s: %s", self.account_address, exc)
            return Err("Some deleted messages were not removed.", RespCode.SYS_TEMP)
        finally:
            await self.close()
        left = len(drop) - len(deleted)
        return Ok(f"Logging out, {len(removed)} messages deleted, {left} left.")


_HANDLERS = MappingProxyType({
    Login: Pop3Session._login,
    Stat: Pop3Session._stat,
    Listing: Pop3Session._list,
    UidListing: Pop3Session._uidl,
    Retr: Pop3Session._retr,
    Top: Pop3Session._top,
    Dele: Pop3Session._dele,
    Rset: Pop3Session._rset,
    Noop: Pop3Session._noop,
    Quit: Pop3Session._quit,
})
