"""Authentication-Results (RFC 8601): the field we build, and removal of forged ones."""

from __future__ import annotations

import pytest

from merpati.mailauth import (
    DkimResult,
    DkimVerdict,
    DmarcRecord,
    DmarcResult,
    DmarcVerdict,
    SpfResult,
    SpfVerdict,
    authentication_results,
    authserv_id_of,
    remove_authentication_results,
)


def test_full_field() -> None:
    header = authentication_results(
        "mx.b.test",
        spf=SpfResult(SpfVerdict.PASS, "mailfrom", "alice@a.test", "a.test"),
        dkim=[
            DkimResult(DkimVerdict.PASS, "a.test", "sel", "@a.test", "rsa-sha256", "Ab/9xY+zQQQQ"),
            DkimResult(DkimVerdict.FAIL, "a.test", "ed", "@a.test", "ed25519-sha256", "Ab/9xY+zRRRR",
                       problem="body hash did not verify"),
        ],
        dmarc=DmarcResult(DmarcVerdict.PASS, "a.test", policy="reject", record=DmarcRecord(p="reject")),
    )
    assert header == (
        b"Authentication-Results: mx.b.test;\r\n"
        b"\tspf=pass smtp.mailfrom=alice@a.test;\r\n"
        b'\tdkim=pass header.d=a.test header.s=sel header.i=@a.test header.a=rsa-sha256 header.b="Ab/9xY+zQ";\r\n'
        b"\tdkim=fail (body hash did not verify) header.d=a.test header.s=ed header.i=@a.test"
        b' header.a=ed25519-sha256 header.b="Ab/9xY+zR";\r\n'
        b"\tdmarc=pass (p=reject dis=none) header.from=a.test\r\n"
    )


def test_none_and_helo_and_unsigned() -> None:
    assert authentication_results("mx.b.test") == b"Authentication-Results: mx.b.test;\r\n\tnone\r\n"
    header = authentication_results(
        "mx.b.test", spf=[SpfResult(SpfVerdict.NONE, "mailfrom", "postmaster@h.test", "h.test"),
                          SpfResult(SpfVerdict.SOFTFAIL, "helo", "postmaster@h.test", "h.test")], dkim=[])
    assert b"spf=none smtp.mailfrom=postmaster@h.test;" in header
    assert b"spf=softfail smtp.helo=h.test;" in header
    assert b"dkim=none" in header


def test_hostile_values_cannot_inject() -> None:
    header = authentication_results(
        "mx.b.test",
        spf=SpfResult(SpfVerdict.PERMERROR, "mailfrom", '"a;b\r\nBcc: x"@evil.test', "evil.test",
                      problem="bad (record)\r\nX-Injected: 1"),
        dkim=[DkimResult(DkimVerdict.NEUTRAL, 'ev"il\r\n.test', "s;x", problem=")(\\")],
    )
    text = header.decode()
    assert text.count("\r\n") == 3 and "\r\nBcc" not in text and "\r\nX-Injected" not in text
    assert '(bad \\(record\\)X-Injected: 1)' in text
    with pytest.raises(ValueError):
        authentication_results("mx.b.test;\r\nX: y")


@pytest.mark.parametrize(("value", "expected"), [
    (b" mx.b.test; spf=pass", "mx.b.test"),
    (b" MX.B.TEST 1; none", "mx.b.test"),
    (b" (comment (nested)) mx.b.test; none", "mx.b.test"),
    (b' "mx.b.test"; none', "mx.b.test"),
    (b"\r\n\tmx.b.test;\r\n\tspf=pass", "mx.b.test"),
    (b" ;", None),
])
def test_authserv_id_of(value: bytes, expected: str | None) -> None:
    assert authserv_id_of(value) == expected


def test_remove_only_ours_and_keep_every_other_byte() -> None:
    message = (
        b"Received: from x\r\n"
        b"Authentication-Results: MX.B.test;\r\n\tspf=pass smtp.mailfrom=forged@a.test\r\n"
        b"authentication-results : (c) mx.b.test; dkim=pass\r\n"
        b"Authentication-Results: other.example; spf=fail\r\n"
        b"Subject: Authentication-Results: mx.b.test; fake\r\n"
        b"\r\n"
        b"Authentication-Results: mx.b.test; in the body stays\r\n"
    )
    cleaned = remove_authentication_results(message, "mx.b.test")
    assert cleaned == (
        b"Received: from x\r\n"
        b"Authentication-Results: other.example; spf=fail\r\n"
        b"Subject: Authentication-Results: mx.b.test; fake\r\n"
        b"\r\n"
        b"Authentication-Results: mx.b.test; in the body stays\r\n"
    )
    untouched = b"From: a@a.test\nSubject: x\n\nbody"
    assert remove_authentication_results(untouched, "mx.b.test") is untouched
    lf = b"Authentication-Results: mx.b.test; x\n\ty\nFrom: a@a.test\n\nbody\n"
    assert remove_authentication_results(lf, "mx.b.test") == b"From: a@a.test\n\nbody\n"
    assert remove_authentication_results(b"Authentication-Results: mx.b.test; x", "mx.b.test") == b""
