"""SPF (RFC 7208): an async ``check_host()`` over our :class:`Resolver`.

Why our own and not pyspf: pyspf is synchronous and does its own DNS (it would need a thread
per check and a shim feeding it our resolver); here every lookup goes through the injected
resolver, lookups of one term run concurrently, and the whole check has a real deadline.

Theory of operation
-------------------
``check_spf`` checks the MAIL FROM identity (for the null sender, ``postmaster@<HELO>``,
§2.4); ``check_spf_helo`` the HELO identity (§2.3). Both run :meth:`_Check.check_host` (§4):

1. the domain must be a syntactically valid multi-label name, else ``none`` (§4.3);
2. TXT lookup: NXDOMAIN → ``none``; a temporary DNS error → ``temperror`` (§4.4);
3. exactly one record starting with ``v=spf1`` (§4.5): zero → ``none``, more → ``permerror``;
4. the whole record is parsed before anything is evaluated: any syntax error, an unknown
   mechanism, or a repeated ``redirect``/``exp`` is ``permerror`` (§4.6, §6);
5. mechanisms left to right; the first match gives its qualifier's result; then ``redirect``
   (§6.1); else ``neutral`` (§4.7);
6. on ``fail``, ``exp=`` is fetched and expanded for the explanation (§6.2); failures there
   only lose the explanation.

Limits (§4.6.4, §11): at most 10 terms that cause DNS lookups (include, a, mx, ptr, exists,
redirect; checked *before* the lookup, so the 11th is ``permerror``); at most 2 void lookups
(NXDOMAIN or empty answer); an mx term with more than 10 MX records is ``permerror``; only the
first 10 PTR names are used; ``include``/``redirect`` nest at most 10 deep (loops end there or
at the lookup limit). A temporary DNS error anywhere is ``temperror`` — never a hard verdict.
The whole check is bounded by ``timeout`` (§4.6.4 suggests 20 s), which yields ``temperror``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import time
import urllib.parse
from dataclasses import dataclass
from enum import StrEnum

from merpati.resolver import DnsPermError, DnsTempError, IPAddress, NoData, NxDomain, Resolver

__all__ = ["SpfResult", "SpfVerdict", "check_spf", "check_spf_helo", "parse_record", "SpfSyntaxError"]

MAX_LOOKUPS = 10
MAX_VOID_LOOKUPS = 2
MAX_MX = 10
MAX_PTR = 10
MAX_DEPTH = 10
MAX_RECORD = 4096  # bytes of one SPF record we are willing to parse
MAX_EXPLANATION = 512


class SpfVerdict(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    SOFTFAIL = "softfail"
    NEUTRAL = "neutral"
    NONE = "none"
    TEMPERROR = "temperror"
    PERMERROR = "permerror"


_QUALIFIERS = {"+": SpfVerdict.PASS, "-": SpfVerdict.FAIL, "~": SpfVerdict.SOFTFAIL, "?": SpfVerdict.NEUTRAL}


@dataclass(frozen=True, slots=True)
class SpfResult:
    result: SpfVerdict
    identity: str  # "mailfrom" | "helo"
    sender: str  # the checked identity: local@domain (postmaster@helo for the null sender)
    domain: str  # the domain whose policy decided (the top-level one for none/errors)
    explanation: str = ""  # exp= text (fail only)
    problem: str = ""  # why permerror/temperror/none, for logs and Received-SPF
    mechanism: str = ""  # the matching term, e.g. "ip4:192.0.2.0/24"


class SpfSyntaxError(ValueError):
    pass


class _PermError(Exception):
    pass


class _TempError(Exception):
    pass


# -- parsing --------------------------------------------------------------------------

_MODIFIER = re.compile(r"([A-Za-z][A-Za-z0-9\-_.]*)=(.*)\Z", re.S)
_MECHANISM = re.compile(r"([+\-~?]?)([A-Za-z][A-Za-z0-9\-_.]*)(.*)\Z", re.S)
_IP4_CIDR = r"/(?:0|[1-9][0-9]?)"
_IP6_CIDR = r"/(?:0|[1-9][0-9]{0,2})"
_DUAL_CIDR = re.compile(rf"(?:({_IP4_CIDR}))?(?:/({_IP6_CIDR}))?\Z")
_MACRO_EXPAND = re.compile(r"%(?:\{([slodiphcrtvSLODIPHCRTV])([0-9]*)(r?)([.\-+,/_=]*)\}|(%)|(_)|(-))", re.I)
_TOPLABEL = re.compile(r"(?:[A-Za-z0-9]*[A-Za-z][A-Za-z0-9]*|[A-Za-z0-9]+-[A-Za-z0-9\-]*[A-Za-z0-9])\Z")
_EXP_ONLY = set("crt")


@dataclass(frozen=True, slots=True)
class _Macro:
    """A parsed macro-string: literal text and (letter, digits, reverse, delimiters) pieces."""

    pieces: tuple[str | tuple[str, int, bool, str], ...]
    text: str


@dataclass(frozen=True, slots=True)
class _Term:
    qualifier: SpfVerdict
    name: str  # all, include, a, mx, ptr, ip4, ip6, exists
    domain: _Macro | None = None
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None
    cidr4: int = 32
    cidr6: int = 128
    text: str = ""


@dataclass(frozen=True, slots=True)
class _Record:
    terms: tuple[_Term, ...]
    redirect: _Macro | None
    exp: _Macro | None


def _parse_macro(text: str, *, explain: bool = False, domain: bool = True) -> _Macro:
    """Parse a macro-string (RFC 7208 §7.1); with ``domain`` also check the domain-end rule."""
    pieces: list[str | tuple[str, int, bool, str]] = []
    pos = 0
    literal: list[str] = []
    tail_start = 0  # where the literal text after the last macro-expand starts
    while pos < len(text):
        char = text[pos]
        if char == "%":
            m = _MACRO_EXPAND.match(text, pos)
            if m is None:
                raise SpfSyntaxError("bad macro")
            if m.group(1):
                letter = m.group(1)
                if letter.lower() in _EXP_ONLY and not explain:
                    raise SpfSyntaxError(f"macro {letter} only allowed in exp")
                digits = int(m.group(2)) if m.group(2) else 0
                if m.group(2) and digits == 0:
                    raise SpfSyntaxError("macro digit transformer must be nonzero")
                if literal:
                    pieces.append("".join(literal))
                    literal = []
                pieces.append((letter, min(digits, 128), bool(m.group(3)), m.group(4) or "."))
            elif m.group(5):
                literal.append("%")
            elif m.group(6):
                literal.append(" ")
            else:
                literal.append("%20")
            pos = tail_start = m.end()
            continue
        if not (0x21 <= ord(char) <= 0x7E or (explain and char == " ")):
            raise SpfSyntaxError("bad character in macro-string")
        literal.append(char)
        pos += 1
    if literal:
        pieces.append("".join(literal))
    if domain:
        if not text:
            raise SpfSyntaxError("empty domain-spec")
        tail = text[tail_start:]
        if tail:  # domain-end = ( "." toplabel [ "." ] ) / macro-expand  (§7.1)
            tail = tail[:-1] if tail.endswith(".") else tail
            dot = tail.rfind(".")
            if dot < 0 or not _TOPLABEL.match(tail[dot + 1 :]):
                raise SpfSyntaxError("domain-spec must end with a top label")
    return _Macro(tuple(pieces), text)


def parse_record(text: str) -> _Record:
    """Parse one ``v=spf1`` record (the version term included); SpfSyntaxError if invalid."""
    if len(text) > MAX_RECORD:
        raise SpfSyntaxError("record too long")
    tokens = text.split(" ")
    if tokens[0].lower() != "v=spf1":
        raise SpfSyntaxError("not an SPF record")
    terms: list[_Term] = []
    redirect: _Macro | None = None
    exp: _Macro | None = None
    for token in tokens[1:]:
        if not token:
            continue
        modifier = _MODIFIER.match(token)
        if modifier is not None:
            name, value = modifier.group(1).lower(), modifier.group(2)
            if name == "redirect":
                if redirect is not None:
                    raise SpfSyntaxError("redirect given twice")
                redirect = _parse_macro(value)
            elif name == "exp":
                if exp is not None:
                    raise SpfSyntaxError("exp given twice")
                exp = _parse_macro(value)
            else:
                _parse_macro(value, domain=False)  # unknown modifiers: ignored, but must parse
            continue
        terms.append(_parse_mechanism(token))
    return _Record(tuple(terms), redirect, exp)


def _parse_mechanism(token: str) -> _Term:
    m = _MECHANISM.match(token)
    if m is None:
        raise SpfSyntaxError("bad term")
    qualifier = _QUALIFIERS[m.group(1) or "+"]
    name, rest = m.group(2).lower(), m.group(3)
    if name == "all":
        if rest:
            raise SpfSyntaxError("all takes no argument")
        return _Term(qualifier, name, text=token)
    if name in ("include", "exists"):
        if not rest.startswith(":") or len(rest) < 2:
            raise SpfSyntaxError(f"{name} needs a domain")
        return _Term(qualifier, name, domain=_parse_macro(rest[1:]), text=token)
    if name in ("a", "mx"):
        domain: _Macro | None = None
        spec, cidr = rest, ""
        if rest.startswith(":"):
            slash = rest.find("/")
            spec, cidr = (rest[1:], "") if slash < 0 else (rest[1:slash], rest[slash:])
            if not spec:
                raise SpfSyntaxError(f"{name}: empty domain")
            domain = _parse_macro(spec)
        elif rest and not rest.startswith("/"):
            raise SpfSyntaxError(f"bad {name} term")
        else:
            cidr = rest
        c = _DUAL_CIDR.match(cidr)
        if c is None:
            raise SpfSyntaxError("bad cidr length")
        cidr4 = int(c.group(1)[1:]) if c.group(1) else 32
        cidr6 = int(c.group(2)[1:]) if c.group(2) else 128
        if cidr4 > 32 or cidr6 > 128:
            raise SpfSyntaxError("cidr length out of range")
        return _Term(qualifier, name, domain=domain, cidr4=cidr4, cidr6=cidr6, text=token)
    if name == "ptr":
        domain = None
        if rest:
            if not rest.startswith(":") or len(rest) < 2:
                raise SpfSyntaxError("bad ptr term")
            domain = _parse_macro(rest[1:])
        return _Term(qualifier, name, domain=domain, text=token)
    if name in ("ip4", "ip6"):
        if not rest.startswith(":"):
            raise SpfSyntaxError(f"{name} needs an address")
        value = rest[1:]
        address, slash, length = value.partition("/")
        pattern = _IP4_CIDR if name == "ip4" else _IP6_CIDR
        if slash and not re.fullmatch(pattern, "/" + length):
            raise SpfSyntaxError("bad cidr length")
        try:
            ip = ipaddress.IPv4Address(address) if name == "ip4" else ipaddress.IPv6Address(address)
            network = ipaddress.ip_network(f"{ip}/{length or ip.max_prefixlen}", strict=False)
        except ValueError:
            raise SpfSyntaxError(f"bad {name} address") from None
        return _Term(qualifier, name, network=network, text=token)
    raise SpfSyntaxError(f"unknown mechanism {name}")


# -- evaluation -----------------------------------------------------------------------


def _valid_domain(domain: str) -> bool:
    if not domain or len(domain) > 253 or not domain.isascii():
        return False
    labels = domain.split(".")
    if len(labels) < 2:
        return False
    return all(0 < len(label) <= 63 for label in labels)


class _Check:
    def __init__(self, resolver: Resolver, ip: IPAddress, sender: str, helo: str, receiver: str) -> None:
        self.resolver = resolver
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped  # §5: an IPv4-mapped client is an IPv4 client
        self.ip = ip
        self.sender = sender
        self.local, _, self.sender_domain = sender.rpartition("@")
        self.helo = helo
        self.receiver = receiver
        self.lookups = 0
        self.voids = 0
        self.matched = ""
        self.decided_domain = ""

    # limits

    def count_lookup(self) -> None:
        self.lookups += 1
        if self.lookups > MAX_LOOKUPS:
            raise _PermError("more than 10 DNS-querying terms")

    def count_void(self) -> None:
        self.voids += 1
        if self.voids > MAX_VOID_LOOKUPS:
            raise _PermError("more than 2 void lookups")

    # DNS helpers: None for a permanent negative answer (counted as void), raise on temp

    async def _addresses(self, name: str, *, void: bool = True) -> list[IPAddress] | None:
        lookup = self.resolver.a if self.ip.version == 4 else self.resolver.aaaa
        try:
            return list(await lookup(name))
        except (NxDomain, NoData):
            if void:
                self.count_void()
            return None
        except DnsPermError:
            return None
        except DnsTempError as exc:
            raise _TempError(str(exc)) from None

    # the algorithm

    async def check_host(self, domain: str, depth: int = 0) -> tuple[SpfVerdict, str]:
        """(result, explanation) for ``domain`` (RFC 7208 §4)."""
        if depth > MAX_DEPTH:
            raise _PermError("include/redirect nested too deep")
        domain = domain.rstrip(".").lower()
        if not _valid_domain(domain):
            return SpfVerdict.NONE, ""
        try:
            texts = await self.resolver.txt(domain)
        except (NxDomain, NoData):
            if depth:
                self.count_void()
            return SpfVerdict.NONE, ""
        except DnsPermError:
            return SpfVerdict.NONE, ""
        except DnsTempError as exc:
            raise _TempError(str(exc)) from None
        records = [t for t in texts if t[:6].lower() == b"v=spf1" and (len(t) == 6 or t[6:7] == b" ")]
        if not records:
            return SpfVerdict.NONE, ""
        if len(records) > 1:
            raise _PermError(f"{domain}: more than one SPF record")
        try:
            record = parse_record(records[0].decode("ascii"))
        except UnicodeDecodeError:
            raise _PermError(f"{domain}: non-ASCII SPF record") from None
        except SpfSyntaxError as exc:
            raise _PermError(f"{domain}: {exc}") from None
        self.decided_domain = domain

        for term in record.terms:
            if await self._matches(term, domain, depth):
                self.matched = term.text
                self.decided_domain = domain
                if term.qualifier == SpfVerdict.FAIL and record.exp is not None and depth == 0:
                    return term.qualifier, await self._explain(record.exp, domain)
                return term.qualifier, ""

        if record.redirect is not None:
            self.count_lookup()
            target = await self._expand_domain(record.redirect, domain)
            if not _valid_domain(target):
                raise _PermError(f"{domain}: bad redirect target")
            result, explanation = await self.check_host(target, depth + 1)
            if result == SpfVerdict.NONE:
                raise _PermError(f"{domain}: redirect to {target} without SPF record")
            return result, explanation
        return SpfVerdict.NEUTRAL, ""

    async def _matches(self, term: _Term, domain: str, depth: int) -> bool:
        name = term.name
        if name == "all":
            return True
        if name in ("ip4", "ip6"):
            network = term.network
            assert network is not None
            return network.version == self.ip.version and self.ip in network
        self.count_lookup()
        target = await self._expand_domain(term.domain, domain) if term.domain else domain
        if name == "include":
            if not _valid_domain(target):
                raise _PermError(f"include: bad domain {target!r}")
            result, _ = await self.check_host(target, depth + 1)
            if result == SpfVerdict.PASS:
                return True
            if result in (SpfVerdict.FAIL, SpfVerdict.SOFTFAIL, SpfVerdict.NEUTRAL):
                return False
            raise _PermError(f"include:{target} gave {result}")  # none/permerror (temp raised)
        if name == "a":
            addresses = await self._addresses(target)
            return bool(addresses) and self._in_cidr(addresses, term)
        if name == "mx":
            return await self._mx_matches(target, term)
        if name == "ptr":
            return any(_is_subdomain(n, target) for n in await self._validated_names(target))
        if name == "exists":
            try:
                return bool(await self.resolver.a(target))
            except (NxDomain, NoData):
                self.count_void()
                return False
            except DnsPermError:
                return False
            except DnsTempError as exc:
                raise _TempError(str(exc)) from None
        raise _PermError(f"unknown mechanism {name}")

    def _in_cidr(self, addresses: list[IPAddress], term: _Term) -> bool:
        prefix = term.cidr4 if self.ip.version == 4 else term.cidr6
        network = ipaddress.ip_network(f"{self.ip}/{prefix}", strict=False)
        return any(a.version == self.ip.version and a in network for a in addresses)

    async def _mx_matches(self, target: str, term: _Term) -> bool:
        try:
            records = await self.resolver.mx(target)
        except (NxDomain, NoData):
            self.count_void()
            return False
        except DnsPermError:
            return False
        except DnsTempError as exc:
            raise _TempError(str(exc)) from None
        hosts = [r.host for r in records if r.host]
        if len(records) > MAX_MX:
            raise _PermError(f"mx:{target} has more than 10 MX records")
        results = await asyncio.gather(*(self._addresses(h, void=False) for h in hosts), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
            if result and self._in_cidr(result, term):
                return True
        return False

    async def _validated_names(self, target: str | None) -> list[str]:
        """RFC 7208 §5.5: PTR names of the client whose A/AAAA include the client address."""
        try:
            names = (await self.resolver.ptr(self.ip))[:MAX_PTR]
        except (NxDomain, NoData):
            self.count_void()
            return []
        except (DnsPermError, DnsTempError):
            return []  # §5.5: a DNS error on the PTR lookup is just no match
        if target is not None:
            # names matching the target first, as §5.5 suggests: fewer lookups usually
            names.sort(key=lambda n: not _is_subdomain(n, target))

        async def check(name: str) -> str | None:
            try:
                lookup = self.resolver.a if self.ip.version == 4 else self.resolver.aaaa
                return name if self.ip in await lookup(name) else None
            except (DnsPermError, DnsTempError):
                return None

        return [n for n in await asyncio.gather(*(check(n) for n in names)) if n]

    async def _expand_domain(self, macro: _Macro | None, domain: str) -> str:
        assert macro is not None
        expanded = await self._expand(macro, domain)
        expanded = expanded.rstrip(".")
        while len(expanded) > 253 and "." in expanded:  # §7.3: drop labels from the left
            expanded = expanded.split(".", 1)[1]
        return expanded

    async def _expand(self, macro: _Macro, domain: str) -> str:
        out: list[str] = []
        for piece in macro.pieces:
            if isinstance(piece, str):
                out.append(piece)
                continue
            letter, digits, reverse, delimiters = piece
            value = await self._macro_value(letter.lower(), domain)
            if digits or reverse or delimiters != ".":
                parts = re.split("[" + re.escape(delimiters) + "]", value)
                if reverse:
                    parts.reverse()
                if digits:
                    parts = parts[-digits:]
                value = ".".join(parts)
            if letter.isupper():
                value = urllib.parse.quote(value, safe="")
            out.append(value)
        return "".join(out)

    async def _macro_value(self, letter: str, domain: str) -> str:
        if letter == "s":
            return self.sender
        if letter == "l":
            return self.local or "postmaster"
        if letter == "o":
            return self.sender_domain
        if letter == "d":
            return domain
        if letter == "i":
            if self.ip.version == 4:
                return str(self.ip)
            return ".".join(self.ip.exploded.replace(":", ""))
        if letter == "p":
            self.count_lookup()
            names = await self._validated_names(domain)
            exact = [n for n in names if n == domain]
            sub = [n for n in names if _is_subdomain(n, domain)]
            return (exact or sub or names or ["unknown"])[0]
        if letter == "v":
            return "in-addr" if self.ip.version == 4 else "ip6"
        if letter == "h":
            return self.helo
        if letter == "c":
            return str(self.ip)
        if letter == "r":
            return self.receiver or "unknown"
        if letter == "t":
            return str(int(time.time()))
        raise _PermError(f"bad macro letter {letter}")

    async def _explain(self, exp: _Macro, domain: str) -> str:
        """§6.2: any problem just means no explanation."""
        try:
            target = await self._expand_domain(exp, domain)
            if not _valid_domain(target):
                return ""
            texts = await self.resolver.txt(target)
            if len(texts) != 1:
                return ""
            text = texts[0].decode("ascii")
            explanation = await self._expand(_parse_macro(text, explain=True, domain=False), domain)
        except (DnsPermError, DnsTempError, UnicodeDecodeError, SpfSyntaxError, _PermError, _TempError):
            return ""
        return "".join(c for c in explanation if 0x20 <= ord(c) < 0x7F)[:MAX_EXPLANATION]


def _is_subdomain(name: str, domain: str) -> bool:
    name, domain = name.lower().rstrip("."), domain.lower().rstrip(".")
    return name == domain or name.endswith("." + domain)


async def _run(check: _Check, domain: str, identity: str, timeout: float) -> SpfResult:
    try:
        async with asyncio.timeout(timeout):
            result, explanation = await check.check_host(domain)
    except _PermError as exc:
        return SpfResult(SpfVerdict.PERMERROR, identity, check.sender, domain, problem=str(exc))
    except _TempError as exc:
        return SpfResult(SpfVerdict.TEMPERROR, identity, check.sender, domain, problem=str(exc))
    except TimeoutError:
        return SpfResult(SpfVerdict.TEMPERROR, identity, check.sender, domain, problem=f"no result within {timeout:g}s")
    problem = "no SPF record" if result == SpfVerdict.NONE else ""
    return SpfResult(result, identity, check.sender, check.decided_domain or domain, explanation, problem, check.matched)


def _ip(ip: str | IPAddress) -> IPAddress:
    return ipaddress.ip_address(ip) if isinstance(ip, str) else ip


async def check_spf(
    resolver: Resolver,
    ip: str | IPAddress,
    mail_from: str | None,
    helo: str,
    *,
    receiver: str = "",
    timeout: float = 20.0,
) -> SpfResult:
    """SPF for the MAIL FROM identity. ``mail_from`` is the reverse-path without brackets
    (``None`` or ``""`` for the null sender, which checks ``postmaster@<helo>``)."""
    helo = (helo or "").strip()
    if not mail_from:
        sender, domain = f"postmaster@{helo}", helo
    else:
        local, at, domain = mail_from.rpartition("@")
        if not at:
            local, domain = "", mail_from
        sender = f"{local or 'postmaster'}@{domain}"
    domain = domain.rstrip(".").lower()
    check = _Check(resolver, _ip(ip), sender, helo, receiver)
    return await _run(check, domain, "mailfrom", timeout)


async def check_spf_helo(
    resolver: Resolver, ip: str | IPAddress, helo: str, *, receiver: str = "", timeout: float = 20.0
) -> SpfResult:
    """SPF for the HELO identity (RFC 7208 §2.3); an address literal HELO gives ``none``."""
    helo = (helo or "").strip()
    domain = helo.rstrip(".").lower()
    check = _Check(resolver, _ip(ip), f"postmaster@{helo}", helo, receiver)
    if helo.startswith("["):
        return SpfResult(SpfVerdict.NONE, "helo", check.sender, domain, problem="HELO is an address literal")
    return await _run(check, domain, "helo", timeout)
