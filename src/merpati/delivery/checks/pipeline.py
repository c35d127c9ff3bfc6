"""The check pipeline: runs checks stage by stage and turns their results into decisions.

Theory of operation
-------------------
* ``CheckPipeline`` is built once per server from the configured checks and policy; it hands
  out one ``CheckSession`` per SMTP connection. A check is any object with a ``name`` and some
  of the stage methods ``on_connect``, ``on_helo``, ``on_mail``, ``on_rcpt``, ``on_data``
  (``async def on_x(ctx) -> Result | list[Result] | None``), plus optionally
  ``on_data_recipient(ctx, rcpt)`` for per-mailbox verdicts (the Bayesian filter).
* Checks of a stage run in configuration order and stop at the first reject or tempfail;
  checks marked ``concurrent = True`` (network engines: rspamd, clamd, sender
  authentication) run together after the others, at the same stage.
* Connect and HELO decisions are delayed (Postfix ``smtpd_delay_reject``, postscreen's
  ``enforce``): they are answered at MAIL FROM, and at every later MAIL FROM of the session.
* A check that raises (``CheckUnavailable`` for an engine that is down, slow or talks
  garbage; anything else is a bug, logged with its traceback) gets the failure policy:
  ``tempfail`` (451 4.7.1, the default: never accept mail unchecked by surprise) or
  ``accept`` (the message goes on and its Merpati-Verdict header says the check was skipped).
* At end of data every result of the transaction is summed per recipient mailbox; the verdict
  is reject (a check rejected, or every mailbox's score reached ``reject_score``), junk (a
  check quarantined, or the score reached ``junk_score``) or inbox. Every delivered copy gets
  ``X-Spam-Status`` and ``Merpati-Verdict`` headers naming each contributing check, its score
  and why (see ``verdict``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from merpati.delivery.checks import verdict as verdict_mod
from merpati.delivery.checks.context import METHODS, CheckContext, Stage
from merpati.delivery.checks.results import (
    STRENGTH,
    Action,
    CheckUnavailable,
    Result,
    normalize,
    sanitize,
)
from merpati.delivery.envelope import ClientInfo, LocalRecipient
from merpati.mime import MimeLimitError, MimeLimits, ParsedMessage, parse_message

log = logging.getLogger("merpati.checks")

ON_FAILURE = ("tempfail", "accept")


@dataclass(frozen=True, slots=True)
class Policy:
    hostname: str = "localhost"
    junk_score: float = 6.0
    reject_score: float = 15.0
    on_failure: str = "tempfail"
    junk_mailbox: str = "Junk"

    def __post_init__(self) -> None:
        if self.on_failure not in ON_FAILURE:
            raise ValueError(f'on_failure: expected "tempfail" or "accept", not {self.on_failure!r}')


@dataclass(slots=True)
class Filing:
    """Where one recipient's copy goes and what is prepended to it."""

    mailbox: str | None  # None: INBOX
    headers: bytes
    verdict: str  # "inbox" | "junk"
    score: float


@dataclass(slots=True)
class DataOutcome:
    """The end-of-data decision: a refusal for the whole transaction, or one filing per mailbox."""

    refusal: Result | None
    filings: dict[int, Filing] = field(default_factory=dict)  # account id → filing
    data: bytes | None = None  # the message to store when a check rewrote it (forged headers removed)


class _Stage:
    __slots__ = ("sequential", "concurrent")

    def __init__(self) -> None:
        self.sequential: list[tuple[str, Any, float | None]] = []
        self.concurrent: list[tuple[str, Any, float | None]] = []


class CheckPipeline:
    def __init__(
        self,
        checks: Sequence[Any],
        policy: Policy,
        *,
        mime_limits: MimeLimits = MimeLimits(),
    ) -> None:
        self.policy = policy
        self.checks = list(checks)
        self._mime_limits = mime_limits
        self._stages: dict[Stage, _Stage] = {stage: _Stage() for stage in Stage}
        self._per_recipient: list[tuple[str, Any, float | None]] = []
        for check in self.checks:
            name = str(getattr(check, "name", type(check).__name__))
            timeout = getattr(check, "timeout_seconds", None)
            for stage, method in METHODS.items():
                fn = getattr(check, method, None)
                if fn is not None:
                    target = self._stages[stage]
                    bucket = target.concurrent if getattr(check, "concurrent", False) else target.sequential
                    bucket.append((name, fn, timeout))
            fn = getattr(check, "on_data_recipient", None)
            if fn is not None:
                self._per_recipient.append((name, fn, timeout))
        self._needs_parse = bool(
            self._stages[Stage.DATA].sequential or self._stages[Stage.DATA].concurrent or self._per_recipient
        )

    def session(self, client: ClientInfo, *, trusted: bool = False) -> CheckSession:
        return CheckSession(self, client, trusted=trusted)

    def has(self, stage: Stage) -> bool:
        s = self._stages[stage]
        return bool(s.sequential or s.concurrent)

    # -- running ----------------------------------------------------------------------------

    async def run_stage(self, stage: Stage, ctx: CheckContext) -> tuple[list[Result], Result | None]:
        """(results, decision): the decision is the strongest decisive result, or None."""
        spec = self._stages[stage]
        found: list[Result] = []
        decision: Result | None = None
        for name, fn, timeout in spec.sequential:
            results = await self._call(name, fn, ctx, timeout)
            found.extend(results)
            ctx.results.extend(results)
            decision = _strongest(decision, results)
            if decision is not None and decision.action in (Action.REJECT, Action.TEMPFAIL, Action.ACCEPT):
                return found, decision
        if len(spec.concurrent) == 1:  # nothing to overlap with: no task to create and schedule
            name, fn, timeout = spec.concurrent[0]
            batches = [await self._call(name, fn, ctx, timeout)]
        elif spec.concurrent:
            batches = await asyncio.gather(*(self._call(n, f, ctx, t) for n, f, t in spec.concurrent))
        else:
            batches = []
        for results in batches:
            found.extend(results)
            ctx.results.extend(results)
            decision = _strongest(decision, results)
        return found, decision

    async def run_recipient(self, ctx: CheckContext, rcpt: LocalRecipient) -> list[Result]:
        found: list[Result] = []
        for name, fn, timeout in self._per_recipient:
            found.extend(await self._call(name, fn, ctx, timeout, rcpt))
        return found

    async def _call(self, name: str, fn: Any, ctx: CheckContext, timeout: float | None, *args: Any) -> list[Result]:
        try:
            if timeout is None:
                value = await fn(ctx, *args)
            else:
                value = await asyncio.wait_for(fn(ctx, *args), timeout)
            return normalize(value, name)
        except CheckUnavailable as exc:
            log.warning("check %s unavailable: %s", name, exc)
            return [self._failed(name, str(exc) or type(exc).__name__)]
        except (asyncio.TimeoutError, TimeoutError):
            log.warning("check %s timed out", name)
            return [self._failed(name, "timed out")]
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug in a check or hook: never crash the session
            log.exception("check %s failed", name)
            return [self._failed(name, f"error: {type(exc).__name__}")]

    def _failed(self, name: str, why: str) -> Result:
        why = sanitize(why, 120)
        if self.policy.on_failure == "accept":
            return _skipped(name, why)
        return Result(
            Action.TEMPFAIL, 451, "4.7.1", f"Content check {name} unavailable, try again later",
            reason=f"unavailable ({why})", check=name,
        )

    def parse(self, data: bytes) -> ParsedMessage | None:
        if not self._needs_parse:
            return None
        try:
            return parse_message(data, limits=self._mime_limits)
        except MimeLimitError:
            return None


def _skipped(name: str, why: str) -> Result:
    return Result(check=name, reason=f"{verdict_mod.SKIPPED} ({why})")


def _strongest(current: Result | None, results: list[Result]) -> Result | None:
    for r in results:
        if r.action is Action.NONE:
            continue
        if current is None or STRENGTH[r.action] > STRENGTH[current.action]:
            current = r
    return current


class CheckSession:
    """The checks' view of one SMTP connection; methods are called in SMTP order by the MX session."""

    def __init__(self, pipeline: CheckPipeline, client: ClientInfo, *, trusted: bool) -> None:
        self._p = pipeline
        self.client = client
        self.trusted = trusted
        self.helo = ""
        self.session: dict[str, Any] = {}
        self._connect_results: list[Result] = []
        self._helo_results: list[Result] = []
        self._pending: Result | None = None  # a delayed connect/HELO refusal
        self._session_accepted = trusted
        self._reset_transaction()

    def _reset_transaction(self) -> None:
        self.sender: str | None = None
        self.transaction: dict[str, Any] = {}
        self._txn_results: list[Result] = []
        self._rcpt_results: dict[str, list[Result]] = {}
        self._recipients: list[str] = []
        self._txn_accepted = False

    def _ctx(self, stage: Stage, **kw: Any) -> CheckContext:
        return CheckContext(
            stage=stage, client=self.client, hostname=self._p.policy.hostname, helo=self.helo,
            sender=self.sender, recipients=tuple(self._recipients), session=self.session,
            transaction=self.transaction,
            results=[*self._connect_results, *self._helo_results, *self._txn_results], **kw,
        )

    @property
    def _skip(self) -> bool:
        return self._session_accepted or self._txn_accepted

    # -- stages -----------------------------------------------------------------------------

    async def connect(self, pregreet: bytes = b"") -> None:
        if self._skip or not self._p.has(Stage.CONNECT):
            return
        results, decision = await self._p.run_stage(Stage.CONNECT, self._ctx(Stage.CONNECT, pregreet=pregreet))
        self._connect_results = results
        self._note_session_decision(decision)

    async def hello(self, client: ClientInfo) -> None:
        self.client = client
        self.helo = client.helo
        self._reset_transaction()
        if self._session_accepted or not self._p.has(Stage.HELO):
            return
        results, decision = await self._p.run_stage(Stage.HELO, self._ctx(Stage.HELO))
        self._helo_results = results
        self._note_session_decision(decision)

    def _note_session_decision(self, decision: Result | None) -> None:
        if decision is None:
            return
        if decision.action is Action.ACCEPT:
            self._session_accepted = True
            self._pending = None
        elif decision.action in (Action.REJECT, Action.TEMPFAIL):
            if self._pending is None or STRENGTH[decision.action] > STRENGTH[self._pending.action]:
                self._pending = decision

    def tls_started(self, client: ClientInfo) -> None:
        self.client = client
        self.helo = ""
        self._helo_results = []
        self._reset_transaction()

    async def mail(self, sender: str) -> Result | None:
        """A refusal for MAIL FROM (a delayed connect/HELO one included), or None."""
        self._reset_transaction()
        self.sender = sender
        if self._pending is not None and not self._session_accepted:
            return self._pending
        if self._skip or not self._p.has(Stage.MAIL):
            return None
        results, decision = await self._p.run_stage(Stage.MAIL, self._ctx(Stage.MAIL))
        self._txn_results.extend(results)
        return self._transaction_decision(decision)

    async def rcpt(self, address: str, accounts: Sequence[LocalRecipient]) -> Result | None:
        """A refusal for this RCPT TO, or None (the recipient is accepted)."""
        if self._skip or not self._p.has(Stage.RCPT):
            self._recipients.append(address)
            return None
        ctx = self._ctx(Stage.RCPT, recipient=address, accounts=tuple(accounts))
        results, decision = await self._p.run_stage(Stage.RCPT, ctx)
        refusal = self._transaction_decision(decision)
        if refusal is None:
            self._recipients.append(address)
            self._rcpt_results.setdefault(address.lower(), []).extend(results)
        return refusal

    def _transaction_decision(self, decision: Result | None) -> Result | None:
        if decision is None:
            return None
        if decision.action is Action.ACCEPT:
            self._txn_accepted = True
            return None
        if decision.action in (Action.REJECT, Action.TEMPFAIL):
            return decision
        return None

    def reset(self) -> None:
        self._reset_transaction()

    async def data(self, message: bytes, accounts: Sequence[LocalRecipient]) -> DataOutcome:
        """Run the end-of-data checks; the decision for the transaction and each mailbox."""
        policy = self._p.policy
        early = [*self._connect_results, *self._helo_results, *self._txn_results]
        data_results: list[Result] = []
        per_account: dict[int, list[Result]] = {}
        parsed = None
        rewritten: bytes | None = None
        if not self._skip:
            parsed = self._p.parse(message)
            ctx = self._ctx(Stage.DATA, message=message, parsed=parsed, accounts=tuple(accounts))
            data_results, decision = await self._p.run_stage(Stage.DATA, ctx)
            rewritten = ctx.transaction.get("rewritten_message")
            if decision is not None and decision.action in (Action.REJECT, Action.TEMPFAIL):
                self._reset_transaction()
                return DataOutcome(refusal=decision)
            if decision is not None and decision.action is Action.ACCEPT:
                self._txn_accepted = True
            if not self._skip:
                for rcpt in accounts:
                    per_account[rcpt.account_id] = await self._p.run_recipient(ctx, rcpt)
        accepted = self._skip
        outcome = DataOutcome(refusal=None, data=rewritten)
        totals = []
        for rcpt in accounts:
            results = [*early, *self._rcpt_results.get(rcpt.rcpt.lower(), ()), *data_results,
                       *per_account.get(rcpt.account_id, ())]
            decided = verdict_mod.decide(results, policy, accepted=accepted)
            totals.append(decided.score)
            outcome.filings[rcpt.account_id] = Filing(
                mailbox=policy.junk_mailbox if decided.verdict == "junk" else None,
                headers=verdict_mod.render(decided, results, policy),
                verdict=decided.verdict,
                score=decided.score,
            )
        if totals and not accepted and min(totals) >= policy.reject_score:
            outcome = DataOutcome(refusal=verdict_mod.spam_refusal(min(totals), policy))
        self._reset_transaction()
        return outcome
