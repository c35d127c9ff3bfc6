"""DMARC (RFC 7489): policy discovery, identifier alignment, the result and the disposition.

* Discovery (§6.6.3): TXT at ``_dmarc.<From domain>``; when there is no DMARC record there,
  at ``_dmarc.<organizational domain>`` (the Public Suffix List's registrable domain, from
  the offline ``publicsuffixlist`` package). Records not starting with ``v=DMARC1`` are
  ignored; more than one DMARC record means no policy (``none``). NXDOMAIN/NODATA is no
  record; a temporary DNS error is ``temperror``.
* Alignment (§3.1): relaxed = same organizational domain, strict = same domain. SPF aligns
  through the MAIL FROM domain (the HELO domain for the null sender), DKIM through the d= of
  any passing signature.
* Result: ``pass`` if SPF or DKIM passes aligned; else ``temperror`` when an aligned check
  failed only temporarily (so a transient DNS problem never leads to a reject); else ``fail``.
* Policy: ``p``, or ``sp`` when the record was found at the organizational domain for a
  subdomain. ``pct`` sampling (§6.6.4): a failing message not sampled is handled one step
  softer (reject → quarantine, quarantine → none). ``disposition`` is what to apply.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from publicsuffixlist import PublicSuffixList

from merpati.resolver import DnsPermError, DnsTempError, Resolver

from .dkim import DkimResult, DkimVerdict
from .dkim_canon import TagError, parse_tags
from .spf import SpfResult, SpfVerdict

__all__ = [
    "DmarcLookup",
    "DmarcRecord",
    "DmarcResult",
    "DmarcVerdict",
    "check_dmarc",
    "evaluate_dmarc",
    "lookup_dmarc",
    "organizational_domain",
    "parse_dmarc_record",
]

_POLICIES = ("none", "quarantine", "reject")
_SOFTER = {"reject": "quarantine", "quarantine": "none", "none": "none"}


class DmarcVerdict(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    NONE = "none"
    TEMPERROR = "temperror"
    PERMERROR = "permerror"


class DmarcSyntaxError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class DmarcRecord:
    p: str  # none | quarantine | reject
    sp: str | None = None
    pct: int = 100
    adkim: str = "r"
    aspf: str = "r"
    rua: tuple[str, ...] = ()
    ruf: tuple[str, ...] = ()
    fo: str = "0"


@dataclass(frozen=True, slots=True)
class DmarcLookup:
    """The outcome of policy discovery, before alignment."""

    from_domain: str
    org_domain: str
    record: DmarcRecord | None = None
    record_domain: str = ""  # where the record was found
    error: DmarcVerdict | None = None  # TEMPERROR or PERMERROR when discovery failed
    problem: str = ""


@dataclass(frozen=True, slots=True)
class DmarcResult:
    result: DmarcVerdict
    from_domain: str
    policy: str = ""  # the requested policy for this domain (p or sp); "" without a record
    disposition: str = "none"  # what to do: none | quarantine | reject (after pct)
    org_domain: str = ""
    record: DmarcRecord | None = field(default=None)
    spf_aligned: bool = False
    dkim_aligned: bool = False
    problem: str = ""


@functools.lru_cache(maxsize=2)
def _default_psl(only_icann: bool = False) -> PublicSuffixList:
    """Loaded once per process (about 30 ms) and never modified: shared read-only data."""
    return PublicSuffixList(only_icann=only_icann)


def organizational_domain(domain: str, psl: PublicSuffixList | None = None) -> str:
    domain = domain.lower().rstrip(".")
    registrable = (psl or _default_psl()).privatesuffix(domain)
    return registrable or domain


def parse_dmarc_record(text: bytes) -> DmarcRecord:
    """RFC 7489 §6.3; unknown tags are ignored, a bad p= without rua is a syntax error."""
    try:
        tags = {k.lower(): v.decode("ascii").strip() for k, v in parse_tags(text).items()}
    except (TagError, UnicodeDecodeError) as exc:
        raise DmarcSyntaxError(f"malformed record: {exc}") from None
    if next(iter(tags), None) != "v" or tags["v"] != "DMARC1":
        raise DmarcSyntaxError("record must start with v=DMARC1")
    uris = lambda key: tuple(u.strip() for u in tags.get(key, "").split(",") if u.strip())  # noqa: E731
    p = tags.get("p", "").lower()
    if p not in _POLICIES:
        if uris("rua"):
            p = "none"  # §6.6.3 step 6: a record with a valid rua but bad p= is p=none
        else:
            raise DmarcSyntaxError("missing or invalid p=")
    sp = tags.get("sp", "").lower() or None
    if sp is not None and sp not in _POLICIES:
        sp = None
    try:
        pct = int(tags.get("pct", "100"))
    except ValueError:
        pct = 100
    pct = min(100, max(0, pct))
    adkim = tags.get("adkim", "r").lower()
    aspf = tags.get("aspf", "r").lower()
    return DmarcRecord(p=p, sp=sp, pct=pct, adkim=adkim if adkim in ("r", "s") else "r",
                       aspf=aspf if aspf in ("r", "s") else "r", rua=uris("rua"), ruf=uris("ruf"),
                       fo=tags.get("fo", "0"))


async def _fetch(resolver: Resolver, domain: str) -> list[bytes]:
    """DMARC records at _dmarc.<domain>; [] when none; raises DnsTempError."""
    try:
        texts = await resolver.txt(f"_dmarc.{domain}")
    except DnsPermError:
        return []
    return [t for t in texts if t[:8].upper() == b"V=DMARC1" and t[8:9].strip(b" \t;") == b""]


async def lookup_dmarc(resolver: Resolver, from_domain: str, *, psl: PublicSuffixList | None = None) -> DmarcLookup:
    from_domain = _ascii_domain(from_domain)
    org = organizational_domain(from_domain, psl)
    try:
        records, where = await _fetch(resolver, from_domain), from_domain
        if not records and org != from_domain:
            records, where = await _fetch(resolver, org), org
    except DnsTempError as exc:
        return DmarcLookup(from_domain, org, error=DmarcVerdict.TEMPERROR, problem=f"DMARC lookup: {exc}")
    if len(records) != 1:
        return DmarcLookup(from_domain, org, problem="no DMARC record" if not records else "several DMARC records")
    try:
        record = parse_dmarc_record(records[0])
    except DmarcSyntaxError as exc:
        return DmarcLookup(from_domain, org, record_domain=where, error=DmarcVerdict.PERMERROR, problem=str(exc))
    return DmarcLookup(from_domain, org, record, where)


def _aligned(identifier: str, from_domain: str, mode: str, psl: PublicSuffixList | None) -> bool:
    identifier = identifier.lower().rstrip(".")
    if not identifier:
        return False
    if mode == "s":
        return identifier == from_domain
    return organizational_domain(identifier, psl) == organizational_domain(from_domain, psl)


def evaluate_dmarc(
    lookup: DmarcLookup,
    spf: SpfResult | None,
    dkim: Sequence[DkimResult],
    *,
    psl: PublicSuffixList | None = None,
    rng: random.Random | None = None,
) -> DmarcResult:
    base = dict(from_domain=lookup.from_domain, org_domain=lookup.org_domain)
    if lookup.error is not None:
        return DmarcResult(lookup.error, problem=lookup.problem, **base)
    record = lookup.record
    if record is None:
        return DmarcResult(DmarcVerdict.NONE, problem=lookup.problem, **base)
    domain = lookup.from_domain
    spf_domain = spf.sender.rpartition("@")[2] if spf is not None else ""
    spf_candidate = spf is not None and _aligned(spf_domain, domain, record.aspf, psl)
    spf_aligned = spf_candidate and spf is not None and spf.result == SpfVerdict.PASS
    dkim_candidates = [r for r in dkim if _aligned(r.domain, domain, record.adkim, psl)]
    dkim_aligned = any(r.result == DkimVerdict.PASS for r in dkim_candidates)
    subdomain_policy = lookup.record_domain != domain and record.sp is not None
    policy = record.sp if subdomain_policy and record.sp else record.p
    details = dict(policy=policy, record=record, spf_aligned=spf_aligned, dkim_aligned=dkim_aligned, **base)
    if spf_aligned or dkim_aligned:
        return DmarcResult(DmarcVerdict.PASS, disposition="none", **details)
    temporary = (spf_candidate and spf is not None and spf.result == SpfVerdict.TEMPERROR) or any(
        r.result == DkimVerdict.TEMPERROR for r in dkim_candidates
    )
    if temporary:
        return DmarcResult(DmarcVerdict.TEMPERROR, disposition="none",
                           problem="an aligned check failed temporarily", **details)
    sampled = record.pct >= 100 or (rng or random.Random()).randrange(100) < record.pct
    disposition = policy if sampled else _SOFTER[policy]
    return DmarcResult(DmarcVerdict.FAIL, disposition=disposition, problem="no aligned SPF or DKIM pass", **details)


async def check_dmarc(
    resolver: Resolver,
    from_domain: str,
    spf_result: SpfResult | None,
    dkim_results: Sequence[DkimResult],
    *,
    psl: PublicSuffixList | None = None,
    rng: random.Random | None = None,
) -> DmarcResult:
    """DMARC for one RFC5322.From domain given the SPF (MAIL FROM) and DKIM results."""
    lookup = await lookup_dmarc(resolver, from_domain, psl=psl)
    return evaluate_dmarc(lookup, spf_result, dkim_results, psl=psl, rng=rng)


def _ascii_domain(domain: str) -> str:
    domain = domain.strip().rstrip(".").lower()
    if domain.isascii():
        return domain
    try:
        return domain.encode("idna").decode("ascii")
    except UnicodeError:
        return domain
