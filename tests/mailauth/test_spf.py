"""SPF (RFC 7208): the RFC's own examples (Appendix A, §7.4), the limits of §4.6.4, error
handling, and a differential check against pyspf fed from the same DNS table."""

from __future__ import annotations

import asyncio
import ipaddress

import pytest
import spf as pyspf

from merpati.mailauth.spf import (
    SpfSyntaxError,
    SpfVerdict,
    _Check,
    _parse_macro,
    check_spf,
    check_spf_helo,
    parse_record,
)
from merpati.resolver import FakeResolver
from merpati.resolver.api import DnsPermError, DnsTempError, NoData, NxDomain


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


# RFC 7208 Appendix A
APPENDIX_A = {
    "example.com": {"A": ["192.0.2.10", "192.0.2.11"], "MX": [(10, "mail-a.example.com"), (20, "mail-b.example.com")]},
    "amy.example.com": {"A": ["192.0.2.65"]},
    "bob.example.com": {"A": ["192.0.2.66"]},
    "mail-a.example.com": {"A": ["192.0.2.129"]},
    "mail-b.example.com": {"A": ["192.0.2.130"]},
    "www.example.com": {"CNAME": "example.com"},
    "example.org": {"MX": [(10, "mail-c.example.org")]},
    "mail-c.example.org": {"A": ["192.0.2.140"]},
    "10.2.0.192.in-addr.arpa": {"PTR": ["example.com"]},
    "11.2.0.192.in-addr.arpa": {"PTR": ["example.com"]},
    "65.2.0.192.in-addr.arpa": {"PTR": ["amy.example.com"]},
    "66.2.0.192.in-addr.arpa": {"PTR": ["bob.example.com"]},
    "129.2.0.192.in-addr.arpa": {"PTR": ["mail-a.example.com"]},
    "130.2.0.192.in-addr.arpa": {"PTR": ["mail-b.example.com"]},
    "140.2.0.192.in-addr.arpa": {"PTR": ["mail-c.example.org"]},
    "10.0.0.10.in-addr.arpa": {"PTR": ["bob.example.com"]},
}
ALL_IPS = ["192.0.2.10", "192.0.2.11", "192.0.2.65", "192.0.2.66", "192.0.2.129", "192.0.2.130",
           "192.0.2.131", "192.0.2.140", "192.0.2.143", "192.0.2.144", "10.0.0.10"]

APPENDIX_A1 = [
    ("v=spf1 +all", set(ALL_IPS)),
    ("v=spf1 a -all", {"192.0.2.10", "192.0.2.11"}),
    ("v=spf1 a:example.org -all", set()),
    ("v=spf1 mx -all", {"192.0.2.129", "192.0.2.130"}),
    ("v=spf1 mx:example.org -all", {"192.0.2.140"}),
    ("v=spf1 mx mx:example.org -all", {"192.0.2.129", "192.0.2.130", "192.0.2.140"}),
    ("v=spf1 mx/30 mx:example.org/30 -all", {"192.0.2.129", "192.0.2.130", "192.0.2.131", "192.0.2.140", "192.0.2.143"}),
    ("v=spf1 ptr -all", {"192.0.2.10", "192.0.2.11", "192.0.2.65", "192.0.2.66", "192.0.2.129", "192.0.2.130"}),
    ("v=spf1 ip4:192.0.2.128/28 -all", {"192.0.2.129", "192.0.2.130", "192.0.2.131", "192.0.2.140", "192.0.2.143"}),
]


@pytest.mark.parametrize(("record", "passing"), APPENDIX_A1)
def test_rfc7208_appendix_a1(record: str, passing: set[str]) -> None:
    fake = FakeResolver(APPENDIX_A)
    fake.add("example.com", "TXT", [record])
    for ip in ALL_IPS:
        result = run(check_spf(fake, ip, "user@example.com", "mx.example.net"))
        expected = SpfVerdict.PASS if ip in passing else SpfVerdict.FAIL
        assert result.result == expected, (record, ip, result)
        assert result.domain == "example.com" and result.identity == "mailfrom"


def test_rfc7208_macro_examples() -> None:
    async def expand(text: str, ip: str = "192.0.2.3") -> str:
        check = _Check(FakeResolver(), ipaddress.ip_address(ip), "strong-bad@email.example.com", "h.example", "")
        return await check._expand(_parse_macro(text, explain=True, domain=False), "email.example.com")

    table = {
        "%{s}": "strong-bad@email.example.com", "%{o}": "email.example.com", "%{d}": "email.example.com",
        "%{d4}": "email.example.com", "%{d3}": "email.example.com", "%{d2}": "example.com", "%{d1}": "com",
        "%{dr}": "com.example.email", "%{d2r}": "example.email", "%{l}": "strong-bad", "%{l-}": "strong.bad",
        "%{lr}": "strong-bad", "%{lr-}": "bad.strong", "%{l1r-}": "strong",
        "%{ir}.%{v}._spf.%{d2}": "3.2.0.192.in-addr._spf.example.com",
        "%{lr-}.lp._spf.%{d2}": "bad.strong.lp._spf.example.com",
        "%{lr-}.lp.%{ir}.%{v}._spf.%{d2}": "bad.strong.lp.3.2.0.192.in-addr._spf.example.com",
        "%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}": "3.2.0.192.in-addr.strong.lp._spf.example.com",
        "%{d2}.trusted-domains.example.net": "example.com.trusted-domains.example.net",
        "%%%_%-": "% %20", "%{S}": "strong-bad%40email.example.com", "%{c}": "192.0.2.3",
    }
    for macro, expected in table.items():
        assert run(expand(macro)) == expected, macro
    assert run(expand("%{ir}.%{v}._spf.%{d2}", "2001:db8::cb01")) == (
        "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6._spf.example.com"
    )


@pytest.mark.parametrize("record", [
    "v=spf1 foo", "v=spf1 a:", "v=spf1 ip4:1.2.3.4/33", "v=spf1 ip4:1.2.3", "v=spf1 ip6:::1/129",
    "v=spf1 ip4:192.0.2.0/024", "v=spf1 redirect=a.com redirect=b.com", "v=spf1 exp=a.com exp=b.com",
    "v=spf1 include", "v=spf1 a:%{x}.com", "v=spf1 a:%{d0}.com", "v=spf1 a:foo.123", "v=spf1 all:x",
    "v=spf1 exists:%{c}.com", "v=spf1 a:foo%", "v=spf1 mx//129", "v=spf1 a/", "v=spf1 -",
])
def test_syntax_errors_are_permerror(record: str) -> None:
    with pytest.raises(SpfSyntaxError):
        parse_record(record)
    fake = FakeResolver({"example.com": {"TXT": [record]}})
    assert run(check_spf(fake, "192.0.2.1", "u@example.com", "h")).result == SpfVerdict.PERMERROR


def test_syntax_error_after_a_match_is_still_permerror() -> None:
    fake = FakeResolver({"example.com": {"TXT": ["v=spf1 +all bogus:x"]}})
    assert run(check_spf(fake, "192.0.2.1", "u@example.com", "h")).result == SpfVerdict.PERMERROR


@pytest.mark.parametrize("record", [
    "v=spf1 a:%{d}", "v=spf1 a:foo-bar.com-x", "v=spf1 unknown=anything -all", "v=spf1  -all  ",
    "V=SPF1 -ALL", "v=spf1 a:%{l1r+-}.example.com", "v=spf1 ip6:::1/0",
])
def test_valid_records(record: str) -> None:
    parse_record(record)


def test_record_selection() -> None:
    fake = FakeResolver({
        "none.example": {"TXT": ["v=spf10 +all", "hello"]},
        "two.example": {"TXT": ["v=spf1 +all", "v=spf1 -all"]},
        "split.example": {"TXT": [["v=spf1 ip4:192.0.2.1", " -all"]]},
    })
    assert run(check_spf(fake, "192.0.2.1", "u@none.example", "h")).result == SpfVerdict.NONE
    assert run(check_spf(fake, "192.0.2.1", "u@two.example", "h")).result == SpfVerdict.PERMERROR
    assert run(check_spf(fake, "192.0.2.1", "u@split.example", "h")).result == SpfVerdict.PASS
    assert run(check_spf(fake, "192.0.2.1", "u@nx.example", "h")).result == SpfVerdict.NONE
    assert run(check_spf(fake, "192.0.2.1", "u@nodot", "h")).result == SpfVerdict.NONE
    assert run(check_spf(fake, "192.0.2.1", "u@" + "a" * 64 + ".example", "h")).result == SpfVerdict.NONE


def test_include_and_redirect() -> None:
    fake = FakeResolver({
        "example.com": {"TXT": ["v=spf1 include:_spf.example.net ~all"]},
        "_spf.example.net": {"TXT": ["v=spf1 ip4:192.0.2.0/24 -all"]},
        "redir.example": {"TXT": ["v=spf1 redirect=_spf.example.net"]},
        "redir-none.example": {"TXT": ["v=spf1 redirect=nothing.example"]},
        "inc-none.example": {"TXT": ["v=spf1 include:nothing.example -all"]},
        "loop.example": {"TXT": ["v=spf1 include:loop.example -all"]},
        "inc-temp.example": {"TXT": ["v=spf1 include:broken.example -all"]},
        "ignored.example": {"TXT": ["v=spf1 -all redirect=_spf.example.net"]},
    }, servfail={"broken.example"})

    def result(domain: str, ip: str = "192.0.2.9") -> SpfVerdict:
        return run(check_spf(fake, ip, f"u@{domain}", "h")).result

    assert result("example.com") == SpfVerdict.PASS
    assert result("example.com", "198.51.100.1") == SpfVerdict.SOFTFAIL  # include's -all is no match
    assert result("redir.example") == SpfVerdict.PASS
    assert result("redir.example", "198.51.100.1") == SpfVerdict.FAIL
    assert result("redir-none.example") == SpfVerdict.PERMERROR
    assert result("inc-none.example") == SpfVerdict.PERMERROR
    assert result("loop.example") == SpfVerdict.PERMERROR
    assert result("inc-temp.example") == SpfVerdict.TEMPERROR
    assert result("ignored.example") == SpfVerdict.FAIL  # redirect only when nothing matched
    full = run(check_spf(fake, "192.0.2.9", "u@redir.example", "h"))
    assert full.domain == "_spf.example.net" and full.mechanism == "ip4:192.0.2.0/24"


def test_lookup_limit_is_ten_terms_checked_before_the_lookup() -> None:
    records = {f"h{i}.example": {"A": ["198.51.100.1"]} for i in range(12)}
    records["ten.example"] = {"TXT": ["v=spf1 " + " ".join(f"a:h{i}.example" for i in range(9)) + " a:h9.example/0 -all"]}
    records["eleven.example"] = {"TXT": ["v=spf1 " + " ".join(f"a:h{i}.example" for i in range(10)) + " a:h10.example/0 -all"]}
    records["ip-after.example"] = {"TXT": ["v=spf1 " + " ".join(f"a:h{i}.example" for i in range(10)) + " ip4:192.0.2.1 -all"]}
    fake = FakeResolver(records)
    assert run(check_spf(fake, "192.0.2.1", "u@ten.example", "h")).result == SpfVerdict.PASS
    eleven = run(check_spf(fake, "192.0.2.1", "u@eleven.example", "h"))
    assert eleven.result == SpfVerdict.PERMERROR and "10" in eleven.problem
    assert ("h10.example", "A") not in fake.queries
    # ip4/all do not count
    assert run(check_spf(fake, "192.0.2.1", "u@ip-after.example", "h")).result == SpfVerdict.PASS


def test_void_lookup_limit() -> None:
    fake = FakeResolver({
        "two.example": {"TXT": ["v=spf1 a:nx1.example a:nx2.example ip4:192.0.2.1 -all"]},
        "three.example": {"TXT": ["v=spf1 a:nx1.example a:nx2.example exists:nx3.example ip4:192.0.2.1 -all"]},
    })
    assert run(check_spf(fake, "192.0.2.1", "u@two.example", "h")).result == SpfVerdict.PASS
    assert run(check_spf(fake, "192.0.2.1", "u@three.example", "h")).result == SpfVerdict.PERMERROR


def test_mx_with_more_than_ten_records_is_permerror() -> None:
    records = {"many.example": {"TXT": ["v=spf1 mx -all"], "MX": [(i, f"mx{i}.example") for i in range(11)]}}
    fake = FakeResolver(records)
    assert run(check_spf(fake, "192.0.2.1", "u@many.example", "h")).result == SpfVerdict.PERMERROR


def test_temporary_dns_errors_are_temperror() -> None:
    base = {"example.com": {"TXT": ["v=spf1 a:a.example mx:m.example -all"]}, "m.example": {"MX": [(1, "mx.m.example")]}}
    assert run(check_spf(FakeResolver(base, servfail={"example.com"}), "192.0.2.1", "u@example.com", "h")).result == "temperror"
    assert run(check_spf(FakeResolver(base, timeout={"a.example"}), "192.0.2.1", "u@example.com", "h")).result == "temperror"
    assert run(check_spf(FakeResolver(base, timeout={"mx.m.example"}), "192.0.2.1", "u@example.com", "h")).result == "temperror"


def test_overall_time_limit_is_temperror() -> None:
    fake = FakeResolver({"example.com": {"TXT": ["v=spf1 -all"]}}, delays={"example.com": 30})
    result = run(check_spf(fake, "192.0.2.1", "u@example.com", "h", timeout=0.05))
    assert result.result == SpfVerdict.TEMPERROR


def test_ipv6_and_mapped_clients() -> None:
    fake = FakeResolver({
        "example.com": {"TXT": ["v=spf1 ip6:2001:db8::/32 a//64 ip4:192.0.2.1 -all"], "AAAA": ["2001:db9::1"]},
    })
    assert run(check_spf(fake, "2001:db8::5", "u@example.com", "h")).result == SpfVerdict.PASS
    assert run(check_spf(fake, "2001:db9::ffff", "u@example.com", "h")).result == SpfVerdict.PASS
    assert run(check_spf(fake, "2001:dba::1", "u@example.com", "h")).result == SpfVerdict.FAIL
    assert run(check_spf(fake, "::ffff:192.0.2.1", "u@example.com", "h")).result == SpfVerdict.PASS


def test_exists_and_explanation() -> None:
    fake = FakeResolver({
        "example.com": {"TXT": ["v=spf1 exists:%{ir}.allow.example.com -all exp=why.example.com"]},
        "1.2.0.192.allow.example.com": {"A": ["127.0.0.2"]},
        "why.example.com": {"TXT": ["%{i} is not one of %{d}'s designated mail servers."]},
    })
    assert run(check_spf(fake, "192.0.2.1", "u@example.com", "h")).result == SpfVerdict.PASS
    result = run(check_spf(fake, "192.0.2.99", "u@example.com", "h"))
    assert result.result == SpfVerdict.FAIL
    assert result.explanation == "192.0.2.99 is not one of example.com's designated mail servers."


def test_null_sender_and_helo() -> None:
    fake = FakeResolver({"mx.example.org": {"TXT": ["v=spf1 a -all"], "A": ["192.0.2.5"]}})
    result = run(check_spf(fake, "192.0.2.5", "", "mx.example.org"))
    assert result.result == SpfVerdict.PASS and result.sender == "postmaster@mx.example.org"
    assert run(check_spf_helo(fake, "192.0.2.5", "mx.example.org")).result == SpfVerdict.PASS
    helo = run(check_spf_helo(fake, "192.0.2.6", "mx.example.org"))
    assert helo.result == SpfVerdict.FAIL and helo.identity == "helo"
    assert run(check_spf_helo(fake, "192.0.2.5", "[192.0.2.5]")).result == SpfVerdict.NONE


def test_ptr_and_p_macro() -> None:
    fake = FakeResolver(APPENDIX_A | {"example.com": APPENDIX_A["example.com"] | {
        "TXT": ["v=spf1 exists:%{p}.ok.example.net -all"]},
        "amy.example.com.ok.example.net": {"A": ["127.0.0.2"]},
    })
    assert run(check_spf(fake, "192.0.2.65", "u@example.com", "h")).result == SpfVerdict.PASS
    assert run(check_spf(fake, "10.0.0.10", "u@example.com", "h")).result == SpfVerdict.FAIL


# -- differential: the same tables through pyspf ---------------------------------------

DIFF_RECORDS = APPENDIX_A | {
    "d1.example": {"TXT": ["v=spf1 include:example.com ?all"]},
    "d2.example": {"TXT": ["v=spf1 redirect=example.com"]},
    "d3.example": {"TXT": ["v=spf1 -ip4:192.0.2.10 a:example.com mx:example.org ~all"]},
    "d4.example": {"TXT": ["v=spf1 a:nx1.example a:nx2.example a:nx3.example +all"]},
    "d5.example": {"TXT": ["v=spf1 ptr:example.org ptr:example.com -all"]},
    "d6.example": {"TXT": ["v=spf1 exists:%{ir}.%{v}.list.example ~all"]},
    "10.2.0.192.in-addr.list.example": {"A": ["127.0.0.2"]},
    "d7.example": {"TXT": ["v=spf1 include:d1.example include:d2.example -all"]},
    "d8.example": {"TXT": ["v=spf1 mx/24 -all"], "MX": [(5, "mail-c.example.org")]},
}
DIFF_DOMAINS = ["example.com", "d1.example", "d2.example", "d3.example", "d4.example", "d5.example",
                "d6.example", "d7.example", "d8.example"]


def _pyspf_lookup(fake: FakeResolver):  # type: ignore[no-untyped-def]
    def lookup(name, qtype, *args, **kwargs):  # type: ignore[no-untyped-def]
        name = str(name).rstrip(".")
        try:
            if qtype == "TXT":
                return [((name, "TXT"), [bytes(t)]) for t in run(fake.txt(name))]
            if qtype == "MX":
                return [((name, "MX"), (r.preference, r.host)) for r in run(fake.mx(name))]
            if qtype in ("A", "AAAA"):
                answers = run(fake.a(name) if qtype == "A" else fake.aaaa(name))
                return [((name, qtype), str(a)) for a in answers]
            if qtype == "PTR":
                return [((name, "PTR"), v) for v in run(fake._lookup(name, "PTR"))]
        except (NxDomain, NoData, DnsPermError):
            return []
        except DnsTempError as exc:
            raise pyspf.TempError(str(exc)) from None
        return []

    return lookup


def test_differential_against_pyspf(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeResolver(DIFF_RECORDS)
    fake.add("example.com", "TXT", ["v=spf1 a mx ptr -all"])
    monkeypatch.setattr(pyspf, "DNSLookup", _pyspf_lookup(FakeResolver(DIFF_RECORDS | {
        "example.com": DIFF_RECORDS["example.com"] | {"TXT": ["v=spf1 a mx ptr -all"]}})))
    checked = 0
    for domain in DIFF_DOMAINS:
        for ip in ALL_IPS:
            ours = run(check_spf(fake, ip, f"user@{domain}", "helo.example")).result
            theirs, _ = pyspf.check2(i=ip, s=f"user@{domain}", h="helo.example")
            assert ours == theirs, (domain, ip, ours, theirs)
            checked += 1
    assert checked == len(DIFF_DOMAINS) * len(ALL_IPS)
