"""argon2id password hashing: parameters, verification, malformed hashes, timing (reported only)."""

from __future__ import annotations

import time

from merpati.core import passwords
from merpati.core.passwords import dummy_verify, hash_password, needs_rehash, verify_password


def test_hash_records_argon2id_and_its_parameters() -> None:
    encoded = hash_password("correct horse")
    assert encoded.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert hash_password("correct horse") != encoded  # salted


def test_verify() -> None:
    encoded = hash_password("pässwörd ✓")
    assert verify_password(encoded, "pässwörd ✓")
    assert not verify_password(encoded, "pässwörd")
    assert not verify_password(encoded, "")


def test_verify_never_raises_on_a_malformed_hash() -> None:
    for bad in ("", "plain", "$argon2id$v=19$m=19456,t=2,p=1$xx$yy", "$2b$12$abcdefghijklmnopqrstuv", "$argon2id$"):
        assert verify_password(bad, "x") is False


def test_needs_rehash() -> None:
    assert not needs_rehash(hash_password("x"))
    weaker = "$argon2id$v=19$m=8192,t=1,p=1$c29tZXNhbHQ$" + "A" * 43
    assert needs_rehash(weaker)
    assert needs_rehash("not a hash")


def test_dummy_hash_uses_the_current_parameters() -> None:
    assert not needs_rehash(passwords._DUMMY_HASH)


def test_verify_timing_is_reported(capsys) -> None:  # type: ignore[no-untyped-def]
    encoded = hash_password("secret")

    def median_ms(fn) -> float:  # type: ignore[no-untyped-def]
        samples = []
        for _ in range(5):
            start = time.perf_counter()
            fn()
            samples.append((time.perf_counter() - start) * 1000)
        return sorted(samples)[2]

    real = median_ms(lambda: verify_password(encoded, "secret"))
    dummy = median_ms(lambda: dummy_verify("guess"))
    with capsys.disabled():
        print(f"\nargon2id m=19456 t=2 p=1: verify {real:.1f} ms, dummy_verify {dummy:.1f} ms")
