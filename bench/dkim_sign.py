"""DKIM signatures per second: our signer (``cryptography``) against dkimpy's pure-Python RSA,
and verification with our verifier (key lookups answered by a FakeResolver, so this is crypto
plus canonicalization only).

    .venv/bin/python bench/dkim_sign.py [--seconds 2] [--size 5000]

Prints messages per second and ms per operation. Asserts nothing about timing.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable

import dkim
from cryptography.hazmat.primitives import serialization

from merpati.mailauth.dkim import DkimSigner, generate_key, verify_dkim
from merpati.resolver import FakeResolver


def message(size: int) -> bytes:
    head = (b"From: Alice <alice@a.test>\r\nTo: Bob <bob@b.test>\r\nSubject: benchmark\r\n"
            b"Date: Mon, 1 Jan 2024 00:00:00 +0000\r\nMessage-ID: <1@a.test>\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: text/plain; charset=utf-8\r\n\r\n")
    line = b"The quick brown fox jumps over the lazy dog, again and again.  \r\n"
    return head + line * max(1, size // len(line))


def rate(fn: Callable[[], object], seconds: float) -> float:
    fn()
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        fn()
        count += 1
    return count / (time.perf_counter() - start)


def report(name: str, per_second: float) -> None:
    print(f"{name:<34} {per_second:10.0f} /s {1000 / per_second:9.3f} ms")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--size", type=int, default=5000, help="body bytes")
    args = parser.parse_args()
    msg = message(args.size)
    rsa_pem, rsa_txt = generate_key("rsa", bits=2048)
    ed_pem, ed_txt = generate_key("ed25519")
    rsa_signer = DkimSigner("a.test", "rsa", rsa_pem)
    ed_signer = DkimSigner("a.test", "ed", ed_pem)
    print(f"message of {len(msg)} bytes, RSA-2048 and Ed25519 keys")
    ours_rsa = rate(lambda: rsa_signer.sign(msg), args.seconds)
    report("sign rsa-sha256 (merpati)", ours_rsa)
    report("sign ed25519-sha256 (merpati)", rate(lambda: ed_signer.sign(msg), args.seconds))
    traditional = serialization.load_pem_private_key(rsa_pem, None).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption())
    theirs = rate(lambda: dkim.sign(msg, b"rsa", b"a.test", traditional,
                                    canonicalize=(b"relaxed", b"relaxed")), args.seconds)
    report("sign rsa-sha256 (dkimpy)", theirs)
    print(f"{'ratio merpati/dkimpy (rsa sign)':<34} {ours_rsa / theirs:10.1f}x")

    resolver = FakeResolver({"rsa._domainkey.a.test": {"TXT": [rsa_txt]}, "ed._domainkey.a.test": {"TXT": [ed_txt]}})
    signed_rsa = rsa_signer.sign(msg) + msg
    signed_ed = ed_signer.sign(msg) + msg
    report("verify rsa-sha256 (merpati)", rate(lambda: asyncio.run(verify_dkim(resolver, signed_rsa)), args.seconds))
    report("verify ed25519-sha256 (merpati)", rate(lambda: asyncio.run(verify_dkim(resolver, signed_ed)), args.seconds))

    def dkimpy_dns(name: bytes, timeout: float = 5) -> bytes:
        return rsa_txt.encode()

    report("verify rsa-sha256 (dkimpy)", rate(lambda: dkim.verify(signed_rsa, dnsfunc=dkimpy_dns), args.seconds))


if __name__ == "__main__":
    main()
