"""DMARC (RFC 7489): discovery with the organizational-domain fallback, alignment modes,
policies, pct, and temporary errors."""

from __future__ import annotations

import asyncio
import random

import pytest

from merpati.mailauth import (
    DkimResult,
    DkimVerdict,
    DmarcVerdict,
    SpfResult,
    SpfVerdict,
    check_dmarc,
    organizational_domain,
    parse_dmarc_record,
)
from merpati.mailauth.dmarc import DmarcSyntaxError
from merpati.resolver import FakeResolver


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def spf(result: str, sender: str) -> SpfResult:
    return SpfResult(SpfVerdict(result), "mailfrom", sender, sender.rpartition("@")[2])


def dkim(result: str, domain: str) -> DkimResult:
    return DkimResult(DkimVerdict(result), domain=domain, selector="s")


RECORDS = {
    "_dmarc.example.com": {"TXT": ["v=DMARC1; p=reject; sp=quarantine; rua=mailto:d@example.com"]},
    "_dmarc.strict.example": {"TXT": ["v=DMARC1; p=reject; adkim=s; aspf=s"]},
    "_dmarc.half.example": {"TXT": ["v=DMARC1; p=reject; pct=50"]},
    "_dmarc.none.example": {"TXT": ["v=DMARC1; p=none"]},
    "_dmarc.two.example": {"TXT": ["v=DMARC1; p=reject", "v=DMARC1; p=none"]},
    "_dmarc.bad.example": {"TXT": ["v=DMARC1; p=bogus"]},
    "_dmarc.other.example": {"TXT": ["v=spf1 -all", "some text"]},
    "_dmarc.example.co.uk": {"TXT": ["v=DMARC1; p=quarantine"]},
}


def check(from_domain: str, spf_result: SpfResult | None, dkim_results: list[DkimResult], **kw) -> object:  # type: ignore[no-untyped-def]
    return run(check_dmarc(FakeResolver(RECORDS, **kw), from_domain, spf_result, dkim_results))


def test_organizational_domain() -> None:
    assert organizational_domain("a.b.example.co.uk") == "example.co.uk"
    assert organizational_domain("mail.example.com") == "example.com"
    assert organizational_domain("co.uk") == "co.uk"


def test_pass_through_spf_or_dkim_relaxed() -> None:
    result = check("example.com", spf("pass", "bounce@mail.example.com"), [])
    assert result.result == DmarcVerdict.PASS and result.spf_aligned and result.disposition == "none"
    result = check("example.com", spf("fail", "x@evil.test"), [dkim("fail", "evil.test"), dkim("pass", "sub.example.com")])
    assert result.result == DmarcVerdict.PASS and result.dkim_aligned and not result.spf_aligned


def test_fail_applies_policy() -> None:
    result = check("example.com", spf("pass", "x@evil.test"), [dkim("pass", "evil.test")])
    assert result.result == DmarcVerdict.FAIL
    assert (result.policy, result.disposition) == ("reject", "reject")


def test_subdomain_policy_from_org_record() -> None:
    result = check("news.example.com", spf("fail", "x@evil.test"), [])
    assert result.result == DmarcVerdict.FAIL and result.policy == "quarantine"
    assert result.org_domain == "example.com"
    result = check("a.b.example.co.uk", None, [])
    assert result.result == DmarcVerdict.FAIL and result.policy == "quarantine"


def test_strict_alignment() -> None:
    result = check("strict.example", spf("pass", "b@mail.strict.example"), [dkim("pass", "mail.strict.example")])
    assert result.result == DmarcVerdict.FAIL
    result = check("strict.example", spf("pass", "b@strict.example"), [])
    assert result.result == DmarcVerdict.PASS


def test_pct_sampling_softens() -> None:
    rngs = [random.Random(seed) for seed in range(40)]
    dispositions = {
        run(check_dmarc(FakeResolver(RECORDS), "half.example", None, [], rng=rng)).disposition for rng in rngs
    }
    assert dispositions == {"reject", "quarantine"}


def test_no_policy_cases() -> None:
    assert check("nodmarc.example", None, []).result == DmarcVerdict.NONE
    assert check("two.example", None, []).result == DmarcVerdict.NONE
    assert check("other.example", None, []).result == DmarcVerdict.NONE
    assert check("bad.example", None, []).result == DmarcVerdict.PERMERROR
    none = check("none.example", None, [])
    assert none.result == DmarcVerdict.FAIL and none.disposition == "none"


def test_temporary_errors_never_fail() -> None:
    assert check("example.com", None, [], servfail={"_dmarc.example.com"}).result == DmarcVerdict.TEMPERROR
    assert check("sub.example.com", None, [], timeout={"_dmarc.example.com"}).result == DmarcVerdict.TEMPERROR
    result = check("example.com", spf("temperror", "x@example.com"), [])
    assert result.result == DmarcVerdict.TEMPERROR and result.disposition == "none"
    result = check("example.com", spf("fail", "x@example.com"), [dkim("temperror", "example.com")])
    assert result.result == DmarcVerdict.TEMPERROR
    # a temporary error on a non-aligned identifier does not help a forger
    result = check("example.com", spf("temperror", "x@evil.test"), [])
    assert result.result == DmarcVerdict.FAIL


@pytest.mark.parametrize("text", [b"v=DMARC1", b"p=reject; v=DMARC1", b"v=DMARC1; p=reject; p=none", b"v=DMARC1 p=reject"])
def test_bad_records(text: bytes) -> None:
    with pytest.raises(DmarcSyntaxError):
        parse_dmarc_record(text)


def test_record_defaults_and_lenient_values() -> None:
    record = parse_dmarc_record(b"v=DMARC1; p=Reject; pct=250; adkim=x; sp=odd; rua=mailto:a@b.test, mailto:c@d.test")
    assert (record.p, record.sp, record.pct, record.adkim, record.aspf) == ("reject", None, 100, "r", "r")
    assert record.rua == ("mailto:a@b.test", "mailto:c@d.test")
    assert parse_dmarc_record(b"v=DMARC1; p=bogus; rua=mailto:a@b.test").p == "none"
