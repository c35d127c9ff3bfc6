"""DKIM: RFC 8463's published vectors, round trips with dkimpy in both directions (its
verifier checks our RSA and Ed25519 signatures; we check its signatures in every
canonicalization), and every failure class."""

from __future__ import annotations

import asyncio
import base64
import types

import dkim
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from merpati.mailauth.dkim import DkimSigner, DkimVerdict, generate_key, verify_dkim
from merpati.mailauth.dkim_canon import canonicalize_body, parse_tags, split_message, TagError
from merpati.resolver import FakeResolver


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode()


RFC8463 = crlf("""DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed;
 d=football.example.com; i=@football.example.com;
 q=dns/txt; s=brisbane; t=1528637909; h=from : to :
 subject : date : message-id : from : subject : date;
 bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;
 b=/gCrinpcQOoIfuHNQIbq4pgh9kyIK3AQUdt9OdqQehSwhEIug4D11Bus
 Fa3bT3FY5OsU7ZbnKELq+eXdp1Q1Dw==
DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed;
 d=football.example.com; i=@football.example.com;
 q=dns/txt; s=test; t=1528637909; h=from : to : subject :
 date : message-id : from : subject : date;
 bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;
 b=F45dVWDfMbQDGHJFlXUNB2HKfbCeLRyhDXgFpEL8GwpsRe0IeIixNTe3
 DhCVlUrSjV4BwcVcOF6+FF3Zo9Rpo1tFOeS9mPYQTnGdaSGsgeefOsk2Jz
 dA+L10TeYt9BgDfQNZtKdN1WO//KgIqXP7OdEFE4LjFYNcUxZQ4FADY+8=
From: Joe SixPack <joe@football.example.com>
To: Suzie Q <suzie@shopping.example.net>
Subject: Is dinner ready?
Date: Fri, 11 Jul 2003 21:00:37 -0700 (PDT)
Message-ID: <20030712040037.46341.5F8J@football.example.com>

Hi.

We lost the game.  Are you hungry yet?

Joe.
""")
RFC8463_DNS = {
    "brisbane._domainkey.football.example.com": {"TXT": ["v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="]},
    "test._domainkey.football.example.com": {"TXT": [
        "v=DKIM1; k=rsa; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDkHlOQoBTzWRiGs5V6NpP3idY6Wk08a5qhdR6wy5bdOKb2jLQiY/"
        "J16JYi0Qvx/byYzCNb3W91y3FutACDfzwQ/BC/e/8uBsCR+yz1Lxj+PL6lHvqMKrM3rG4hstT5QjvHO9PzoxZyVYLzBfO2EeC3Ip3G+2kryOT"
        "IKT+l/K4w3QIDAQAB"]},
}

MESSAGE = crlf("""Received: from x by y; Mon, 1 Jan 2024 00:00:00 +0000
From: Alice <alice@a.test>
To: Bob <bob@b.test>,
\tCarol <carol@b.test>
Subject:   Hello   there\t
Date: Mon, 1 Jan 2024 00:00:00 +0000
Message-ID: <1@a.test>
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8

Hello Bob,  \t
this is   a test.


""")

RSA_PEM, RSA_TXT = generate_key("rsa")
ED_PEM, ED_TXT = generate_key("ed25519")


def resolver_for(**records: str) -> FakeResolver:
    return FakeResolver({f"{sel}._domainkey.a.test": {"TXT": [txt]} for sel, txt in records.items()})


def test_rfc8463_vectors_both_signatures_pass() -> None:
    results = run(verify_dkim(FakeResolver(RFC8463_DNS), RFC8463))
    assert [(r.result, r.algorithm, r.selector) for r in results] == [
        (DkimVerdict.PASS, "ed25519-sha256", "brisbane"),
        (DkimVerdict.PASS, "rsa-sha256", "test"),
    ]
    assert results[0].domain == "football.example.com" and results[0].identity == "@football.example.com"
    assert results[1].key_bits == 1024
    assert results[0].signature_b.startswith("/gCrinpc")


def test_rfc8463_body_hash() -> None:
    _, body = split_message(RFC8463)
    import hashlib

    digest = base64.b64encode(hashlib.sha256(canonicalize_body(body, relaxed=True)).digest())
    assert digest == b"2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8="


@pytest.mark.parametrize(("pem", "txt", "algorithm"), [(RSA_PEM, RSA_TXT, "rsa-sha256"), (ED_PEM, ED_TXT, "ed25519-sha256")],
                         ids=["rsa", "ed25519"])
def test_our_signatures_verify_with_us(pem: bytes, txt: str, algorithm: str) -> None:
    signer = DkimSigner("a.test", "sel", pem)
    assert signer.algorithm == algorithm and signer.dns_record == txt
    header = signer.sign(MESSAGE)
    assert header.startswith(b"DKIM-Signature: v=1; a=" + algorithm.encode()) and header.endswith(b"\r\n")
    assert all(len(line) <= 78 for line in header.split(b"\r\n"))
    tags = parse_tags(header.split(b":", 1)[1])
    assert tags["h"].replace(b"\r\n\t", b"").replace(b" ", b"").split(b":") == [
        b"from", b"from", b"to", b"subject", b"date", b"message-id", b"mime-version", b"content-type"]
    results = run(verify_dkim(resolver_for(sel=txt), header + MESSAGE))
    assert [r.result for r in results] == [DkimVerdict.PASS]


def _nacl_adapter() -> types.SimpleNamespace:
    """dkimpy verifies Ed25519 through PyNaCl, which is not installed here: a stand-in that
    does the same Ed25519 check with `cryptography` (dkimpy still does everything else)."""

    class BadSignatureError(Exception):
        pass

    class VerifyKey:
        def __init__(self, key: bytes, encoder: object = None) -> None:
            self._key = ed25519.Ed25519PublicKey.from_public_bytes(base64.b64decode(key))

        def verify(self, message: bytes, signature: bytes) -> bytes:
            try:
                self._key.verify(signature, message)
            except InvalidSignature:
                raise BadSignatureError() from None
            return message

    return types.SimpleNamespace(
        signing=types.SimpleNamespace(VerifyKey=VerifyKey),
        encoding=types.SimpleNamespace(Base64Encoder=None),
        exceptions=types.SimpleNamespace(ValueError=ValueError, BadSignatureError=BadSignatureError),
    )


@pytest.mark.parametrize(("pem", "txt"), [(RSA_PEM, RSA_TXT), (ED_PEM, ED_TXT)], ids=["rsa", "ed25519"])
def test_dkimpy_verifies_our_signatures(pem: bytes, txt: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dkim, "nacl", _nacl_adapter(), raising=False)
    signed = DkimSigner("a.test", "sel", pem).sign(MESSAGE) + MESSAGE

    def dnsfunc(name: bytes, timeout: float = 5) -> bytes:
        assert name == b"sel._domainkey.a.test."
        return txt.encode()

    assert dkim.verify(signed, dnsfunc=dnsfunc)
    assert not dkim.verify(signed.replace(b"this is", b"this was"), dnsfunc=dnsfunc)
    # oversigned From: a second From added later breaks the signature
    assert not dkim.verify(b"From: mallory@evil.test\r\n" + signed, dnsfunc=dnsfunc)


def _traditional(pem: bytes) -> bytes:
    key = serialization.load_pem_private_key(pem, None)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption())


@pytest.mark.parametrize("canon", [(b"simple", b"simple"), (b"relaxed", b"simple"), (b"simple", b"relaxed"),
                                   (b"relaxed", b"relaxed")])
@pytest.mark.parametrize("length", [False, True])
def test_we_verify_dkimpy_signatures(canon: tuple[bytes, bytes], length: bool) -> None:
    header = dkim.sign(MESSAGE, b"sel", b"a.test", _traditional(RSA_PEM), canonicalize=canon,
                       include_headers=[b"from", b"to", b"subject", b"date", b"cc", b"message-id"], length=length,
                       identity=b"alice@sub.a.test")
    signed = header + MESSAGE
    resolver = resolver_for(sel=RSA_TXT)
    [result] = run(verify_dkim(resolver, signed))
    assert result.result == DkimVerdict.PASS, result.problem
    assert result.identity == "alice@sub.a.test"
    [tampered] = run(verify_dkim(resolver, signed.replace(b"Subject:   Hello", b"Subject:   Hellx")))
    assert tampered.result == DkimVerdict.FAIL
    [body] = run(verify_dkim(resolver, signed.replace(b"a test", b"a tset")))
    assert body.result == DkimVerdict.FAIL and "body hash" in body.problem


def test_every_signature_is_verified() -> None:
    first = DkimSigner("a.test", "rsa", RSA_PEM).sign(MESSAGE)
    second = DkimSigner("a.test", "ed", ED_PEM).sign(first + MESSAGE)
    broken = b"DKIM-Signature: v=1; a=rsa-sha256; d=other.test; s=x; h=from; bh=AAAA; b=AAAA\r\n"
    resolver = resolver_for(rsa=RSA_TXT, ed=ED_TXT)
    results = run(verify_dkim(resolver, broken + second + first + MESSAGE))
    assert [(r.result, r.selector) for r in results] == [
        (DkimVerdict.PERMERROR, "x"), (DkimVerdict.PASS, "ed"), (DkimVerdict.PASS, "rsa")]


def test_unsigned_message_has_no_results() -> None:
    assert run(verify_dkim(FakeResolver(), MESSAGE)) == []


def test_bare_lf_message() -> None:
    signed = DkimSigner("a.test", "sel", RSA_PEM).sign(MESSAGE) + MESSAGE
    [result] = run(verify_dkim(resolver_for(sel=RSA_TXT), signed.replace(b"\r\n", b"\n")))
    assert result.result == DkimVerdict.PASS


def sign_with(**tags: str) -> bytes:
    """A message signed by us, then with some tags of the signature replaced (re-signed)."""
    header = DkimSigner("a.test", "sel", RSA_PEM).sign(MESSAGE)
    for name, value in tags.items():
        header = header.replace(f" {name}=".encode(), f" {name}={value}; z{name}=".encode(), 1)
    return header + MESSAGE


@pytest.mark.parametrize(("records", "verdict"), [
    ({}, DkimVerdict.PERMERROR),  # ids: by position (the records hold random keys)
    ({"sel": "v=DKIM1; k=rsa; p="}, DkimVerdict.PERMERROR),  # revoked
    ({"sel": "v=DKIM1; k=rsa; p=!!!"}, DkimVerdict.PERMERROR),
    ({"sel": "v=DKIM2; k=rsa; p=AAAA"}, DkimVerdict.PERMERROR),
    ({"sel": ED_TXT}, DkimVerdict.PERMERROR),  # key type differs from a=
    ({"sel": RSA_TXT + "; s=tlsrpt"}, DkimVerdict.PERMERROR),
    ({"sel": RSA_TXT + "; h=sha1"}, DkimVerdict.PERMERROR),
    ({"sel": RSA_TXT + "; t=y"}, DkimVerdict.PASS),
], ids=["no-key", "revoked", "bad-base64", "bad-version", "wrong-type", "other-service", "sha1-only", "testing"])
def test_key_problems(records: dict[str, str], verdict: DkimVerdict) -> None:
    signed = DkimSigner("a.test", "sel", RSA_PEM).sign(MESSAGE) + MESSAGE
    [result] = run(verify_dkim(resolver_for(**records), signed))
    assert result.result == verdict, result.problem


def test_small_rsa_key_is_policy() -> None:
    small = rsa.generate_private_key(65537, 1024)
    pem = small.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                              serialization.NoEncryption())
    header = dkim.sign(MESSAGE, b"sel", b"a.test", pem, canonicalize=(b"relaxed", b"relaxed"))
    der = small.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    resolver = resolver_for(sel="v=DKIM1; p=" + base64.b64encode(der).decode())
    [result] = run(verify_dkim(resolver, header + MESSAGE))
    assert result.result == DkimVerdict.PASS and result.key_bits == 1024
    [result] = run(verify_dkim(resolver, header + MESSAGE, min_rsa_bits=2048))
    assert result.result == DkimVerdict.POLICY


def test_dns_trouble_is_temperror() -> None:
    signed = DkimSigner("a.test", "sel", RSA_PEM).sign(MESSAGE) + MESSAGE
    fake = FakeResolver({"sel._domainkey.a.test": {"TXT": [RSA_TXT]}}, servfail={"sel._domainkey.a.test"})
    assert run(verify_dkim(fake, signed))[0].result == DkimVerdict.TEMPERROR
    slow = FakeResolver({"sel._domainkey.a.test": {"TXT": [RSA_TXT]}}, delays={"sel._domainkey.a.test": 30})
    assert run(verify_dkim(slow, signed, timeout=0.05))[0].result == DkimVerdict.TEMPERROR


@pytest.mark.parametrize(("header", "verdict"), [
    (b"DKIM-Signature: v=1; a=rsa-sha256; d=a.test; s=sel; h=to; bh=AAAA; b=AAAA\r\n", DkimVerdict.NEUTRAL),
    (b"DKIM-Signature: v=2; a=rsa-sha256; d=a.test; s=sel; h=from; bh=AAAA; b=AAAA\r\n", DkimVerdict.NEUTRAL),
    (b"DKIM-Signature: v=1; a=rsa-sha256; d=a.test; s=sel; h=from; bh=AAAA\r\n", DkimVerdict.NEUTRAL),
    (b"DKIM-Signature: v=1; a=rsa-sha256; a=rsa-sha256; d=a.test; s=sel; h=from; bh=AAAA; b=AAAA\r\n", DkimVerdict.NEUTRAL),
    (b"DKIM-Signature: v=1; a=rsa-sha1; d=a.test; s=sel; h=from; bh=AAAA; b=AAAA\r\n", DkimVerdict.POLICY),
    (b"DKIM-Signature: v=1; a=rsa-md5; d=a.test; s=sel; h=from; bh=AAAA; b=AAAA\r\n", DkimVerdict.NEUTRAL),
    (b"DKIM-Signature: v=1; a=rsa-sha256; d=a.test; i=x@evil.test; s=sel; h=from; bh=AAAA; b=AAAA\r\n", DkimVerdict.NEUTRAL),
    (b"DKIM-Signature: v=1; a=rsa-sha256; d=a.test; s=sel; h=from; bh=AAAA; b=AAAA; x=1000\r\n", DkimVerdict.POLICY),
    (b"DKIM-Signature: v=1; a=rsa-sha256; c=odd/simple; d=a.test; s=sel; h=from; bh=AAAA; b=AAAA\r\n", DkimVerdict.NEUTRAL),
    (b"DKIM-Signature: v=1; a=rsa-sha256; d=a.test; s=sel; h=from; bh=AAAA; b=A*AA\r\n", DkimVerdict.NEUTRAL),
    (b"DKIM-Signature: garbage\r\n", DkimVerdict.NEUTRAL),
    (b"DKIM-Signature: v=1; a=rsa-sha256; d=a.test; s=sel; q=http; h=from; bh=AAAA; b=AAAA\r\n", DkimVerdict.NEUTRAL),
])
def test_malformed_signatures(header: bytes, verdict: DkimVerdict) -> None:
    fake = resolver_for(sel=RSA_TXT)
    [result] = run(verify_dkim(fake, header + MESSAGE))
    assert result.result == verdict, result.problem
    assert fake.queries == [] or verdict not in (DkimVerdict.NEUTRAL, DkimVerdict.POLICY)


def test_strict_key_flag() -> None:
    signer = DkimSigner("a.test", "sel", RSA_PEM, identity="alice@sub.a.test")
    signed = signer.sign(MESSAGE) + MESSAGE
    assert run(verify_dkim(resolver_for(sel=RSA_TXT), signed))[0].result == DkimVerdict.PASS
    assert run(verify_dkim(resolver_for(sel=RSA_TXT + "; t=s"), signed))[0].result == DkimVerdict.PERMERROR
    with pytest.raises(ValueError):
        DkimSigner("a.test", "sel", RSA_PEM, identity="alice@evil.test")


def test_expiry_and_signature_count_bound() -> None:
    signer = DkimSigner("a.test", "sel", RSA_PEM, expire_after=60, clock=lambda: 1_000_000)
    signed = signer.sign(MESSAGE) + MESSAGE
    resolver = resolver_for(sel=RSA_TXT)
    assert run(verify_dkim(resolver, signed, now=1_000_030))[0].result == DkimVerdict.PASS
    assert run(verify_dkim(resolver, signed, now=1_000_061))[0].result == DkimVerdict.POLICY
    many = DkimSigner("a.test", "sel", RSA_PEM).sign(MESSAGE) * 50 + MESSAGE
    assert len(run(verify_dkim(resolver, many, max_signatures=10))) == 10


def test_tag_parser() -> None:
    assert parse_tags(b" a = 1 ;\r\n\tb=2;") == {"a": b"1", "b": b"2"}
    for bad in (b"a=1; a=2", b"=1", b"a", b"1a=2"):
        with pytest.raises(TagError):
            parse_tags(bad)


def test_canonicalization_edge_cases() -> None:
    assert canonicalize_body(b"", relaxed=True) == b""
    assert canonicalize_body(b"", relaxed=False) == b"\r\n"
    assert canonicalize_body(b"\r\n\r\n", relaxed=False) == b"\r\n"
    assert canonicalize_body(b"a \t b  \r\n\r\n", relaxed=True) == b"a b\r\n"
    assert canonicalize_body(b"a  ", relaxed=True) == b"a\r\n"


_text = st.text(st.sampled_from(list("abc xyz\t.,;:=") + ["\u00e9"]), max_size=40)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(subject=_text, body=st.lists(_text, max_size=6), extra_to=st.booleans())
def test_round_trip_property(subject: str, body: list[str], extra_to: bool) -> None:
    message = ("From: a@a.test\r\nTo: b@b.test\r\n" + ("To: c@b.test\r\n" if extra_to else "")
               + f"Subject: {subject}\r\n\r\n" + "\r\n".join(body)).encode()
    for pem, txt in ((RSA_PEM, RSA_TXT), (ED_PEM, ED_TXT)):
        signed = DkimSigner("a.test", "sel", pem).sign(message) + message
        [result] = run(verify_dkim(resolver_for(sel=txt), signed))
        assert result.result == DkimVerdict.PASS, result.problem
