"""One SMTP transaction to one server: the outbound client.

Why our own client and not aiosmtplib: aiosmtplib (5.x) discards bytes buffered after the
STARTTLS ``220`` (it passes SECURITY-CASES SMTP-14), but it has no PIPELINING (RFC 2920:
MAIL, every RCPT and DATA in one round trip) and reports recipients one call at a time.
This client pipelines where offered, passes DSN (RFC 3461), SMTPUTF8 (RFC 6531), 8BITMIME
and SIZE parameters on, and gives one outcome per recipient.

Outcomes
--------
``deliver`` returns a ``TransactionResult``:

* ``hop_error`` set: the server could not be used at all (connect, greeting, EHLO, TLS,
  MAIL 4xx, a timeout or garbage before the recipients were answered, the connection lost).
  The caller tries the next address / MX host and finally defers.
* otherwise one ``RcptOutcome`` per recipient: delivered (2xx to DATA's end), deferred (4xx,
  or the connection broke after RCPT), failed (5xx). A message that needs SMTPUTF8 and a
  server without it fail permanently with ``5.6.7`` (RFC 6531 §3.2 and Postfix), as does a
  message over the server's announced SIZE (``5.3.4``).

Sessions: ``open_session`` (greeting, EHLO, STARTTLS, AUTH) and ``transact`` (one
transaction) let the runner send several messages over one connection (``queue.sessions``);
``deliver`` is both plus QUIT. After ``send`` returns, the session is at a transaction
boundary (every path ends MAIL/RCPT/DATA, or sent nothing), so the next MAIL may follow.

Timeouts are RFC 5321 §4.5.3.2 per command (``ClientTimeouts``). A timeout after the final
``.`` is a temporary failure: the server may have accepted, and a duplicate is preferred to a
loss (RFC 5321 §6.1).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import ssl
from dataclasses import dataclass, field

from merpati.queue.dialer import Connection, ConnectionClosed
from merpati.queue.smtp_wire import (
    ReplyError,
    ReplyParser,
    ServerReply,
    dot_stuff,
    needs_smtputf8,
    orcpt_param,
    parse_ehlo,
    size_limit,
    xtext,
)

log = logging.getLogger("merpati.queue")


@dataclass(frozen=True, slots=True)
class ClientTimeouts:
    """RFC 5321 §4.5.3.2 (seconds)."""

    greeting: float = 300.0
    command: float = 300.0  # EHLO, MAIL, RCPT, RSET, STARTTLS, AUTH
    data_init: float = 120.0
    data_block: float = 180.0
    data_done: float = 600.0
    tls_handshake: float = 60.0
    quit: float = 5.0


@dataclass(frozen=True, slots=True)
class ClientSettings:
    helo_name: str
    timeouts: ClientTimeouts = field(default_factory=ClientTimeouts)
    tls_context: ssl.SSLContext | None = None  # None: never STARTTLS
    require_tls: bool = False  # refuse to send in plaintext (a smarthost with credentials)
    username: str = ""  # AUTH PLAIN at a smarthost (only over TLS)
    password: str = ""


@dataclass(frozen=True, slots=True)
class OutboundRecipient:
    address: str
    notify: tuple[str, ...] | None = None
    orcpt: str | None = None


@dataclass(frozen=True, slots=True)
class OutboundEnvelope:
    sender: str
    recipients: tuple[OutboundRecipient, ...]
    envid: str | None = None
    ret: str | None = None
    body_type: str | None = None  # "8BITMIME" passes BODY=8BITMIME on
    smtputf8: bool = False  # the message needs SMTPUTF8 (besides non-ASCII addresses)


@dataclass(frozen=True, slots=True)
class RcptOutcome:
    kind: str  # "delivered" / "deferred" / "failed"
    code: int | None
    status: str | None
    text: str


@dataclass(frozen=True, slots=True)
class HopError:
    text: str
    code: int | None = None
    status: str | None = None
    permanent: bool = False


@dataclass(slots=True)
class TransactionResult:
    hop_error: HopError | None = None
    outcomes: list[RcptOutcome] = field(default_factory=list)
    tls: bool = False
    extensions: dict[str, str] = field(default_factory=dict)


class _HopFailed(Exception):
    def __init__(self, error: HopError) -> None:
        super().__init__(error.text)
        self.error = error


def _outcome(reply: ServerReply) -> RcptOutcome:
    kind = "delivered" if reply.is_success else ("deferred" if reply.is_temporary else "failed")
    status = reply.enhanced or (f"{str(reply.code)[0]}.0.0" if reply.code >= 400 else "2.0.0")
    return RcptOutcome(kind, reply.code, status, str(reply))


def _all(n: int, outcome: RcptOutcome) -> list[RcptOutcome]:
    return [outcome] * n


class SmtpSession:
    """The client side of one connection: opened once, then one or more transactions."""

    def __init__(self, conn: Connection, settings: ClientSettings, *, server_name: str) -> None:
        self._conn = conn
        self._settings = settings
        self._server_name = server_name  # for SNI / logging: the MX host name
        self._parser = ReplyParser()
        self._loop = asyncio.get_running_loop()
        self.caps: dict[str, str] = {}
        self.opened_at = self._loop.time()
        self.messages = 0  # transactions completed on this connection
        self.data_sent = False  # the current transaction's message went out (a retry may duplicate it)
        self.broken = False  # a transaction failed midway: never reuse

    @property
    def tls(self) -> bool:
        return self._conn.tls

    @property
    def reusable(self) -> bool:
        """At a transaction boundary, and the connection is still open with nothing unread."""
        return not self.broken and not self._conn.closed and not self._parser.buffered and not self._conn.pending

    def abort(self) -> None:
        self.broken = True
        self._conn.abort()

    async def _reply(self, timeout: float, what: str) -> ServerReply:
        deadline = self._loop.time() + timeout
        while True:
            reply = self._parser.next_reply()
            if reply is not None:
                return reply
            try:
                data = await self._conn.read(deadline)
            except TimeoutError:
                raise _HopFailed(HopError(f"timeout waiting for the reply to {what}", 421, "4.4.2")) from None
            except ConnectionClosed:
                raise _HopFailed(HopError(f"connection lost waiting for the reply to {what}", 421, "4.4.2")) from None
            try:
                self._parser.feed(data)
            except ReplyError as exc:
                raise _HopFailed(HopError(f"bad reply to {what}: {exc}", 421, "4.5.0")) from None

    async def _write(self, data: bytes, timeout: float, what: str) -> None:
        try:
            await self._conn.write(data, self._loop.time() + timeout)
        except TimeoutError:
            raise _HopFailed(HopError(f"timeout sending {what}", 421, "4.4.2")) from None
        except (ConnectionClosed, OSError) as exc:
            raise _HopFailed(HopError(f"connection lost sending {what}: {exc}", 421, "4.4.2")) from None

    async def _command(self, line: str, timeout: float, what: str) -> ServerReply:
        await self._write(line.encode("utf-8") + b"\r\n", timeout, what)
        return await self._reply(timeout, what)

    # -- the phases ----------------------------------------------------------------------------
    async def _hello(self) -> None:
        t = self._settings.timeouts
        reply = await self._command(f"EHLO {self._settings.helo_name}", t.command, "EHLO")
        if reply.code == 250:
            self.caps = parse_ehlo(reply)
            return
        if reply.code >= 500 and not self._conn.tls:
            reply = await self._command(f"HELO {self._settings.helo_name}", t.command, "HELO")
            if reply.code == 250:
                self.caps = {}
                return
        raise _HopFailed(HopError(f"EHLO refused: {reply}", reply.code, reply.enhanced))

    async def open(self) -> None:
        """Greeting, EHLO, STARTTLS (opportunistic), EHLO again, AUTH at a smarthost."""
        t = self._settings.timeouts
        greeting = await self._reply(t.greeting, "the greeting")
        if greeting.code != 220:
            raise _HopFailed(HopError(f"greeting: {greeting}", greeting.code, greeting.enhanced))
        await self._hello()
        context = self._settings.tls_context
        if "STARTTLS" in self.caps and context is not None:
            reply = await self._command("STARTTLS", t.command, "STARTTLS")
            if reply.code == 220:
                # SMTP-14: whatever the server sent after its 220 (in the same segment or not)
                # is plaintext from before the handshake: never read it as a reply.
                self._parser.discard()
                try:
                    await self._conn.start_tls(context, server_hostname=self._server_name or None, timeout=t.tls_handshake)
                except (ssl.SSLError, OSError, ConnectionClosed, asyncio.TimeoutError) as exc:
                    raise _HopFailed(HopError(f"TLS handshake failed: {exc}", 421, "4.7.5", permanent=False)) from None
                self._parser.discard()
                self.caps = {}
                await self._hello()  # capabilities only from inside TLS (RFC 3207 §4.2)
            elif self._settings.require_tls:
                raise _HopFailed(HopError(f"STARTTLS refused: {reply}", reply.code, "4.7.5"))
        elif self._settings.require_tls and not self._conn.tls:
            raise _HopFailed(HopError("TLS required but STARTTLS not offered", 421, "4.7.5"))
        if self._settings.username:
            await self._auth()

    async def _auth(self) -> None:
        t = self._settings.timeouts
        if not self._conn.tls:
            raise _HopFailed(HopError("refusing to send credentials without TLS", 421, "4.7.5"))
        mechanisms = self.caps.get("AUTH", "").upper().split()
        if "PLAIN" not in mechanisms:
            raise _HopFailed(HopError("the relay offers no AUTH PLAIN", 421, "4.7.5"))
        token = base64.b64encode(
            b"\x00" + self._settings.username.encode("utf-8") + b"\x00" + self._settings.password.encode("utf-8")
        ).decode("ascii")
        reply = await self._command(f"AUTH PLAIN {token}", t.command, "AUTH")
        if reply.code != 235:
            raise _HopFailed(HopError(f"authentication at the relay failed: {reply}", 421, "4.7.0"))

    def _mail_line(self, envelope: OutboundEnvelope, size: int, utf8: bool) -> str:
        params = []
        if "SIZE" in self.caps:
            params.append(f"SIZE={size}")
        if envelope.body_type and envelope.body_type.upper() == "8BITMIME" and "8BITMIME" in self.caps:
            params.append("BODY=8BITMIME")
        if utf8:
            params.append("SMTPUTF8")
        if "DSN" in self.caps:
            if envelope.ret in ("FULL", "HDRS"):
                params.append(f"RET={envelope.ret}")
            if envelope.envid:
                params.append(f"ENVID={xtext(envelope.envid)}")
        return " ".join([f"MAIL FROM:<{envelope.sender}>", *params])

    def _rcpt_line(self, rcpt: OutboundRecipient) -> str:
        params = []
        if "DSN" in self.caps:
            if rcpt.notify:
                params.append("NOTIFY=" + ",".join(rcpt.notify))
            if rcpt.orcpt:
                value = orcpt_param(rcpt.orcpt)
                if value:
                    params.append(f"ORCPT={value}")
        return " ".join([f"RCPT TO:<{rcpt.address}>", *params])

    async def send(self, envelope: OutboundEnvelope, data: bytes) -> list[RcptOutcome]:
        t = self._settings.timeouts
        n = len(envelope.recipients)
        utf8 = envelope.smtputf8 or needs_smtputf8(envelope.sender, [r.address for r in envelope.recipients])
        if utf8 and "SMTPUTF8" not in self.caps:
            return _all(n, RcptOutcome("failed", 553, "5.6.7", "SMTPUTF8 is required, but was not offered by the host"))
        limit = size_limit(self.caps)
        if limit is not None and len(data) > limit:
            return _all(n, RcptOutcome("failed", 552, "5.3.4", f"message size exceeds the host's limit of {limit}"))
        mail = self._mail_line(envelope, len(data), utf8)
        rcpts = [self._rcpt_line(r) for r in envelope.recipients]
        pipelining = "PIPELINING" in self.caps
        if pipelining:
            batch = "\r\n".join([mail, *rcpts, "DATA"]) + "\r\n"
            await self._write(batch.encode("utf-8"), t.command, "MAIL/RCPT/DATA")
            mail_reply = await self._reply(t.command, "MAIL FROM")
            rcpt_replies = [await self._reply(t.command, "RCPT TO") for _ in rcpts]
            data_reply = await self._reply(t.data_init, "DATA")
        else:
            mail_reply = await self._command(mail, t.command, "MAIL FROM")
            rcpt_replies = []
            data_reply = None
            if mail_reply.is_success:
                for line in rcpts:
                    rcpt_replies.append(await self._command(line, t.command, "RCPT TO"))
        if not mail_reply.is_success:
            if mail_reply.is_temporary:
                raise _HopFailed(HopError(f"MAIL FROM: {mail_reply}", mail_reply.code, mail_reply.enhanced))
            if data_reply is not None and data_reply.code == 354:
                await self._write(b".\r\n", t.data_block, "end of data")
                await self._reply(t.data_done, "end of data")
            return _all(n, _outcome(mail_reply))
        outcomes = [_outcome(r) for r in rcpt_replies]
        accepted = [i for i, r in enumerate(rcpt_replies) if r.is_success]
        if not accepted:
            if data_reply is not None and data_reply.code == 354:  # a broken server: end it empty
                await self._write(b".\r\n", t.data_block, "end of data")
                await self._reply(t.data_done, "end of data")
            return outcomes
        if data_reply is None:
            data_reply = await self._command("DATA", t.data_init, "DATA")
        if data_reply.code != 354:
            for i in accepted:
                outcomes[i] = _outcome(data_reply) if data_reply.code >= 400 else RcptOutcome(
                    "deferred", data_reply.code, "4.5.0", f"unexpected reply to DATA: {data_reply}"
                )
            return outcomes
        self.data_sent = True
        await self._write(dot_stuff(data) + b".\r\n", max(t.data_block, len(data) / 50_000), "the message")
        final = await self._reply(t.data_done, "end of data")
        for i in accepted:
            outcomes[i] = _outcome(final)
        return outcomes

    async def quit(self) -> None:
        self.broken = True
        try:
            if not self._conn.closed:
                await self._command("QUIT", self._settings.timeouts.quit, "QUIT")
        except _HopFailed:
            pass
        finally:
            self._conn.close()


async def open_session(
    conn: Connection, settings: ClientSettings, *, server_name: str
) -> tuple[SmtpSession, HopError | None]:
    """Greeting, EHLO, STARTTLS, AUTH on a connected socket. On a hop error the socket is closed."""
    session = SmtpSession(conn, settings, server_name=server_name)
    try:
        await session.open()
    except _HopFailed as failed:
        session.abort()
        return session, failed.error
    except Exception as exc:  # noqa: BLE001 - a bug or an odd socket error must not kill the runner
        log.exception("outbound session to %s failed", server_name)
        session.abort()
        return session, HopError(f"local error: {exc!r}", 451, "4.3.0")
    return session, None


async def transact(session: SmtpSession, envelope: OutboundEnvelope, data: bytes) -> TransactionResult:
    """One transaction on an open session. Never raises for the server's faults; after a hop
    error the connection is closed (``session.data_sent`` tells whether the message went out)."""
    result = TransactionResult(tls=session.tls, extensions=dict(session.caps))
    session.data_sent = False
    try:
        result.outcomes = await session.send(envelope, data)
        session.messages += 1
    except _HopFailed as failed:
        result.hop_error = failed.error
        session.abort()
    except Exception as exc:  # noqa: BLE001
        log.exception("outbound transaction to %s failed", session._server_name)
        result.hop_error = HopError(f"local error: {exc!r}", 451, "4.3.0")
        session.abort()
    return result


async def deliver(
    conn: Connection, settings: ClientSettings, envelope: OutboundEnvelope, data: bytes, *, server_name: str
) -> TransactionResult:
    """Run one transaction on a connected socket and close it. Never raises for the server's faults."""
    session, error = await open_session(conn, settings, server_name=server_name)
    if error is not None:
        return TransactionResult(hop_error=error)
    result = await transact(session, envelope, data)
    if result.hop_error is None:
        await session.quit()
    return result
