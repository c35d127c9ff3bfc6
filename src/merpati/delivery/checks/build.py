"""The check pipeline from the ``[checks]`` configuration (``config.schema.ChecksConfig``).

``build_checks(cfg, hostname=..., resolver=..., store=...)`` returns ``BuiltChecks``: the
pipeline the MX sessions use (None when ``[checks] enabled = false``), the pre-greeting wait
for ``net``, and the background work (Bayesian training from IMAP moves, greylist expiry)
that only the main process starts (``start_background``). A wrong value raises
``ChecksConfigError`` naming the key. (This module reads the configuration object by
attribute: ``delivery`` does not import ``config``.)

Order of the checks: pregreet, helo, iprev, dnsbl (connect/HELO: cheap and local first),
greylist (RCPT), the site hooks, then at end of data the network engines together
(sender authentication, rspamd, clamd) and the per-mailbox Bayesian filter.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from merpati.delivery.checks.bayes import BayesCheck
from merpati.delivery.checks.clamav import ClamavCheck
from merpati.delivery.checks.dnsbl import DnsblCheck, parse_zone
from merpati.delivery.checks.greylist import GreylistCheck, parse_duration
from merpati.delivery.checks.helo import HeloCheck
from merpati.delivery.checks.hooks import HookError, load_hooks
from merpati.delivery.checks.iprev import IprevCheck
from merpati.delivery.checks.pipeline import ON_FAILURE, CheckPipeline, Policy
from merpati.delivery.checks.pregreet import PregreetCheck
from merpati.delivery.checks.rspamd import RspamdCheck
from merpati.delivery.checks.training import BayesTrainer, JunkTrainingHook
from merpati.mime import MimeLimits
from merpati.storage.checks_api import ChecksStore, checks_store

log = logging.getLogger("merpati.checks")

GREYLIST_EXPIRY_INTERVAL = 3600.0


class ChecksConfigError(ValueError):
    pass


@dataclass
class BuiltChecks:
    pipeline: CheckPipeline | None
    pregreet_wait: float | None = None  # None: no pre-greeting detection
    trainer: BayesTrainer | None = None
    bayes: BayesCheck | None = None
    greylist: GreylistCheck | None = None
    store: ChecksStore | None = None
    _background: list[Any] = field(default_factory=list)

    async def start_background(self, mail_store: Any) -> list[Any]:
        """Start the training hook and greylist expiry; returns objects with ``async stop(grace)``."""
        started: list[Any] = []
        if self.trainer is not None:
            hook = JunkTrainingHook(mail_store, self.trainer)
            await hook.start()
            started.append(hook)
        if self.greylist is not None:
            started.append(_Periodic(self.greylist.expire, GREYLIST_EXPIRY_INTERVAL, "greylist expiry"))
        return started


class _Periodic:
    def __init__(self, fn: Any, interval: float, what: str) -> None:
        self._task = asyncio.create_task(self._run(fn, interval, what), name=what)

    @staticmethod
    async def _run(fn: Any, interval: float, what: str) -> None:
        while True:
            try:
                await fn()
            except Exception as exc:  # the database may be away for a while
                log.warning("%s failed: %s", what, exc)
            await asyncio.sleep(interval)

    async def stop(self, grace: float = 0.0) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


def _duration(value: Any, key: str) -> float:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise ChecksConfigError(f"{key}: {exc}") from None


def policy_from_config(cfg: Any, hostname: str) -> Policy:
    if cfg.on_failure not in ON_FAILURE:
        raise ChecksConfigError('checks.on_failure: expected "tempfail" or "accept"')
    if not cfg.junk_score <= cfg.reject_score:
        raise ChecksConfigError("checks.junk_score: must not be above checks.reject_score")
    return Policy(hostname=hostname, junk_score=float(cfg.junk_score), reject_score=float(cfg.reject_score),
                  on_failure=cfg.on_failure)


def build_checks(
    cfg: Any,
    *,
    hostname: str,
    resolver: Any,
    store: Any,
    mime_limits: MimeLimits = MimeLimits(),
) -> BuiltChecks:
    """``cfg``: the ``[checks]`` section; ``resolver``: a ``Resolver`` (from ``[dns]``);
    ``store``: the open ``MailStore`` (greylist triples and Bayes tokens live beside the mail)."""
    if not cfg.enabled:
        return BuiltChecks(pipeline=None)
    policy = policy_from_config(cfg, hostname)
    checks: list[Any] = []
    built = BuiltChecks(pipeline=None)
    if cfg.pregreet:
        if cfg.pregreet_wait < 0 or cfg.pregreet_wait > 60:
            raise ChecksConfigError("checks.pregreet_wait: expected 0 to 60 seconds")
        checks.append(PregreetCheck())
        built.pregreet_wait = float(cfg.pregreet_wait)
    if cfg.helo_checks:
        checks.append(HeloCheck())
    if cfg.iprev:
        checks.append(IprevCheck(resolver))
    if cfg.dnsbl.zones:
        try:
            zones = [parse_zone(z) for z in cfg.dnsbl.zones]
        except ValueError as exc:
            raise ChecksConfigError(f"checks.dnsbl.zones: {exc}") from None
        checks.append(DnsblCheck(resolver, zones, score=float(cfg.dnsbl.score), reject_listed=bool(cfg.dnsbl.reject)))
    needs_store = cfg.greylist.enabled or cfg.bayes
    cstore = checks_store(store) if needs_store else None
    built.store = cstore
    if cfg.greylist.enabled:
        assert cstore is not None
        built.greylist = GreylistCheck(
            cstore, delay=_duration(cfg.greylist.delay, "checks.greylist.delay"),
            expire=_duration(cfg.greylist.expire, "checks.greylist.expire"),
        )
        checks.append(built.greylist)
    if cfg.hooks:
        try:
            checks.append(load_hooks(cfg.hooks))
        except HookError as exc:
            raise ChecksConfigError(f"checks.hooks: {exc}") from None
    if cfg.sender_auth.enabled:
        from merpati.delivery.checks.sender_auth import SPF_FAIL_POLICIES, SenderAuthCheck

        if cfg.sender_auth.spf_fail not in SPF_FAIL_POLICIES:
            raise ChecksConfigError('checks.sender_auth.spf_fail: expected "none", "junk" or "reject"')
        checks.append(SenderAuthCheck(
            resolver, dmarc_enforce=bool(cfg.sender_auth.dmarc_enforce), spf_fail=cfg.sender_auth.spf_fail,
        ))
    if cfg.rspamd.url:
        try:
            checks.append(RspamdCheck(cfg.rspamd.url, timeout=float(cfg.rspamd.timeout), password=cfg.rspamd.password))
        except ValueError as exc:
            raise ChecksConfigError(f"checks.rspamd.url: {exc}") from None
    if cfg.clamav.address:
        try:
            checks.append(ClamavCheck(cfg.clamav.address, timeout=float(cfg.clamav.timeout)))
        except ValueError as exc:
            raise ChecksConfigError(f"checks.clamav.address: {exc}") from None
    if cfg.bayes:
        assert cstore is not None
        built.bayes = BayesCheck(cstore)
        built.trainer = BayesTrainer(cstore, on_learned=built.bayes.forget)
        checks.append(built.bayes)
    built.pipeline = CheckPipeline(checks, policy, mime_limits=mime_limits)
    return built
