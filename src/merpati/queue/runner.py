"""The queue runner: claims due items, delivers them, records the outcome (and DSNs).

Theory of operation
-------------------
* The loop claims up to ``concurrency - in flight`` due items with a lease of ``lease``
  seconds, and runs one task per item. A heartbeat renews the leases of items in flight
  every ``lease / 3`` seconds, so a slow but live attempt keeps its item, while a node that
  dies (kill -9) lets its items fall due again once the lease expires: another node (or
  this one after a restart) delivers them. Several processes may run a runner on the same
  database; claims never hand an item to two live owners.
* One attempt for one item: local domains go to ``LocalDelivery`` (the mailbox pipeline:
  DSNs for our own users, and mail that could not be filed at submission); otherwise the
  next hops (smarthost, or MX / implicit MX per RFC 5321 §5.1) are tried in order until one
  gives per-recipient answers. A session that ended its transaction cleanly is parked a
  moment (``queue.sessions``, ``connection_cache_idle``) and the next message to the same host
  goes over it; a parked connection that turns out dead before the message went out is
  replaced by a fresh one (no attempt is spent on it). Then ``policy`` decides, per recipient: delivered, failed
  (5xx, null MX, expired) or deferred to the next step of the schedule; warnings and
  failure DSNs are composed and recorded in the same transaction as the outcome.
* Crash safety: the outcome is committed after the remote's ``250``. A crash between the
  two delivers that message again after the lease expires (a duplicate, never a loss:
  RFC 5321 §6.1, SECURITY-CASES STORE-03). A DNS or database error is never a bounce.
* Corrupt queue rows (SECURITY-CASES STORE-09) never reach an attempt: ``claim`` quarantines
  them (``storage.queue_api``); mail handed over leased is checked the same way here and given
  back to be quarantined by the next claim.
* Fairness and bounds (STORE-08): at most ``concurrency`` items are claimed and in memory at
  once (mail handed over leased only while there is a free slot); a claim gives half its slots
  to mail never attempted, so new mail is not starved behind a backlog of retries.
* ``wake()`` (called by the store after a local enqueue that could not be handed over leased,
  or DSNs) starts a claim round at once; otherwise the loop polls every ``poll_interval``
  seconds (other nodes' mail, retries that fall due). A finished attempt frees a slot and starts
  a claim round only while the queue may hold due items we have not claimed (the last round
  filled every slot, or a wake came since): mail handed over leased needs no claim at all, and a
  claim is a write transaction.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from merpati.queue import dsn
from merpati.queue.client import (
    ClientSettings,
    HopError,
    OutboundEnvelope,
    OutboundRecipient,
    RcptOutcome,
    TransactionResult,
    open_session,
    transact,
)
from merpati.queue.dialer import Dialer
from merpati.queue.policy import RetryPolicy
from merpati.queue.sessions import SessionCache
from merpati.queue.signing import DkimSigners
from merpati.resolver.api import DnsError, DnsTempError, Resolver
from merpati.resolver.nexthop import NextHopError, NullMx, next_hops, parse_domain_literal
from merpati.storage.api import StoreError
from merpati.storage.queue_api import (
    AttemptRecord,
    Claim,
    MessageKind,
    NewMessage,
    Outcome,
    QueueRecipient,
    QueueStore,
    RecipientResult,
)
from merpati.storage.queue_entries import claim_problem

log = logging.getLogger("merpati.queue")


@dataclass(frozen=True, slots=True)
class Relay:
    """A smarthost: every message goes there instead of to the MX of its domain."""

    host: str
    port: int = 587


@dataclass(frozen=True, slots=True)
class RunnerSettings:
    hostname: str
    concurrency: int = 20
    lease: float = 60.0  # renewed every lease/3 while an attempt runs
    poll_interval: float = 1.0
    port: int = 25
    connect_timeout: float = 30.0
    relay: Relay | None = None
    max_addresses: int = 10  # addresses tried per attempt (all MX hosts together)
    connection_cache_idle: float = 2.0  # seconds a session waits for the next message to its host; 0: QUIT at once


class LocalDelivery(Protocol):
    """Files queued mail for our own domains (through the inbound pipeline)."""

    async def is_local(self, domain: str) -> bool: ...

    async def deliver(self, sender: str, recipients: Sequence[str], data: bytes) -> list[RcptOutcome]: ...


@dataclass(slots=True)
class _Attempt:
    outcomes: dict[int, RcptOutcome] = field(default_factory=dict)
    remote: str | None = None


def default_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class QueueRunner:
    def __init__(
        self,
        store: QueueStore,
        *,
        resolver: Resolver,
        policy: RetryPolicy,
        settings: RunnerSettings,
        client: ClientSettings,
        dialer: Dialer,
        local: LocalDelivery | None = None,
        clock: Callable[[], float] = time.time,
        owner: str | None = None,
        signers: DkimSigners | None = None,
    ) -> None:
        self.store = store
        self.resolver = resolver
        self.policy = policy
        self.settings = settings
        self.client = client
        self.dialer = dialer
        self.local = local
        self.clock = clock
        self.owner = owner or default_owner()
        self.signers = signers  # signs the DSNs we send (MAILER-DAEMON@hostname)
        self._inflight: dict[int, asyncio.Task[None]] = {}
        self._wakeup = asyncio.Event()
        self._backlog = True  # due items may be waiting unclaimed (see the module docstring)
        self._stopping = False
        self._main: asyncio.Task[None] | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self.sessions = SessionCache(idle=settings.connection_cache_idle, max_idle=max(2, 2 * settings.concurrency))
        self.stats = {"attempts": 0, "delivered": 0, "deferred": 0, "failed": 0, "lost_leases": 0}

    # -- lifecycle -------------------------------------------------------------------------------
    async def start(self, *, reclaim: bool = False) -> None:
        """``reclaim``: the owner id is stable across restarts of this node, so leases it still
        holds belong to a previous (dead) run: give them back at once instead of waiting."""
        if reclaim:
            try:
                count = await self.store.release_all(self.owner)
                if count:
                    log.info("reclaimed %d queue item(s) leased by a previous run of %s", count, self.owner)
            except StoreError as exc:
                log.warning("reclaiming old leases failed: %s", exc)
        self._main = asyncio.create_task(self._loop(), name="merpati-queue-runner")
        self._heartbeat = asyncio.create_task(self._renew_loop(), name="merpati-queue-leases")

    def wake(self) -> None:
        self._backlog = True
        self._wakeup.set()

    # -- storage.queue_api.LocalRunner: new local mail handed over already leased ------------
    def lease_seconds(self) -> float:
        return self.settings.lease

    def has_capacity(self) -> bool:
        return not self._stopping and len(self._inflight) < self.settings.concurrency

    def accept(self, claims: list[Claim]) -> None:
        """Start claims leased to us by the enqueue itself (beyond capacity too: they are ours)."""
        for claim in claims:
            if claim.item.id not in self._inflight:
                task = asyncio.create_task(self._guarded(claim), name=f"merpati-queue-{claim.message.queue_id}")
                self._inflight[claim.item.id] = task

    async def stop(self, grace: float) -> None:
        self._stopping = True
        self._wakeup.set()
        if self._main is not None:
            await asyncio.wait([self._main], timeout=grace)
        tasks = list(self._inflight.values())
        if tasks:
            await asyncio.wait(tasks, timeout=grace)
        leftover = [item_id for item_id, task in self._inflight.items() if not task.done()]
        for task in self._inflight.values():
            task.cancel()
        for task in (self._main, self._heartbeat):
            if task is not None:
                task.cancel()
        await asyncio.gather(*(t for t in (self._main, self._heartbeat, *tasks) if t is not None), return_exceptions=True)
        await self.sessions.close_all()
        if leftover:
            try:
                await self.store.release(self.owner, leftover)
            except StoreError:
                pass  # the leases expire by themselves

    # -- the loop ----------------------------------------------------------------------------------
    async def _loop(self) -> None:
        while not self._stopping:
            self._wakeup.clear()  # before claiming: a wake during the claim triggers another round
            free = self.settings.concurrency - len(self._inflight)
            if free > 0:
                self._backlog = False  # a wake from here on sets it again
                try:
                    await self._claim_and_start(free)
                except StoreError as exc:
                    self._backlog = True
                    log.warning("queue claim failed: %s", exc)
                except Exception:
                    self._backlog = True
                    log.exception("queue claim failed")
            if self._stopping:
                break
            await self._wait(self.settings.poll_interval)  # a new enqueue or a finished task wakes us

    async def _wait(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(self._wakeup.wait(), timeout)
        except asyncio.TimeoutError:
            pass

    async def _claim_and_start(self, limit: int) -> int:
        claims = await self.store.claim(self.owner, now=self.clock(), lease=self.settings.lease, limit=limit)
        if len(claims) >= limit:
            self._backlog = True  # there may be more: claim again when a slot frees
        for claim in claims:
            task = asyncio.create_task(self._guarded(claim), name=f"merpati-queue-{claim.message.queue_id}")
            self._inflight[claim.item.id] = task
        return len(claims)

    async def _guarded(self, claim: Claim) -> None:
        try:
            if claim_problem(claim) is not None:
                # Mail handed over leased passed only the enqueue checks: give it back, and the
                # claim that takes it next quarantines it (STORE-09), never deliver it.
                self._backlog = True
                await self.store.release(self.owner, [claim.item.id])
                return
            await self.process(claim)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("queue item %s failed unexpectedly", claim.item.id)
        finally:
            self._inflight.pop(claim.item.id, None)
            if self._backlog:
                self._wakeup.set()

    async def _renew_loop(self) -> None:
        interval = max(0.05, self.settings.lease / 3)
        while True:
            await asyncio.sleep(interval)
            ids = list(self._inflight)
            if not ids:
                continue
            try:
                await self.store.renew(self.owner, ids, until=self.clock() + self.settings.lease)
            except StoreError as exc:
                log.warning("renewing queue leases failed: %s", exc)

    async def run_once(self) -> int:
        """Claim what is due now and process it to the end (tests, ``queue flush``)."""
        claims = await self.store.claim(
            self.owner, now=self.clock(), lease=self.settings.lease, limit=max(1, self.settings.concurrency)
        )
        await asyncio.gather(*(self.process(c) for c in claims))
        await self.sessions.close_all()
        return len(claims)

    # -- one item ------------------------------------------------------------------------------------
    async def process(self, claim: Claim) -> None:
        started = time.monotonic()
        attempt = await self.attempt(claim)
        record = self.decide(claim, attempt, now=self.clock())
        self.stats["attempts"] += 1
        try:
            ok = await self.store.record_attempt(self.owner, record, now=self.clock())
        except StoreError as exc:
            log.warning("recording the attempt on %s failed (it will be retried): %s", claim.message.queue_id, exc)
            return
        if not ok:
            self.stats["lost_leases"] += 1
            log.warning("lost the lease on %s/%s before recording", claim.message.queue_id, claim.item.domain)
        for r in record.results:
            self.stats[r.outcome.value] += 1
        log.info(
            "queue id=%s domain=%s rcpts=%d %s (%.0f ms)",
            claim.message.queue_id, claim.item.domain, len(claim.recipients),
            ",".join(sorted({r.outcome.value for r in record.results})) or "-",
            (time.monotonic() - started) * 1000,
        )

    async def attempt(self, claim: Claim) -> _Attempt:
        rcpts = claim.recipients
        if not rcpts:
            return _Attempt()
        domain = claim.item.domain
        if self.local is not None and self.settings.relay is None and await self._is_local(domain):
            return await self._deliver_locally(claim)
        try:
            targets = await self._targets(domain)
        except NextHopError as exc:
            if exc.permanent:
                code, status = (556, "5.1.10") if isinstance(exc, NullMx) else (550, "5.1.2")
                return self._all(rcpts, RcptOutcome("failed", code, status, f"{code} {status} {exc.detail}"))
            return self._all(rcpts, RcptOutcome("deferred", 451, "4.4.3", f"451 4.4.3 {exc.detail}"))
        except DnsError as exc:
            kind, code, status = ("deferred", 451, "4.4.3") if isinstance(exc, DnsTempError) else ("failed", 550, "5.1.2")
            return self._all(rcpts, RcptOutcome(kind, code, status, f"{code} {status} DNS: {exc}"))
        envelope = OutboundEnvelope(
            sender=claim.message.sender,
            recipients=tuple(OutboundRecipient(r.address, r.notify, r.orcpt) for r in rcpts),
            envid=claim.message.envid,
            ret=claim.message.ret,
            body_type=claim.message.body_type,
            smtputf8=claim.message.smtputf8,
        )
        data = claim.data
        if claim.message.kind is MessageKind.DSN and self.signers is not None:
            data = self.signers.sign(await self.signers.for_host(self.settings.hostname), data)
        last: HopError | None = None
        last_host: str | None = None
        for host, address, port in targets:
            label = f"{host}[{address}]:{port}"
            key = (host, address, port)
            result: TransactionResult | None = None
            session = self.sessions.take(key)
            if session is not None:
                result = await transact(session, envelope, data)
                if result.hop_error is not None and not session.data_sent:
                    log.debug("queue id=%s %s: cached session unusable (%s)", claim.message.queue_id, label, result.hop_error.text)
                    result = None  # the server dropped the idle connection: open a fresh one
            if result is None:
                try:
                    conn = await self.dialer.connect(address, port, timeout=self.settings.connect_timeout)
                except (OSError, asyncio.TimeoutError, TimeoutError) as exc:
                    last, last_host = HopError(f"connect to {label}: {exc or 'timed out'}", 451, "4.4.1"), host
                    continue
                session, error = await open_session(conn, self.client, server_name=host)
                result = TransactionResult(hop_error=error) if error is not None else await transact(session, envelope, data)
            if result.hop_error is None:
                self.sessions.park(key, session)
            if result.hop_error is not None:
                last, last_host = result.hop_error, host
                log.info("queue id=%s %s: %s", claim.message.queue_id, label, result.hop_error.text)
                continue
            return _Attempt(dict(zip((r.id for r in rcpts), result.outcomes)), remote=host)
        if last is None:
            last = HopError("no address to deliver to", 451, "4.4.3")
        status = last.status if last.status and last.status[0] == "4" else "4.4.1"
        return _Attempt(
            {r.id: RcptOutcome("deferred", 451, status, _diagnostic(last)) for r in rcpts}, remote=last_host
        )

    async def _is_local(self, domain: str) -> bool:
        assert self.local is not None
        try:
            return await self.local.is_local(domain)
        except StoreError:
            return False

    async def _deliver_locally(self, claim: Claim) -> _Attempt:
        assert self.local is not None
        try:
            outcomes = await self.local.deliver(claim.message.sender, [r.address for r in claim.recipients], claim.data)
        except StoreError as exc:
            outcomes = [RcptOutcome("deferred", 451, "4.3.0", f"451 4.3.0 local delivery failed: {exc}")] * len(claim.recipients)
        return _Attempt(dict(zip((r.id for r in claim.recipients), outcomes)), remote=self.settings.hostname)

    async def _targets(self, domain: str) -> list[tuple[str, str, int]]:
        relay = self.settings.relay
        if relay is not None:
            return [(relay.host, str(a), relay.port) for a in await self._host_addresses(relay.host)]
        hops = await next_hops(self.resolver, domain, max_addresses=self.settings.max_addresses)
        return [(host, str(address), self.settings.port) for host, address in hops.addresses()]

    async def _host_addresses(self, host: str) -> list[str]:
        literal = parse_domain_literal(f"[{host}]") if _is_ip(host) else None
        if literal is not None:
            return [str(literal)]
        out: list[str] = []
        for lookup in (self.resolver.aaaa, self.resolver.a):
            try:
                out.extend(str(a) for a in await lookup(host))
            except DnsTempError:
                raise
            except DnsError:
                continue
        if not out:
            raise NextHopError(host, "the relay host has no address")
        return out

    @staticmethod
    def _all(rcpts: Sequence[QueueRecipient], outcome: RcptOutcome) -> _Attempt:
        return _Attempt({r.id: outcome for r in rcpts})

    # -- policy ---------------------------------------------------------------------------------------
    def decide(self, claim: Claim, attempt: _Attempt, *, now: float) -> AttemptRecord:
        """Per-recipient outcomes → the record to commit (states, next attempt, DSNs)."""
        message = claim.message
        attempts = claim.item.attempts + 1
        next_at = self.policy.next_attempt(attempts=attempts, created=message.created, now=now)
        warn = self.policy.warning_due(created=message.created, now=now, warned=False)
        results: list[RecipientResult] = []
        failures: list[dsn.DsnEntry] = []
        delays: list[dsn.DsnEntry] = []
        deferred = False
        for rcpt in claim.recipients:
            outcome = attempt.outcomes.get(rcpt.id) or RcptOutcome("deferred", 451, "4.3.0", "451 4.3.0 no outcome")
            remote = attempt.remote
            status = outcome.status or ("5.0.0" if outcome.kind == "failed" else "4.0.0")
            if outcome.kind == "delivered":
                results.append(RecipientResult(rcpt.id, Outcome.DELIVERED, outcome.code, status, outcome.text, remote))
            elif outcome.kind == "failed":
                results.append(RecipientResult(rcpt.id, Outcome.FAILED, outcome.code, status, outcome.text, remote))
                failures.append(dsn.DsnEntry(rcpt, dsn.FAILED, status, outcome.text, remote))
            elif next_at is None:  # temporary failure past the lifetime: give up
                text = f"delivery time expired: {outcome.text}"
                results.append(RecipientResult(rcpt.id, Outcome.FAILED, outcome.code, status, text, remote))
                failures.append(dsn.DsnEntry(rcpt, dsn.FAILED, status, text, remote))
            else:
                deferred = True
                warned = warn and not rcpt.warned and dsn.wants_report(rcpt, dsn.DELAYED)
                results.append(RecipientResult(rcpt.id, Outcome.DEFERRED, outcome.code, status, outcome.text, remote, warned=warned))
                if warned:
                    delays.append(dsn.DsnEntry(rcpt, dsn.DELAYED, status, outcome.text, remote))
        notes: list[NewMessage] = []
        for entries, until in ((failures, None), (delays, self.policy.expires_at(message.created))):
            note = dsn.compose(
                message=message, data=claim.data, entries=entries, hostname=self.settings.hostname,
                now=now, retry_until=until,
            )
            if note is not None:
                notes.append(note)
        return AttemptRecord(
            item_id=claim.item.id, results=results, next_attempt=next_at if deferred else None, notifications=notes
        )


def _diagnostic(error: HopError) -> str:
    if error.code is not None and error.text[:3].isdigit():
        return error.text
    prefix = f"{error.code} {error.status} " if error.code is not None else ""
    return f"{prefix}{error.text}"


def _is_ip(host: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
