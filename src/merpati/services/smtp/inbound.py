"""The MX session: turns SMTP engine events into routing and delivery decisions.

Theory of operation: ``merpati.wire.smtp.SmtpServer`` owns the grammar, the command order and
every reply it can give by itself (syntax, sequence, limits, pipelining). This session owns the
policy: who may receive mail here (RCPT routing), and the end-of-data commit. It never touches
sockets: ``net`` feeds it events and writes the replies it returns, in order.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from merpati.delivery import results
from merpati.delivery.checks.pipeline import CheckPipeline, CheckSession
from merpati.delivery.envelope import ClientInfo, Envelope, LocalRecipient
from merpati.delivery.pipeline import InboundPipeline
from merpati.delivery.results import Verdict
from merpati.delivery.trace import now
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
)

log = logging.getLogger("merpati.smtp")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _always() -> bool:
    return True


@dataclass(frozen=True, slots=True)
class SessionPolicy:
    trusted_networks: tuple[Network, ...] = ()
    space_ok: Callable[[], bool] = _always  # False → 452 4.3.1 at MAIL (SECURITY-CASES STORE-05)
    checks: CheckPipeline | None = None  # content and sender checks (delivery.checks); None: none


def parse_networks(specs: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(s, strict=False) for s in specs)


def verdict_reply(verdict: Verdict, *, subject: str | None = None) -> Reply:
    text = f"<{subject}>: {verdict.text}" if subject is not None else verdict.text
    return Reply(verdict.code, verdict.enhanced, text)


@dataclass(slots=True)
class InboundSession:
    engine: SmtpServer
    pipeline: InboundPipeline
    client: ClientInfo
    policy: SessionPolicy = field(default_factory=SessionPolicy)
    envelope: Envelope | None = None
    body: bytearray = field(default_factory=bytearray)
    screening: CheckSession | None = None  # this connection's check session, made in on_connect

    @property
    def trusted(self) -> bool:
        if not self.policy.trusted_networks:
            return False
        try:
            ip = ipaddress.ip_address(self.client.ip)
        except ValueError:
            return False
        return any(ip in net for net in self.policy.trusted_networks)

    @property
    def in_transaction(self) -> bool:
        return self.envelope is not None

    async def handle(self, event: object) -> Reply | None:
        """The reply to a decision event, or None for informative events."""
        handler = HANDLERS.get(type(event))
        if handler is None:
            return None
        return await handler(self, event)

    async def on_connect(self, pregreet: bytes = b"") -> None:
        """Before the banner (net calls it): connect-stage checks; ``pregreet`` is what the
        client sent before the banner. Their refusals are answered at MAIL FROM."""
        if self.policy.checks is not None:
            self.screening = self.policy.checks.session(self.client, trusted=self.trusted)
            await self.screening.connect(pregreet)

    async def on_hello(self, event: Hello) -> Reply:
        self._reset()
        c = self.client
        self.client = ClientInfo(c.ip, c.port, event.name, event.extended, c.tls, c.authenticated_as, c.reverse_name)
        if self.screening is not None:
            await self.screening.hello(self.client)
        return self.engine.hello_reply()

    async def on_mail(self, event: MailFrom) -> Reply:
        self._reset()
        if not self.policy.space_ok():
            return Reply(452, "4.3.1", "Insufficient system storage")
        self.envelope = Envelope(
            client=self.client,
            sender=str(event.sender) if event.sender is not None else "",
            smtputf8=event.params.smtputf8,
            body_type=event.params.body,
            ret=event.params.ret,
            envid=event.params.envid,
        )
        if self.screening is not None:
            refusal = await self.screening.mail(self.envelope.sender)
            if refusal is not None:
                self._reset()
                return Reply(refusal.code or 550, refusal.enhanced, refusal.text)
        return Reply(250, "2.1.0", "Ok")

    async def on_rcpt(self, event: RcptTo) -> Reply:
        assert self.envelope is not None
        address = str(event.recipient)
        route = await self.pipeline.route_recipient(address)
        verdict = route.verdict
        if verdict == results.RELAY_DENIED and self.trusted:
            verdict = results.NO_FORWARDING
        if not verdict.accepted:
            log.info("rcpt refused ip=%s to=<%s>: %d %s", self.client.ip, address, verdict.code, verdict.text)
            return verdict_reply(verdict, subject=address)
        if self.screening is not None:
            refusal = await self.screening.rcpt(address, route.recipients)
            if refusal is not None:
                return Reply(refusal.code or 550, refusal.enhanced, f"<{address}>: {refusal.text}")
        _add_recipients(self.envelope, route.recipients)
        self.envelope.forward.extend(t for t in route.remote if t not in self.envelope.forward)
        self.envelope.rcpt_params[address] = {"notify": event.params.notify, "orcpt": event.params.orcpt}
        return Reply(250, "2.1.5", "Ok")

    async def on_data_start(self, event: DataStart) -> Reply:
        if self.envelope is None or not (self.envelope.recipients or self.envelope.forward):
            return Reply(554, "5.5.1", "Error: no valid recipients")
        self.body.clear()
        return Reply(354, None, "End data with <CR><LF>.<CR><LF>")

    async def on_chunk(self, event: DataChunk) -> None:
        self.body += event.data
        return None

    async def on_data_end(self, event: DataEnd) -> Reply:
        envelope, data = self.envelope, bytes(self.body)
        self._reset()
        if event.error is DataError.TOO_BIG:
            return Reply(552, "5.3.4", "Error: message file too big")
        if event.error is DataError.BARE_LINE_ENDING:
            return Reply(550, "5.5.2", "Error: bare <CR> or <LF> received")
        if envelope is None or not (envelope.recipients or envelope.forward):
            return Reply(554, "5.5.1", "Error: no valid recipients")
        envelope.received_at = now()
        envelope.client = self.client
        return verdict_reply(await self.pipeline.deliver(envelope, data, screening=self.screening))

    async def on_starttls(self, event: StartTls) -> Reply:
        self._reset()
        return Reply(220, "2.0.0", "Ready to start TLS")

    async def on_auth(self, event: object) -> Reply:
        return Reply(503, "5.5.1", "Error: authentication not enabled")

    async def on_reset(self, event: Reset) -> None:
        self._reset()
        if self.screening is not None:
            self.screening.reset()
        return None

    def tls_started(self) -> None:
        self._reset()
        c = self.client
        self.client = ClientInfo(c.ip, c.port, "", False, True, c.authenticated_as, c.reverse_name)
        if self.screening is not None:
            self.screening.tls_started(self.client)

    def _reset(self) -> None:
        self.envelope = None
        self.body.clear()


def _add_recipients(envelope: Envelope, found: list[LocalRecipient]) -> None:
    known = {r.account_id for r in envelope.recipients}
    for rcpt in found:
        if rcpt.account_id not in known:  # one copy per mailbox, as Postfix's duplicate filter
            envelope.recipients.append(rcpt)
            known.add(rcpt.account_id)


HANDLERS = {
    Hello: InboundSession.on_hello,
    MailFrom: InboundSession.on_mail,
    RcptTo: InboundSession.on_rcpt,
    DataStart: InboundSession.on_data_start,
    DataChunk: InboundSession.on_chunk,
    DataEnd: InboundSession.on_data_end,
    StartTls: InboundSession.on_starttls,
    AuthStart: InboundSession.on_auth,
    AuthData: InboundSession.on_auth,
    Reset: InboundSession.on_reset,
}
