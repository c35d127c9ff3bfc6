"""The authenticator: verification, the auth cache, failure delays, and the SASL exchanges."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from merpati.core.passwords import hash_password
from merpati.services.auth import Authenticator, AuthSettings
from merpati.storage import open_store
from merpati.wire import sasl


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def env(tmp_path: Path):
    async def make():
        store = await open_store(f"sqlite:///{tmp_path / 'm.db'}")
        await store.add_domain("a.test")
        await store.create_account("ann@a.test", hash_password("right"))
        return store

    return make


def run(coro):
    return asyncio.run(coro)


def test_right_password_then_cache_hit_and_wrong_never_cached(env) -> None:
    async def go():
        store = await env()
        clock, sleeps = FakeClock(), []

        async def sleep(d):
            sleeps.append(d)

        auth = Authenticator(store, AuthSettings(failure_delay=0.5), clock=clock, sleep=sleep)
        assert (await auth.authenticate("ANN@a.test", "right", remote_ip="127.0.0.1")).address == "ann@a.test"
        assert auth.stats["verified"] == 1
        assert await auth.authenticate("ann@a.test", "right", remote_ip="127.0.0.1") is not None
        assert auth.stats["cache_hits"] == 1
        assert await auth.authenticate("ann@a.test", "wrong", remote_ip="127.0.0.1") is None
        assert await auth.authenticate("ann@a.test", "wrong", remote_ip="127.0.0.1") is None
        assert auth.stats["cache_hits"] == 1  # a wrong password is verified every time
        assert sleeps == [0.5, 1.0]
        clock.now += 301  # expiry: verified again
        assert await auth.authenticate("ann@a.test", "right", remote_ip="127.0.0.2") is not None
        assert auth.stats["cache_hits"] == 1
        await store.close()

    run(go())


def test_password_change_drops_the_cached_entry(env) -> None:
    async def go():
        store = await env()
        auth = Authenticator(store, AuthSettings(failure_delay=0))
        assert await auth.authenticate("ann@a.test", "right") is not None
        await store.set_password("ann@a.test", hash_password("new"))
        assert await auth.authenticate("ann@a.test", "right") is None
        assert await auth.authenticate("ann@a.test", "new") is not None
        await store.close()

    run(go())


def test_unknown_user_and_wrong_password_fail_alike_with_growing_capped_delay(env) -> None:
    async def go():
        store = await env()
        sleeps: list[float] = []

        async def sleep(d):
            sleeps.append(d)

        auth = Authenticator(store, AuthSettings(failure_delay=1, max_failure_delay=4), clock=FakeClock(), sleep=sleep)
        for user in ("nobody@a.test", "ann@a.test", "x", "ann@a.test", "y@a.test"):
            assert await auth.authenticate(user, "bad", remote_ip="192.0.2.1") is None
        assert sleeps == [1, 2, 4, 4, 4]  # per IP, doubling, capped
        # another IP guessing the same account is delayed too (per account)
        assert auth.failure_delay("ann@a.test", "192.0.2.9") == 4
        await store.close()

    run(go())


def test_secure_connections() -> None:
    auth = Authenticator(store=None)  # type: ignore[arg-type]
    assert auth.is_secure("127.0.0.1", tls=False)
    assert auth.is_secure("::1", tls=False)
    assert not auth.is_secure("192.0.2.1", tls=False)
    assert auth.is_secure("192.0.2.1", tls=True)
    strict = Authenticator(store=None, settings=AuthSettings(loopback_is_secure=False))  # type: ignore[arg-type]
    assert not strict.is_secure("127.0.0.1", tls=False)


def test_sasl_plain_and_login() -> None:
    done = sasl.PlainExchange().start(b"\x00ann@a.test\x00pw")
    assert isinstance(done, sasl.Done) and done.credentials == sasl.Credentials("ann@a.test", "pw")
    ex = sasl.PlainExchange()
    assert ex.start(None) == sasl.Challenge(b"")
    assert ex.step(b"z\x00u\x00p").credentials.authzid == "z"  # type: ignore[union-attr]
    for bad in (b"", b"u\x00p", b"\x00\x00p", b"\x00u\x00", b"a\x00b\x00c\x00d", b"\x00\xff\x00p"):
        with pytest.raises(sasl.SaslError):
            sasl.parse_plain(bad)
    login = sasl.LoginExchange()
    assert login.start(None) == sasl.Challenge(b"Username:")
    assert login.step(b"ann@a.test") == sasl.Challenge(b"Password:")
    assert login.step(b"pw") == sasl.Done(sasl.Credentials("ann@a.test", "pw"))
    assert sasl.new_exchange("plain").name == "PLAIN" and sasl.new_exchange("CRAM-MD5") is None
    assert sasl.decode_base64(b"=") == b""
    assert sasl.decode_base64(sasl.encode_base64(b"\x00u\x00p")) == b"\x00u\x00p"
    for bad in (b"***", b"QQ", b"A" * 10000):
        with pytest.raises(sasl.SaslError):
            sasl.decode_base64(bad)


def test_concurrent_logins_share_one_verification(env) -> None:
    async def go():
        store = await env()

        async def sleep(d):
            pass

        auth = Authenticator(store, AuthSettings(failure_delay=0.5), sleep=sleep)
        results = await asyncio.gather(*(auth.authenticate("ann@a.test", "right") for _ in range(5)))
        assert all(a is not None and a.address == "ann@a.test" for a in results)
        assert auth.stats["verified"] == 1
        wrong = await asyncio.gather(*(auth.authenticate("ann@a.test", "wrong") for _ in range(3)))
        assert wrong == [None, None, None]  # each still fails (and gets its delay)
        assert auth.stats["verified"] == 2 and auth.stats["failures"] == 3
        assert await auth.authenticate("ann@a.test", "right") is not None
        assert auth.stats["cache_hits"] == 1 and not auth._verifying
        await store.close()

    run(go())
