"""One IMAP session: state, the authenticated account, the selected mailbox, enabled extensions.

Theory of operation
-------------------
* The net driver hands every ``Command`` to ``execute(tag, command)``; it answers with an
  ``Outcome``: the bytes to write (untagged responses, then the tagged completion) and an
  ``Action`` the driver must carry out (STARTTLS, COMPRESS, IDLE, an AUTHENTICATE
  challenge, closing). Handlers live one module per command family; ``registry.REGISTRY``
  maps each command class to its handler and flags.
* Handlers append untagged responses to ``self.out`` and return a ``Reply`` (the tagged
  status, response code and text) or raise ``ImapNo`` / ``ImapBad``; ``execute`` turns both
  into the tagged line, in exactly one place.
* Safe points (RFC 9051 §7.5.1): after every command in the selected state the session
  drains the change feed into the view and lets it ``sync``; expunges only where allowed
  (``Entry.expunges``). The driver calls ``idle_sync`` while the client idles.
* Nothing here touches sockets; one session per connection, no shared mutable state except
  what ``ImapContext`` holds on purpose (the connection counters). ``\\Recent`` lives in the
  store (``view.recent_above``), shared by every process and node.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from merpati.services.auth import Authenticator
from merpati.services.imap.fmt import sanitize_text
from merpati.services.imap.view import BadSequence, RecentMarks, SelectedMailbox, drain
from merpati.storage.api import FeedOverflow, MailStore, StoreError, TemporaryStoreError
from merpati.storage.models import Account
from merpati.wire.imap.states import ALLOWED, State

log = logging.getLogger("merpati.imap")

# Capabilities always offered after login (each fully implemented; see docs/imap.md).
BASE_CAPABILITIES = (
    "IMAP4rev1", "IMAP4rev2", "SASL-IR", "LITERAL+", "ID", "ENABLE", "IDLE", "NAMESPACE",
    "UNSELECT", "CHILDREN", "UIDPLUS", "MOVE", "SPECIAL-USE", "CREATE-SPECIAL-USE",
    "LIST-EXTENDED", "LIST-STATUS", "ESEARCH", "SEARCHRES", "CONDSTORE", "QRESYNC",
    "SORT", "THREAD=ORDEREDSUBJECT", "THREAD=REFERENCES", "BINARY", "MULTIAPPEND",
    "QUOTA", "QUOTA=RES-STORAGE", "QUOTA=RES-MESSAGE", "STATUS=SIZE", "SAVEDATE",
    "PREVIEW", "UTF8=ACCEPT", "WITHIN",
)
PRELOGIN_CAPABILITIES = ("IMAP4rev1", "IMAP4rev2", "SASL-IR", "LITERAL+", "ID", "ENABLE", "IDLE")
ENABLEABLE = frozenset({"CONDSTORE", "QRESYNC", "UTF8=ACCEPT", "IMAP4REV2"})
FLUSH_BYTES = 65_536  # flush_out writes once this much output is pending


class Action(enum.Enum):
    NONE = "none"
    START_TLS = "start_tls"  # write the OK, then upgrade (engine.start_tls())
    COMPRESS = "compress"  # write the OK, then wrap the stream in DEFLATE
    IDLE = "idle"  # "+ idling" written; wait for DONE and push updates
    AUTH_CONTINUE = "auth_continue"  # a "+ challenge" was written; the exchange goes on
    LOGOUT = "logout"  # close after writing


@dataclass(slots=True)
class Reply:
    status: str = "OK"
    text: str = "completed"
    code: str | None = None
    action: Action = Action.NONE


class ImapNo(Exception):
    def __init__(self, text: str, code: str | None = None) -> None:
        super().__init__(text)
        self.text = text
        self.code = code


class ImapBad(ImapNo):
    pass


@dataclass(slots=True)
class Outcome:
    data: bytes
    action: Action = Action.NONE
    status: str = "OK"  # of the tagged completion (BAD answers count towards disconnection)


@dataclass(frozen=True, slots=True)
class ImapSettings:
    hostname: str = "localhost"
    tls_available: bool = False
    message_size: int = 52_428_800  # APPENDLIMIT
    max_user_connections_per_ip: int = 10
    fetch_chunk: int = 256  # messages per bulk store read in FETCH
    fetch_chunk_bytes: int = 8 * 1024 * 1024
    # RFC 7888: LITERAL+ (non-synchronizing literals of any size) or, when False, LITERAL-
    # (at most 4096 octets; a larger {n+} is refused). The engine must be built to match.
    literal_plus: bool = True


class ConnectionCounter:
    """Authenticated connections per (account, IP) in this process (Dovecot
    mail_max_userip_connections)."""

    def __init__(self) -> None:
        self._n: dict[tuple[int, str], int] = {}

    def acquire(self, account_id: int, ip: str, limit: int) -> bool:
        key = (account_id, ip)
        n = self._n.get(key, 0)
        if limit and n >= limit:
            return False
        self._n[key] = n + 1
        return True

    def release(self, account_id: int, ip: str) -> None:
        key = (account_id, ip)
        n = self._n.get(key, 0) - 1
        if n > 0:
            self._n[key] = n
        else:
            self._n.pop(key, None)


@dataclass
class ImapContext:
    """What every session of one process shares (built once by the assembly)."""

    store: MailStore
    authenticator: Authenticator
    settings: ImapSettings = field(default_factory=ImapSettings)
    connections: ConnectionCounter = field(default_factory=ConnectionCounter)
    recent_marks: RecentMarks = field(default_factory=RecentMarks)  # \Recent watermarks seen here
    parse_message: Callable[[bytes], Any] | None = None  # merpati.mime.parse_message by default


class ImapSession:
    def __init__(self, ctx: ImapContext, *, remote_ip: str, tls: bool) -> None:
        self.ctx = ctx
        self.store = ctx.store
        self.remote_ip = remote_ip
        self.tls = tls
        self.compressed = False
        self.state = State.NOT_AUTHENTICATED
        self.account: Account | None = None
        self.selected: SelectedMailbox | None = None
        self.subscription: Any = None
        self.enabled: set[str] = set()
        self.condstore = False  # CONDSTORE in use (enabled, or a CONDSTORE parameter was used)
        self.saved_search: list[int] = []  # SEARCHRES "$" (UIDs)
        self.out: list[bytes] = []
        self.auth: Any = None  # the SASL exchange in progress (cmd_auth)
        self.auth_tag: str | None = None
        self.client_id: dict[str, str | None] = {}
        self._counted = False
        self.idle_tag: str | None = None
        self.append_bytes = 0
        self.append_mailbox: Any = None  # (name, Mailbox) the last APPEND literal check found
        self.writer: Callable[[bytes], Awaitable[None]] | None = None

    # -- properties --------------------------------------------------------------------------
    @property
    def rev2(self) -> bool:
        return "IMAP4REV2" in self.enabled

    @property
    def rev1(self) -> bool:
        return not self.rev2

    @property
    def qresync(self) -> bool:
        return "QRESYNC" in self.enabled

    @property
    def utf8(self) -> bool:
        return "UTF8=ACCEPT" in self.enabled or self.rev2

    @property
    def secure(self) -> bool:
        return self.ctx.authenticator.is_secure(self.remote_ip, tls=self.tls)

    def capabilities(self) -> list[str]:
        s = self.ctx.settings
        if self.state is State.NOT_AUTHENTICATED:
            caps = list(PRELOGIN_CAPABILITIES)
            if not s.literal_plus:
                caps[caps.index("LITERAL+")] = "LITERAL-"
            if s.tls_available and not self.tls:
                caps.append("STARTTLS")
            if self.secure:
                caps += ["AUTH=PLAIN", "AUTH=LOGIN"]
            else:
                caps.append("LOGINDISABLED")
            return caps
        caps = list(BASE_CAPABILITIES)
        if not s.literal_plus:
            caps[caps.index("LITERAL+")] = "LITERAL-"
        caps.append(f"APPENDLIMIT={s.message_size}")
        if not self.compressed:
            caps.append("COMPRESS=DEFLATE")
        return caps

    def capability_line(self) -> bytes:
        return b"* CAPABILITY " + " ".join(self.capabilities()).encode() + b"\r\n"

    def greeting(self) -> bytes:
        caps = " ".join(self.capabilities()).encode()
        return b"* OK [CAPABILITY " + caps + b"] " + sanitize_text(self.ctx.settings.hostname) + b" IMAP ready\r\n"

    # -- the account -------------------------------------------------------------------------
    def logged_in(self, account: Account) -> bool:
        """Enter the authenticated state; False when the per-user connection cap is reached."""
        limit = self.ctx.settings.max_user_connections_per_ip
        if not self.ctx.connections.acquire(account.id, self.remote_ip, limit):
            return False
        self._counted = True
        self.account = account
        self.state = State.AUTHENTICATED
        return True

    @property
    def account_id(self) -> int:
        assert self.account is not None
        return self.account.id

    async def close(self) -> None:
        """The connection ended: release what the session holds."""
        self.unselect()
        if self._counted and self.account is not None:
            self.ctx.connections.release(self.account.id, self.remote_ip)
            self._counted = False

    # -- selection ---------------------------------------------------------------------------
    def select(self, view: SelectedMailbox, subscription: Any) -> None:
        self.unselect()
        self.selected = view
        self.subscription = subscription
        self.state = State.SELECTED

    def unselect(self) -> None:
        if self.subscription is not None:
            try:
                self.subscription.close()
            except Exception:  # pragma: no cover - a feed that cannot close must not kill us
                log.exception("closing a change-feed subscription failed")
        self.subscription = None
        self.selected = None
        self.saved_search = []
        if self.state is State.SELECTED:
            self.state = State.AUTHENTICATED

    def require_selected(self) -> SelectedMailbox:
        if self.selected is None:
            raise ImapBad("No mailbox selected")
        return self.selected

    def require_writable(self) -> SelectedMailbox:
        view = self.require_selected()
        if view.read_only:
            raise ImapNo("Mailbox is read-only", "READ-ONLY")
        return view

    def uids_for(self, seqset: Any, *, uid: bool) -> list[int]:
        """The UIDs a sequence set names in the selected mailbox (``$``: the saved SEARCH
        result, RFC 5182); a message number above EXISTS is BAD."""
        view = self.require_selected()
        if seqset.saved:
            return [u for u in self.saved_search if view.seq_of(u) is not None]
        try:
            return view.resolve(seqset, uid=uid)
        except BadSequence as exc:
            raise ImapBad(str(exc)) from None

    async def flush_out(self) -> None:
        """Write what is pending now if it is ``FLUSH_BYTES`` or more (long FETCH answers), when
        the driver gave a writer; a short answer goes out with its tagged line, in one write."""
        if self.writer is not None and self.out and sum(map(len, self.out)) >= FLUSH_BYTES:
            data = b"".join(self.out)
            self.out.clear()
            await self.writer(data)

    async def pull_changes(self) -> None:
        """Move queued change-feed events into the view (no waiting)."""
        view, sub = self.selected, self.subscription
        if view is None or sub is None:
            return
        events, overflowed = await drain(sub)
        if overflowed:
            view.note_overflow()
        for event in events:
            view.note(event)

    async def wait_change(self) -> bool:
        """Wait for the next change-feed event and note it in the view (IDLE).

        False when there is nothing to wait on (no mailbox selected, or the feed closed).
        Cancelling it loses nothing: queued events stay queued."""
        view, sub = self.selected, self.subscription
        if view is None or sub is None:
            return False
        try:
            view.note(await sub.__anext__())
        except FeedOverflow:
            view.note_overflow()
        except StopAsyncIteration:
            return False
        return True

    async def sync(self, *, expunges: bool) -> bytes:
        """Untagged updates for the selected mailbox at a safe point."""
        view = self.selected
        if view is None:
            return b""
        await self.pull_changes()
        if view.gone:
            return b""
        return await view.sync(
            self.store, expunges=expunges, qresync=self.qresync, condstore=self.condstore,
            rev1=self.rev1,
        )

    async def idle_sync(self) -> bytes:
        """During IDLE: everything, expunges included, pushed at once (RFC 2177)."""
        try:
            data = await self.sync(expunges=True)
        except StoreError as exc:
            log.warning("IDLE update failed: %s", exc)
            return b""
        view = self.selected
        if view is not None and view.gone:
            return b"* BYE Selected mailbox was deleted\r\n"
        return data

    # -- dispatch ----------------------------------------------------------------------------
    async def execute(self, tag: str, command: Any) -> Outcome:
        from merpati.services.imap.registry import REGISTRY

        entry = REGISTRY.get(type(command))
        if entry is None or type(command) not in ALLOWED[self.state]:
            return Outcome(self._tagged(tag, "BAD", None, "Command not allowed in this state"), status="BAD")
        try:
            reply = await entry.handler(self, tag, command)
        except ImapBad as exc:
            reply = Reply("BAD", exc.text, exc.code)
        except ImapNo as exc:
            reply = Reply("NO", exc.text, exc.code)
        except TemporaryStoreError as exc:
            log.warning("IMAP %s: temporary store error: %s", type(command).__name__, exc)
            reply = Reply("NO", "Temporary server failure, try again", "UNAVAILABLE")
        except StoreError as exc:
            log.info("IMAP %s: store refused: %s", type(command).__name__, exc)
            reply = Reply("NO", "Operation failed", "CANNOT")
        if reply.action in (Action.IDLE, Action.AUTH_CONTINUE):
            data = b"".join(self.out)
            self.out.clear()
            return Outcome(data, reply.action)
        if self.selected is not None and entry.sync and reply.action is not Action.LOGOUT:
            expunges = entry.expunges or bool(getattr(command, "uid", False))
            try:
                self.out.append(await self.sync(expunges=expunges))
            except StoreError as exc:
                log.warning("IMAP sync failed: %s", exc)
            if self.selected is not None and self.selected.gone:
                self.out.append(b"* BYE Selected mailbox was deleted\r\n")
                reply = Reply("NO", "Selected mailbox was deleted", None, Action.LOGOUT) if reply.status == "OK" else reply
                reply.action = Action.LOGOUT
        self.out.append(self._tagged(tag, reply.status, reply.code, reply.text))
        data = b"".join(self.out)
        self.out.clear()
        return Outcome(data, reply.action, reply.status)

    async def _guarded(self, coro: Awaitable[Reply]) -> Reply:
        try:
            return await coro
        except ImapBad as exc:
            return Reply("BAD", exc.text, exc.code)
        except ImapNo as exc:
            return Reply("NO", exc.text, exc.code)
        except TemporaryStoreError:
            return Reply("NO", "Temporary server failure, try again", "UNAVAILABLE")
        except StoreError:
            return Reply("NO", "Operation failed", "CANNOT")

    def _finish(self, tag: str, reply: Reply) -> Outcome:
        if reply.action is not Action.AUTH_CONTINUE:
            self.out.append(self.tagged(tag, reply))
        data = b"".join(self.out)
        self.out.clear()
        return Outcome(data, reply.action, reply.status)

    async def auth_response(self, tag: str, data: bytes) -> Outcome:
        """A line of an AUTHENTICATE exchange (``AuthResponse``)."""
        from merpati.services.imap import cmd_auth

        return self._finish(tag, await self._guarded(cmd_auth.auth_response(self, tag, data)))

    def auth_cancel(self, tag: str) -> Outcome:
        self.auth = None
        return self._finish(tag, Reply("BAD", "Authentication cancelled"))

    async def append_literal(self, event: Any) -> bytes | None:
        """``AppendLiteral``: None to accept, else the tagged refusal to write."""
        from merpati.services.imap import cmd_append

        if self.state not in (State.AUTHENTICATED, State.SELECTED):
            return self.tagged(event.tag, Reply("BAD", "Command not allowed in this state"))
        reply = await self._guarded(cmd_append.check_literal(self, event))  # type: ignore[arg-type]
        return None if reply is None else self.tagged(event.tag, reply)

    async def idle_done(self, tag: str) -> bytes:
        from merpati.services.imap import cmd_idle

        return await cmd_idle.done(self, tag)

    def tagged(self, tag: str, reply: Reply) -> bytes:
        return self._tagged(tag, reply.status, reply.code, reply.text)

    @staticmethod
    def _tagged(tag: str, status: str, code: str | None, text: str) -> bytes:
        head = tag.encode("ascii", "replace") + b" " + status.encode()
        if code:
            head += b" [" + code.encode("utf-8", "replace") + b"]"
        return head + b" " + sanitize_text(text) + b"\r\n"
