"""The inbound pipeline: RCPT-time routing, then at end of data: parse once, trace, file.

Targets follow start → add recipient → body → commit: here the only target is the local
mailbox store, committed in one atomic, durable ``MailStore.deliver`` call for every recipient
of the transaction. Its return is what allows the session to answer ``250``.
Content checks (``delivery.checks``) run first when the session hands in its check session
(``screening``): they may refuse the transaction, or say per recipient which mailbox (INBOX or
Junk) and which verdict headers (after our ``Received:``) each copy gets.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass

from merpati.delivery import results, trace
from merpati.delivery.checks.pipeline import CheckSession, Filing
from merpati.delivery.envelope import Envelope
from merpati.delivery.results import Verdict
from merpati.delivery.routing import Route, Router
from merpati.mime import MimeLimitError, MimeLimits, parse_message
from merpati.storage.api import MailStore, OverQuota, StoreError
from merpati.storage.models import INBOX, Delivery, MessageEnvelope
from merpati.storage.queue_api import NewMessage, NewRecipient

log = logging.getLogger("merpati.delivery")

TOO_MANY_HOPS = results.reject("Too many hops (mail loop?)", code=554, enhanced="5.4.6")
TOO_COMPLEX = results.reject("Message structure exceeds limits", code=554, enhanced="5.6.0")
STORE_FAILED = results.tempfail("Error: queue file write error")
# A recipient over its quota (RFC 3463 X.2.2): temporary, the sender retries once mail is removed.
MAILBOX_FULL = results.tempfail("Mailbox full", code=452, enhanced="4.2.2")
DELIVERED_LOOP = results.reject("Mail forwarding loop detected", code=554, enhanced="5.4.6")
_RECEIVED = re.compile(rb"(?im)^received:")


@dataclass(frozen=True, slots=True)
class PipelineSettings:
    hostname: str
    max_received: int = 100
    mime_limits: MimeLimits = MimeLimits()


class InboundPipeline:
    def __init__(self, *, store: MailStore, router: Router, settings: PipelineSettings) -> None:
        self._store = store
        self._router = router
        self._settings = settings
        self._ids = trace.QueueIds()
        self._queue = getattr(store, "queue", None)  # the outbound queue: remote alias targets go there

    async def route_recipient(self, address: str) -> Route:
        return await self._router.route(address, forward=self._queue is not None)

    async def deliver(self, envelope: Envelope, data: bytes, *, screening: CheckSession | None = None) -> Verdict:
        """File the message for every recipient of the envelope, durably, or say why not."""
        when = envelope.received_at or trace.now()
        queue_id = self._ids.next()
        if envelope.forward and not envelope.recipients:
            return await self._forward(envelope, data, queue_id=queue_id, when=when)
        filings: dict[int, Filing] | None = None
        if screening is not None:
            outcome = await screening.data(data, envelope.recipients)
            if outcome.refusal is not None:
                r = outcome.refusal
                log.info("refused id=%s from=<%s> by %s: %s %s", queue_id, envelope.sender, r.check, r.code, r.text)
                make = results.tempfail if (r.code or 550) < 500 else results.reject
                return make(r.text, code=r.code or 550, enhanced=r.enhanced or "5.7.1")
            filings = outcome.filings
            data = outcome.data if outcome.data is not None else data
        try:
            deliveries = self._compose(envelope, data, queue_id=queue_id, when=when, filings=filings)
        except MimeLimitError as exc:
            log.info("rejected %s: %s", queue_id, exc)
            return TOO_COMPLEX
        except _Refused as refused:
            return refused.verdict
        if not deliveries:
            return DELIVERED_LOOP
        try:
            await self._store.deliver(deliveries)
        except OverQuota as exc:
            log.info("delivery of %s refused: %s", queue_id, exc)
            return MAILBOX_FULL
        except StoreError as exc:
            log.warning("delivery of %s failed: %s", queue_id, exc)
            return STORE_FAILED
        except Exception:
            log.exception("delivery of %s failed", queue_id)
            return STORE_FAILED
        log.info(
            "delivered id=%s from=<%s> to=%s size=%d",
            queue_id, envelope.sender, ",".join(r.mailbox_address for r in envelope.recipients), len(data),
        )
        if envelope.forward:
            forwarded = await self._forward(envelope, data, queue_id=queue_id, when=when)
            if not forwarded.accepted:
                return forwarded
        return results.accept(f"Ok: queued as {queue_id}", enhanced="2.0.0")

    async def _forward(self, envelope: Envelope, data: bytes, *, queue_id: str, when) -> Verdict:
        """Remote alias targets: into the outbound queue (the queue is a target too), durably."""
        if self._queue is None:
            return results.NO_FORWARDING
        received = trace.received(
            client=envelope.client, hostname=self._settings.hostname, queue_id=queue_id,
            recipient=None, smtputf8=envelope.smtputf8, when=when,
        )
        blob = received + data
        end = blob.find(b"\r\n\r\n")
        if len(_RECEIVED.findall(blob[: end if end >= 0 else len(blob)])) > self._settings.max_received:
            return TOO_MANY_HOPS
        message = NewMessage(
            queue_id=f"{queue_id}F", sender=envelope.sender,
            recipients=[NewRecipient(target) for target in envelope.forward], data=blob,
            envid=envelope.envid, ret=envelope.ret, smtputf8=envelope.smtputf8, body_type=envelope.body_type,
        )
        try:
            await self._queue.enqueue(message, now=time.time())
        except StoreError as exc:
            log.warning("queueing the forwarded copy of %s failed: %s", queue_id, exc)
            return STORE_FAILED
        log.info("forwarded id=%s from=<%s> to=%s", queue_id, envelope.sender, ",".join(envelope.forward))
        return results.accept(f"Ok: queued as {queue_id}", enhanced="2.0.0")

    def _compose(
        self, envelope: Envelope, data: bytes, *, queue_id: str, when, filings: dict[int, Filing] | None = None
    ) -> list[Delivery]:
        single = envelope.recipients[0].rcpt if len(envelope.recipients) == 1 else None
        received = trace.received(
            client=envelope.client, hostname=self._settings.hostname, queue_id=queue_id,
            recipient=single, smtputf8=envelope.smtputf8, when=when,
        )
        shared = received + data
        head = trace.return_path(envelope.sender, smtputf8=envelope.smtputf8)
        deliveries: list[Delivery] = []
        for index, rcpt in enumerate(envelope.recipients):
            filing = filings.get(rcpt.account_id) if filings else None
            body = shared if filing is None else received + filing.headers + data
            blob = head + trace.delivered_to(rcpt.mailbox_address) + body
            parsed = parse_message(blob, limits=self._settings.mime_limits)
            if index == 0 and parsed.received_count > self._settings.max_received:
                raise _Refused(TOO_MANY_HOPS)
            if _already_delivered(parsed.header_fields("Delivered-To"), rcpt.mailbox_address):
                log.info("dropping looping copy %s for %s", queue_id, rcpt.mailbox_address)
                continue
            deliveries.append(Delivery(
                account_id=rcpt.account_id, data=blob, parsed=parsed, internaldate=when,
                envelope=_stored_envelope(envelope, rcpt.rcpt),
                mailbox=(filing.mailbox if filing is not None and filing.mailbox else INBOX),
            ))
        return deliveries


def _stored_envelope(envelope: Envelope, rcpt: str) -> MessageEnvelope:
    """What the queue needs later to honour DSN requests (RFC 3461) for this copy."""
    params = envelope.rcpt_params.get(rcpt, {})
    notify = params.get("notify")
    orcpt = params.get("orcpt")
    client = envelope.client
    return MessageEnvelope(
        sender=envelope.sender,
        recipient=rcpt,
        original_recipient=orcpt if isinstance(orcpt, str) else None,
        notify=tuple(notify) if isinstance(notify, (tuple, list)) else None,
        ret=envelope.ret,
        envid=envelope.envid,
        received_from=f"{client.helo} [{client.ip}]",
    )


class _Refused(Exception):
    def __init__(self, verdict: Verdict) -> None:
        super().__init__(verdict.text)
        self.verdict = verdict


def _already_delivered(values: list[str], address: str) -> bool:
    """The first Delivered-To is ours; another naming the same mailbox means a loop."""
    target = address.strip().lower()
    return sum(1 for v in values if v.strip().lower() == target) > 1
