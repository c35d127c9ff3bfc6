"""Checking the sender on receipt: SPF, DKIM and DMARC (``mailauth.verify_message``) as a check.

At end of data, concurrently with the content engines:

1. ``Authentication-Results`` fields that carry our authserv-id (our hostname) and arrived
   with the message are removed (RFC 8601 §5: they are forgeries), through
   ``mailauth.remove_authentication_results``; the rewritten message is what gets stored.
2. SPF (MAIL FROM and HELO), every DKIM signature and DMARC are evaluated; the result becomes
   our own ``Authentication-Results`` field (with the iprev result of the connect stage).
3. Policy (``[checks.sender_auth]``):

   * DMARC fail with disposition ``reject`` → ``550 5.7.1`` (when ``dmarc_enforce``);
     ``quarantine`` → Junk; ``p=none`` → a small score.
   * DMARC could not be decided because of DNS (temperror) → ``451 4.7.5``: a temporary
     problem never becomes a permanent rejection.
   * SPF ``fail`` for a domain without a DMARC verdict: ``spf_fail = "none"`` (score only),
     ``"junk"`` or ``"reject"`` (``550 5.7.23``, RFC 7372). SPF temperror with
     ``spf_fail = "reject"`` → ``451 4.7.24``.
   * softfail, a failing DKIM signature, permerrors: small scores, explained in the verdict.
"""

from __future__ import annotations

from typing import Any

from merpati.delivery.checks.cache import TtlCache
from merpati.delivery.checks.context import CheckContext
from merpati.delivery.checks.results import Result, add_headers, add_score, quarantine, reject, tempfail
from merpati.mailauth import authentication_results, remove_authentication_results, verify_message
from merpati.mailauth.dkim import DkimVerdict
from merpati.mailauth.dmarc import DmarcVerdict
from merpati.mailauth.spf import SpfVerdict
from merpati.resolver.api import Resolver

SPF_FAIL_POLICIES = ("none", "junk", "reject")

SCORES = {
    "spf_fail": 2.0,
    "spf_softfail": 0.5,
    "spf_permerror": 0.5,
    "dkim_fail": 1.0,
    "dmarc_fail": 2.0,
}


class SenderAuthCheck:
    name = "auth"
    concurrent = True

    def __init__(
        self,
        resolver: Resolver,
        *,
        dmarc_enforce: bool = True,
        spf_fail: str = "none",
        timeout: float = 20.0,
        psl: Any = None,
    ) -> None:
        if spf_fail not in SPF_FAIL_POLICIES:
            raise ValueError(f'spf_fail: expected "none", "junk" or "reject", not {spf_fail!r}')
        self._resolver = resolver
        self._enforce = dmarc_enforce
        self._spf_fail = spf_fail
        self._timeout = timeout
        self._psl = psl
        # Unsigned messages: the verdict depends only on (client, MAIL FROM, HELO, From), so a
        # stream of them from one sender is evaluated once a minute, not once per message.
        self._unsigned: TtlCache[tuple[Any, ...], tuple[Any, str]] = TtlCache(ttl=60.0, size=10_000)

    async def on_data(self, ctx: CheckContext) -> list[Result]:
        assert ctx.message is not None
        message = ctx.message
        head_end = message.find(b"\r\n\r\n")
        head = message[: head_end if head_end >= 0 else len(message)].lower()
        cleaned = message
        if b"authentication-results" in head:
            cleaned = remove_authentication_results(message, ctx.hostname)
            if cleaned != message:
                ctx.transaction["rewritten_message"] = cleaned
        iprev = ctx.session.get("iprev")
        key = None
        if ctx.parsed is not None and b"dkim-signature" not in head:
            key = (ctx.ip, ctx.sender or "", ctx.helo, tuple(ctx.parsed.header_fields("From")),
                   getattr(iprev, "result", None), getattr(iprev, "name", None))
        cached = self._unsigned.get(key) if key is not None else None
        if cached is not None:
            verdict, value = cached
        else:
            verdict = await verify_message(
                self._resolver, cleaned, ctx.ip, ctx.helo, ctx.sender or None, ctx.hostname,
                timeout=self._timeout, psl=self._psl,
            )
            extra = []
            if iprev is not None:
                extra.append(f"iprev={iprev.result} policy.iprev={ctx.ip}" + (f" ({iprev.name})" if iprev.name else ""))
            spf_results = [verdict.spf] + ([verdict.spf_helo] if verdict.spf_helo is not None else [])
            header = authentication_results(
                ctx.hostname, spf=spf_results, dkim=verdict.dkim, dmarc=verdict.dmarc, extra=extra
            )
            value = header.decode("ascii").split(":", 1)[1].strip().replace("\r\n\t", " ")
            if key is not None and not verdict.temporary:
                self._unsigned.put(key, (verdict, value))
        out: list[Result] = [add_headers(("Authentication-Results", value))]
        out.extend(self.judge(verdict))
        return out

    def judge(self, verdict: Any) -> list[Result]:
        out: list[Result] = []
        dmarc, spf = verdict.dmarc, verdict.spf
        domain = dmarc.from_domain or "the From domain"
        if dmarc.result == DmarcVerdict.FAIL:
            if self._enforce and dmarc.disposition == "reject":
                return [reject(f"DMARC policy of {domain} rejects this message", 550, "5.7.1")]
            if self._enforce and dmarc.disposition == "quarantine":
                out.append(quarantine(f"DMARC fail, policy of {domain} is quarantine"))
            else:
                out.append(add_score(SCORES["dmarc_fail"], f"DMARC fail for {domain} (policy {dmarc.policy or 'none'})"))
        elif dmarc.result == DmarcVerdict.TEMPERROR and self._enforce:
            return [tempfail("Temporary DNS failure checking the sender's DMARC policy", 451, "4.7.5")]
        dmarc_decided = dmarc.result in (DmarcVerdict.PASS, DmarcVerdict.FAIL)
        if spf.result == SpfVerdict.FAIL and not dmarc_decided:
            if self._spf_fail == "reject":
                return [reject(f"SPF check failed for {spf.domain}", 550, "5.7.23")]
            if self._spf_fail == "junk":
                out.append(quarantine(f"SPF fail for {spf.domain}"))
            else:
                out.append(add_score(SCORES["spf_fail"], f"SPF fail for {spf.domain}"))
        elif spf.result == SpfVerdict.TEMPERROR and self._spf_fail == "reject" and not dmarc_decided:
            return [tempfail("Temporary DNS failure checking SPF", 451, "4.7.24")]
        elif spf.result == SpfVerdict.SOFTFAIL:
            out.append(add_score(SCORES["spf_softfail"], f"SPF softfail for {spf.domain}"))
        elif spf.result == SpfVerdict.PERMERROR:
            out.append(add_score(SCORES["spf_permerror"], f"SPF permerror for {spf.domain}"))
        failed = [d for d in verdict.dkim if d.result == DkimVerdict.FAIL]
        if failed and not any(d.result == DkimVerdict.PASS for d in verdict.dkim):
            out.append(add_score(SCORES["dkim_fail"], f"DKIM signature of {failed[0].domain or '?'} does not verify"))
        return out
