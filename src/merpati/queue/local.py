"""Queued mail for our own domains: filed through the inbound pipeline, not over SMTP.

DSNs to our own users and local copies that could not be filed at submission time end up
here. Each recipient is routed as on the MX (unknown user → permanent failure; a store
error → temporary), then every mailbox of the message is filed in one durable commit.
"""

from __future__ import annotations

from collections.abc import Sequence

from merpati.delivery import results
from merpati.delivery.envelope import ClientInfo, Envelope
from merpati.delivery.pipeline import InboundPipeline
from merpati.delivery.routing import Router
from merpati.delivery.trace import now
from merpati.queue.client import RcptOutcome

_KIND = {results.Outcome.ACCEPT: "delivered", results.Outcome.TEMPFAIL: "deferred", results.Outcome.REJECT: "failed"}


class PipelineLocalDelivery:
    def __init__(self, router: Router, pipeline: InboundPipeline, *, hostname: str) -> None:
        self._router = router
        self._pipeline = pipeline
        self._hostname = hostname

    async def is_local(self, domain: str) -> bool:
        return await self._router.is_local_domain(domain)

    async def deliver(self, sender: str, recipients: Sequence[str], data: bytes) -> list[RcptOutcome]:
        outcomes: list[RcptOutcome | None] = [None] * len(recipients)
        utf8 = not sender.isascii() or not all(r.isascii() for r in recipients)
        envelope = Envelope(
            client=ClientInfo("127.0.0.1", 0, helo=self._hostname, esmtp=True), sender=sender, smtputf8=utf8,
            received_at=now(),
        )
        pending: list[int] = []
        known: set[int] = set()
        for index, address in enumerate(recipients):
            route = await self._router.route(address)
            verdict = route.verdict
            if not verdict.accepted:
                outcomes[index] = RcptOutcome(
                    _KIND[verdict.outcome], verdict.code, verdict.enhanced, f"{verdict.code} {verdict.enhanced} {verdict.text}"
                )
                continue
            pending.append(index)
            for rcpt in route.recipients:
                if rcpt.account_id not in known:
                    known.add(rcpt.account_id)
                    envelope.recipients.append(rcpt)
        if envelope.recipients:
            verdict = await self._pipeline.deliver(envelope, data)
            outcome = RcptOutcome(
                _KIND[verdict.outcome], verdict.code, verdict.enhanced, f"{verdict.code} {verdict.enhanced} {verdict.text}"
            )
            for index in pending:
                outcomes[index] = outcome
        return [o or RcptOutcome("deferred", 451, "4.3.0", "451 4.3.0 not filed") for o in outcomes]
