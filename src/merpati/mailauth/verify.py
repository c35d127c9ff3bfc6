"""Checking a received message: SPF, DKIM and DMARC together, with one time limit.

``verify_message`` runs the SPF checks (MAIL FROM and HELO), the verification of every DKIM
signature and the DMARC policy lookup concurrently, then evaluates DMARC and builds the
Authentication-Results field. Temporary DNS trouble, or running out of time, gives
``temperror`` results — never a permanent failure — and sets ``AuthVerdict.temporary``.

The RFC5322.From domain is read strictly (SECURITY-CASES SMTP-34): a From field that could
be read two ways (``alice@a.test)<bob@b.test>``), a missing or unparseable From, or an
address literal make DMARC ``permerror`` (the delivery policy decides what that means), never
a pass for the "wrong" domain. Several author domains are each evaluated (at most 5) and the
worst result is reported.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
from dataclasses import dataclass, field

from publicsuffixlist import PublicSuffixList

from merpati.core.address import AddressError, parse_domain
from merpati.mime.address import MISSING_DOMAIN, MISSING_MAILBOX, parse_addresses
from merpati.resolver import IPAddress, Resolver

from .authresults import authentication_results
from .dkim import DkimResult, DkimVerdict, verify_dkim
from .dkim_canon import split_message
from .dmarc import DmarcLookup, DmarcResult, DmarcVerdict, evaluate_dmarc, lookup_dmarc
from .spf import SpfResult, SpfVerdict, check_spf, check_spf_helo

__all__ = ["AuthVerdict", "FromDomainError", "author_domains", "verify_message"]

MAX_AUTHOR_DOMAINS = 5
_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"', re.S)
_COMMENT = re.compile(r"\((?:[^()\\]|\\.)*\)", re.S)
_AT_DOMAIN = re.compile(r"@\s*(\[[^\]]*\]|[^\s<>,;:()\[\]\"@]+)")
_DMARC_ORDER = {DmarcVerdict.FAIL: 0, DmarcVerdict.TEMPERROR: 1, DmarcVerdict.PERMERROR: 2,
                DmarcVerdict.NONE: 3, DmarcVerdict.PASS: 4}


class FromDomainError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class AuthVerdict:
    spf: SpfResult  # the MAIL FROM identity
    spf_helo: SpfResult | None
    dkim: list[DkimResult]
    dmarc: DmarcResult
    header: bytes  # "Authentication-Results: ...\r\n", to prepend to the stored message
    all_dmarc: list[DmarcResult] = field(default_factory=list)  # one per author domain

    @property
    def temporary(self) -> bool:
        """True when some result is temperror: answer 451, never a permanent rejection."""
        return (
            self.spf.result == SpfVerdict.TEMPERROR
            or self.dmarc.result == DmarcVerdict.TEMPERROR
            or any(r.result == DkimVerdict.TEMPERROR for r in self.dkim)
        )

    @property
    def header_value(self) -> str:
        return self.header.decode("ascii").split(":", 1)[1].strip()


def author_domains(from_values: list[str]) -> list[str]:
    """The domains of the RFC5322.From field(s), lower-case A-labels where possible.
    FromDomainError when there is no usable, unambiguous author address."""
    if not from_values:
        raise FromDomainError("no From field")
    domains: list[str] = []
    for raw in from_values:
        entries = [e for e in parse_addresses(raw, max_addresses=50) if e[3] is not None]
        if not entries:
            raise FromDomainError("From holds no address")
        parsed = set()
        for _, _, mailbox, host in entries:
            if mailbox in (None, MISSING_MAILBOX) or host in (None, MISSING_DOMAIN):
                raise FromDomainError("From address without mailbox or domain")
            if host.startswith("["):
                raise FromDomainError("From address with an address literal")
            try:
                domain = parse_domain(_decode(host), allow_utf8=True)
            except AddressError:
                raise FromDomainError("invalid From domain") from None
            parsed.add(domain)
            if domain not in domains:
                domains.append(domain)
        # cross-check: every @domain outside quoted strings and comments must be one we parsed
        text = _QUOTED.sub('""', raw)
        for _ in range(20):
            stripped = _COMMENT.sub(" ", text)
            if stripped == text:
                break
            text = stripped
        if "(" in text or ")" in text:
            raise FromDomainError("ambiguous From (unbalanced parentheses)")
        seen = {_decode(m.group(1)).lower().rstrip(".") for m in _AT_DOMAIN.finditer(text)}
        if not seen <= parsed | {""}:
            raise FromDomainError("ambiguous From (more domains than addresses)")
    return [_a_label(d) for d in domains]


def _decode(text: str) -> str:
    # mime gives one char per byte (latin-1); UTF-8 domains come back as their characters
    try:
        return text.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return text


def _a_label(domain: str) -> str:
    if domain.isascii():
        return domain
    try:
        return domain.encode("idna").decode("ascii")
    except UnicodeError:
        return domain


def _from_values(message: bytes) -> list[str]:
    fields, _ = split_message(message)
    return [f.value.replace(b"\r\n", b"").decode("latin-1").strip() for f in fields if f.name == b"from"]


async def verify_message(
    resolver: Resolver,
    raw_message: bytes,
    client_ip: str | IPAddress,
    helo: str,
    mail_from: str | None,
    authserv_id: str,
    *,
    timeout: float = 20.0,
    check_helo: bool = True,
    psl: PublicSuffixList | None = None,
) -> AuthVerdict:
    """SPF (MAIL FROM and HELO), DKIM (every signature) and DMARC for a received message.
    ``mail_from`` is the reverse-path without brackets, ``""``/None for the null sender."""
    ip = ipaddress.ip_address(client_ip) if isinstance(client_ip, str) else client_ip
    inner = timeout * 0.9
    try:
        domains = author_domains(_from_values(raw_message))[:MAX_AUTHOR_DOMAINS]
        from_error = ""
    except FromDomainError as exc:
        domains, from_error = [], str(exc)

    async def helo_check() -> SpfResult | None:
        return await check_spf_helo(resolver, ip, helo, receiver=authserv_id, timeout=inner) if check_helo else None

    async def lookups() -> list[DmarcLookup]:
        async def one(domain: str) -> DmarcLookup:
            try:
                async with asyncio.timeout(inner):
                    return await lookup_dmarc(resolver, domain, psl=psl)
            except TimeoutError:
                return DmarcLookup(domain, domain, error=DmarcVerdict.TEMPERROR,
                                   problem=f"DMARC lookup: no answer within {inner:g}s")

        return list(await asyncio.gather(*(one(d) for d in domains)))

    try:
        async with asyncio.timeout(timeout):
            spf, spf_helo, dkim, found = await asyncio.gather(
                check_spf(resolver, ip, mail_from, helo, receiver=authserv_id, timeout=inner),
                helo_check(),
                verify_dkim(resolver, raw_message, timeout=inner),
                lookups(),
            )
    except TimeoutError:  # the checks' own deadlines fire first; this is the backstop
        return _timed_out(raw_message, mail_from, helo, authserv_id, domains, from_error, timeout)

    if from_error:
        dmarc_all = [DmarcResult(DmarcVerdict.PERMERROR, from_domain="", problem=from_error)]
    else:
        dmarc_all = [evaluate_dmarc(lookup, spf, dkim, psl=psl) for lookup in found]
    dmarc = min(dmarc_all, key=lambda r: (_DMARC_ORDER[r.result], r.disposition != "reject"))
    spf_results = [spf] + ([spf_helo] if spf_helo is not None else [])
    header = authentication_results(authserv_id, spf=spf_results, dkim=dkim, dmarc=dmarc)
    return AuthVerdict(spf, spf_helo, dkim, dmarc, header, dmarc_all)


def _timed_out(raw_message: bytes, mail_from: str | None, helo: str, authserv_id: str,
               domains: list[str], from_error: str, timeout: float) -> AuthVerdict:
    problem = f"no result within {timeout:g}s"
    sender = mail_from or f"postmaster@{helo}"
    spf = SpfResult(SpfVerdict.TEMPERROR, "mailfrom", sender, sender.rpartition("@")[2], problem=problem)
    fields, _ = split_message(raw_message)
    dkim = [DkimResult(DkimVerdict.TEMPERROR, problem=problem) for f in fields if f.name == b"dkim-signature"][:10]
    if from_error:
        dmarc = DmarcResult(DmarcVerdict.PERMERROR, from_domain="", problem=from_error)
    else:
        dmarc = DmarcResult(DmarcVerdict.TEMPERROR, from_domain=domains[0] if domains else "", problem=problem)
    header = authentication_results(authserv_id, spf=spf, dkim=dkim, dmarc=dmarc)
    return AuthVerdict(spf, None, dkim, dmarc, header, [dmarc])
