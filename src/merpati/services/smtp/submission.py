"""Authenticated submission (RFC 6409 on 587 with STARTTLS, RFC 8314 on 465 with implicit TLS).

Theory of operation
-------------------
The SMTP engine (``wire.smtp``) owns the grammar, AUTH framing and the "TLS first" rule
(``require_tls``: only EHLO/HELO/STARTTLS/NOOP/QUIT before TLS; ``auth_allowed``: AUTH is
neither advertised nor accepted until the connection is secure). This session owns the policy:

* **AUTH** PLAIN and LOGIN (``wire.sasl``) through the shared ``Authenticator`` (its growing
  failure delays, the same as IMAP's). A malformed SASL response is ``501 5.5.2``, a wrong
  password ``535 5.7.8``. After STARTTLS everything from before is forgotten (RFC 3207 §4.2).
* **Only authenticated users send**: MAIL before AUTH is ``530 5.7.0``.
* **Sender ownership** (SECURITY-CASES SMTP-17, SMTP-34): the envelope sender and every
  ``From:`` address must be the user's own address (sub-addresses included) or an alias
  that points to the user, else ``553 5.7.1``. ``From:`` is read strictly: an ambiguous or
  unparsable value is refused, never mapped to a domain.
* **Limits**: recipients per message (the engine answers ``452 4.5.3``) and messages per
  hour per user (``450 4.7.1``; counted in this process).
* **End of data**: ``Date:`` and ``Message-ID:`` are added when missing (RFC 6409 §8.2,
  §8.3). Recipients in our domains are filed straight into their mailboxes by the inbound
  pipeline; the others go into the outbound queue, DKIM-signed for the sender's domain when
  a key exists. Both are committed durably before the ``250``.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from merpati.delivery import results
from merpati.delivery.envelope import ClientInfo, Envelope, LocalRecipient
from merpati.delivery.pipeline import InboundPipeline
from merpati.delivery.routing import Router, split_address
from merpati.delivery.trace import QueueIds, now, received, rfc5322_date
from merpati.mailauth import FromDomainError, author_domains
from merpati.mime.address import MISSING_DOMAIN, MISSING_MAILBOX, parse_addresses
from merpati.services.auth import Authenticator
from merpati.storage.api import MailStore, StoreError
from merpati.storage.models import Account
from merpati.queue.signing import DkimSigners
from merpati.storage.queue_api import NewMessage, NewRecipient, QueueStore
from merpati.wire import sasl
from merpati.wire.smtp import (
    AuthAbort,
    AuthData,
    AuthStart,
    DataChunk,
    DataEnd,
    DataError,
    DataStart,
    Hello,
    MailFrom,
    RcptTo,
    Reply,
    Reset,
    SmtpServer,
    StartTls,
    auth_challenge,
)
from merpati.wire.smtp import replies as R

log = logging.getLogger("merpati.submission")

AUTH_REQUIRED = Reply(530, "5.7.0", "Authentication required")
AUTH_FAILED = Reply(535, "5.7.8", "Authentication credentials invalid")
SASL_BAD = Reply(501, "5.5.2", "Invalid authentication data")
AUTHZ_REFUSED = Reply(535, "5.7.8", "Authorization identity refused")
TOO_MANY_MESSAGES = Reply(450, "4.7.1", "Error: message rate limit exceeded, try again later")
NO_FROM = Reply(550, "5.6.0", "Message has no valid From: header")
TEMP_FAIL = Reply(451, "4.3.0", "Error: queue file write error")
MAX_HEADER_SCAN = 256 * 1024


def sender_refused(address: str, account: Account) -> Reply:
    return Reply(553, "5.7.1", f"<{address}>: Sender address rejected: not owned by user {account.address}")


@dataclass(frozen=True, slots=True)
class SubmissionSettings:
    hostname: str
    max_messages_per_hour: int = 500  # 0: unlimited
    max_received: int = 100
    recipient_delimiter: str = "+"


class RateLimiter:
    """Messages per account in the last hour (sliding window), in memory, bounded."""

    def __init__(self, per_hour: int, *, clock: Callable[[], float] = time.monotonic, max_accounts: int = 100_000) -> None:
        self.per_hour = per_hour
        self._clock = clock
        self._max = max_accounts
        self._sent: OrderedDict[int, deque[float]] = OrderedDict()

    def _window(self, account_id: int) -> deque[float]:
        times = self._sent.get(account_id)
        if times is None:
            times = self._sent[account_id] = deque()
        horizon = self._clock() - 3600.0
        while times and times[0] <= horizon:
            times.popleft()
        self._sent.move_to_end(account_id)
        while len(self._sent) > self._max:
            self._sent.popitem(last=False)
        return times

    def allowed(self, account_id: int) -> bool:
        return self.per_hour <= 0 or len(self._window(account_id)) < self.per_hour

    def record(self, account_id: int) -> None:
        if self.per_hour > 0:
            self._window(account_id).append(self._clock())


def header_block(data: bytes) -> bytes:
    """The header fields (each line with its CRLF), bounded: what the checks below read."""
    end = data.find(b"\r\n\r\n", 0, MAX_HEADER_SCAN)
    return data[: end + 2] if end >= 0 else data[:MAX_HEADER_SCAN]


_FIELD_START = re.compile(rb"(?m)^([!-9;-~]+)[ \t]*:")


def field_names(block: bytes) -> set[bytes]:
    return {m.group(1).lower() for m in _FIELD_START.finditer(block)}


def field_values(block: bytes, name: bytes) -> list[str]:
    """Unfolded values of every ``name:`` field of a header block (CRLF lines)."""
    out: list[str] = []
    current: list[bytes] | None = None
    for line in block.split(b"\r\n"):
        if line[:1] in (b" ", b"\t") and current is not None:
            current.append(line)
            continue
        if current is not None:
            out.append(b"".join(current).decode("utf-8", "replace").strip())
            current = None
        key, sep, value = line.partition(b":")
        if sep and key.strip().lower() == name:
            current = [value]
    if current is not None:
        out.append(b"".join(current).decode("utf-8", "replace").strip())
    return out


def from_addresses(block: bytes) -> list[str] | None:
    """Every address of the ``From:`` field(s), or None if missing or ambiguous (SMTP-34)."""
    values = field_values(block, b"from")
    try:
        author_domains(values)
    except FromDomainError:
        return None
    addresses = []
    for raw in values:
        for _, _, mailbox, host in parse_addresses(raw, max_addresses=50):
            if host is None:
                continue
            if mailbox in (None, MISSING_MAILBOX) or host in (None, MISSING_DOMAIN):
                return None
            addresses.append(f"{mailbox}@{host}")
    return addresses or None


class SubmissionService:
    """What every submission session shares: policy, limits, signers, the queue."""

    def __init__(
        self,
        *,
        store: MailStore,
        queue: QueueStore,
        router: Router,
        pipeline: InboundPipeline,
        authenticator: Authenticator,
        settings: SubmissionSettings,
        clock: Callable[[], float] = time.time,
        limiter: RateLimiter | None = None,
        signers: DkimSigners | None = None,
    ) -> None:
        self.store = store
        self.queue = queue
        self.router = router
        self.pipeline = pipeline
        self.authenticator = authenticator
        self.settings = settings
        self.clock = clock
        self.limiter = limiter or RateLimiter(settings.max_messages_per_hour)
        self.signers = signers or DkimSigners(queue)
        self.ids = QueueIds()

    async def owns(self, account: Account, address: str) -> bool:
        """The address is the account's own (or a sub-address of it), or an alias to it."""
        local, domain = split_address(address)
        if not local or not domain:
            return False
        mine = account.address.lower()
        candidates = [f"{local}@{domain}".lower()]
        delim = self.settings.recipient_delimiter
        if delim and delim in local and not local.startswith(delim):
            candidates.append(f"{local.split(delim, 1)[0]}@{domain}".lower())
        if mine in candidates:
            return True
        for candidate in candidates:
            alias = await self.store.get_alias(candidate)
            if alias is not None and any(t.lower() == mine for t in alias.targets):
                return True
        return False

    async def submit(
        self, account: Account, client: ClientInfo, tx: Transaction, data: bytes
    ) -> Reply:
        block = header_block(data)
        names = field_names(block)
        authors = from_addresses(block)
        if authors is None:
            return NO_FROM
        for author in authors:
            if not await self.owns(account, author):
                log.info("submission from %s refused: From %s not owned", account.address, author)
                return sender_refused(author, account)
        added = b""
        if b"date" not in names:
            added += f"Date: {rfc5322_date(now())}\r\n".encode()
        queue_id = self.ids.next()
        if b"message-id" not in names:
            added += f"Message-ID: <{queue_id}.{secrets.token_hex(6)}@{self.settings.hostname}>\r\n".encode()
        content = added + data
        if tx.remote:
            trace = received(
                client=client, hostname=self.settings.hostname, queue_id=queue_id,
                recipient=tx.remote[0].address if len(tx.remote) == 1 else None, smtputf8=tx.smtputf8, when=now(),
            )
            outbound = trace + content
            outbound = self.signers.sign(await self.signers.get(split_address(tx.sender)[1]), outbound)
            try:
                await self.queue.enqueue(
                    NewMessage(
                        queue_id=queue_id, sender=tx.sender, recipients=list(tx.remote), data=outbound,
                        envid=tx.envid, ret=tx.ret, smtputf8=tx.smtputf8, body_type=tx.body_type,
                        origin=account.address,
                    ),
                    now=self.clock(),
                )
            except StoreError as exc:
                log.warning("queueing %s failed: %s", queue_id, exc)
                return TEMP_FAIL
        if tx.local:
            reply = await self._file_locally(account, client, tx, content, queue_id, queued=bool(tx.remote))
            if reply is not None:
                return reply
        self.limiter.record(account.id)
        log.info(
            "submitted id=%s user=%s from=<%s> local=%d remote=%d size=%d",
            queue_id, account.address, tx.sender, len(tx.local), len(tx.remote), len(content),
        )
        return R.ok_queued(queue_id)

    async def _file_locally(
        self, account: Account, client: ClientInfo, tx: Transaction, content: bytes, queue_id: str, *, queued: bool
    ) -> Reply | None:
        envelope = Envelope(
            client=client, sender=tx.sender, smtputf8=tx.smtputf8, body_type=tx.body_type, ret=tx.ret,
            envid=tx.envid, recipients=list(tx.local), rcpt_params=dict(tx.rcpt_params), received_at=now(),
        )
        verdict = await self.pipeline.deliver(envelope, content)
        if verdict.accepted:
            return None
        if verdict.outcome is results.Outcome.REJECT and not queued:
            return Reply(verdict.code, verdict.enhanced, verdict.text)
        # The remote part is already queued (or the store was busy): let the queue file the
        # local copies later rather than answer 4xx and get the remote copies twice.
        try:
            await self.queue.enqueue(
                NewMessage(
                    queue_id=f"{queue_id}L", sender=tx.sender,
                    recipients=[NewRecipient(r.rcpt) for r in tx.local], data=content, envid=tx.envid,
                    ret=tx.ret, smtputf8=tx.smtputf8, body_type=tx.body_type, origin=account.address,
                ),
                now=self.clock(),
            )
        except StoreError:
            return TEMP_FAIL if not queued else None
        return None


@dataclass(slots=True)
class Transaction:
    sender: str
    smtputf8: bool = False
    body_type: str | None = None
    ret: str | None = None
    envid: str | None = None
    local: list[LocalRecipient] = field(default_factory=list)
    remote: list[NewRecipient] = field(default_factory=list)
    rcpt_params: dict[str, dict[str, object]] = field(default_factory=dict)

    @property
    def count(self) -> int:
        return len(self.local) + len(self.remote)


@dataclass(slots=True)
class SubmissionSession:
    engine: SmtpServer
    service: SubmissionService
    client: ClientInfo
    account: Account | None = None
    exchange: Any = None
    tx: Transaction | None = None
    body: bytearray = field(default_factory=bytearray)

    @property
    def in_transaction(self) -> bool:
        return self.tx is not None

    async def handle(self, event: object) -> Reply | None:
        handler = HANDLERS.get(type(event))
        if handler is None:
            return None
        return await handler(self, event)

    # -- session ---------------------------------------------------------------------------------
    async def on_hello(self, event: Hello) -> Reply:
        self._reset()
        c = self.client
        self.client = ClientInfo(c.ip, c.port, event.name, event.extended, c.tls, c.authenticated_as, c.reverse_name)
        return self.engine.hello_reply()

    async def on_starttls(self, event: StartTls) -> Reply:
        self._reset()
        return R.TLS_GO

    def tls_started(self) -> None:
        """RFC 3207 §4.2: forget everything from before the handshake; AUTH is now allowed."""
        self._reset()
        self.account = None
        self.exchange = None
        c = self.client
        self.client = ClientInfo(c.ip, c.port, "", False, True, None, c.reverse_name)
        self.engine.auth_allowed = True

    async def on_reset(self, event: Reset) -> None:
        self._reset()
        return None

    def _reset(self) -> None:
        self.tx = None
        self.body.clear()

    # -- AUTH -------------------------------------------------------------------------------------
    async def on_auth_start(self, event: AuthStart) -> Reply:
        self.exchange = sasl.new_exchange(event.mechanism)
        if self.exchange is None:
            return R.AUTH_BAD_MECHANISM
        try:
            step = self.exchange.start(event.initial_response)
        except sasl.SaslError:
            self.exchange = None
            return SASL_BAD
        return await self._auth_step(step)

    async def on_auth_data(self, event: AuthData) -> Reply:
        if self.exchange is None:
            return SASL_BAD
        try:
            step = self.exchange.step(event.line)
        except sasl.SaslError:
            self.exchange = None
            return SASL_BAD
        return await self._auth_step(step)

    async def on_auth_abort(self, event: AuthAbort) -> None:
        self.exchange = None
        return None

    async def _auth_step(self, step: sasl.Step) -> Reply:
        if isinstance(step, sasl.Challenge):
            return auth_challenge(sasl.encode_base64(step.data).decode("ascii"))
        self.exchange = None
        creds = step.credentials
        if creds.authzid and creds.authzid.lower() != creds.username.lower():
            return AUTHZ_REFUSED
        account = await self.service.authenticator.authenticate(creds.username, creds.password, remote_ip=self.client.ip)
        if account is None:
            return AUTH_FAILED
        self.account = account
        c = self.client
        self.client = ClientInfo(c.ip, c.port, c.helo, c.esmtp, c.tls, account.address, c.reverse_name)
        log.info("authenticated user=%s ip=%s", account.address, c.ip)
        return R.AUTH_OK

    # -- the transaction ---------------------------------------------------------------------------
    async def on_mail(self, event: MailFrom) -> Reply:
        self._reset()
        account = self.account
        if account is None:
            return AUTH_REQUIRED
        sender = str(event.sender) if event.sender is not None else ""
        if not sender or not await self.service.owns(account, sender):
            log.info("submission from %s refused: MAIL FROM <%s> not owned", account.address, sender)
            return sender_refused(sender, account)
        if not self.service.limiter.allowed(account.id):
            return TOO_MANY_MESSAGES
        self.tx = Transaction(
            sender=sender, smtputf8=event.params.smtputf8, body_type=event.params.body,
            ret=event.params.ret, envid=event.params.envid,
        )
        return R.SENDER_OK

    async def on_rcpt(self, event: RcptTo) -> Reply:
        tx = self.tx
        assert tx is not None
        address = str(event.recipient)
        local_part, domain = split_address(address)
        if not domain:
            return Reply(550, "5.1.3", f"<{address}>: Recipient address rejected: need a fully-qualified address")
        try:
            is_local = await self.service.router.is_local_domain(domain)
        except StoreError:
            return Reply(451, "4.3.0", f"<{address}>: Temporary lookup failure")
        params = {"notify": event.params.notify, "orcpt": event.params.orcpt}
        if not is_local:
            if address.lower() not in (r.address.lower() for r in tx.remote):
                tx.remote.append(NewRecipient(address, notify=event.params.notify, orcpt=event.params.orcpt))
            return R.RECIPIENT_OK
        route = await self.service.router.route(address, forward=True)
        if not route.verdict.accepted:
            v = route.verdict
            return Reply(v.code, v.enhanced, f"<{address}>: {v.text}")
        known = {r.account_id for r in tx.local}
        for rcpt in route.recipients:
            if rcpt.account_id not in known:
                tx.local.append(rcpt)
                known.add(rcpt.account_id)
        for target in route.remote:
            if target.lower() not in (r.address.lower() for r in tx.remote):
                tx.remote.append(NewRecipient(target, notify=event.params.notify, orcpt=f"rfc822;{address}"))
        tx.rcpt_params[address] = params
        return R.RECIPIENT_OK

    async def on_data_start(self, event: DataStart) -> Reply:
        if self.tx is None or self.tx.count == 0:
            return R.NO_VALID_RECIPIENTS
        self.body.clear()
        return R.DATA_GO

    async def on_chunk(self, event: DataChunk) -> None:
        self.body += event.data
        return None

    async def on_data_end(self, event: DataEnd) -> Reply:
        tx, data = self.tx, bytes(self.body)
        self._reset()
        if event.error is DataError.TOO_BIG:
            return R.TOO_BIG
        if event.error is DataError.BARE_LINE_ENDING:
            return R.BARE_LF
        if tx is None or tx.count == 0 or self.account is None:
            return R.NO_VALID_RECIPIENTS
        if len(re.findall(rb"(?im)^received:", header_block(data))) > self.service.settings.max_received:
            return Reply(554, "5.4.6", "Too many hops (mail loop?)")
        return await self.service.submit(self.account, self.client, tx, data)


HANDLERS = {
    Hello: SubmissionSession.on_hello,
    MailFrom: SubmissionSession.on_mail,
    RcptTo: SubmissionSession.on_rcpt,
    DataStart: SubmissionSession.on_data_start,
    DataChunk: SubmissionSession.on_chunk,
    DataEnd: SubmissionSession.on_data_end,
    StartTls: SubmissionSession.on_starttls,
    AuthStart: SubmissionSession.on_auth_start,
    AuthData: SubmissionSession.on_auth_data,
    AuthAbort: SubmissionSession.on_auth_abort,
    Reset: SubmissionSession.on_reset,
}

__all__ = [
    "RateLimiter",
    "SubmissionService",
    "SubmissionSession",
    "SubmissionSettings",
    "Transaction",
    "from_addresses",
]
