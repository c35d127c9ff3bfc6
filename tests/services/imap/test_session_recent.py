"""IMAP4rev1 \\Recent kept in the store: one session gets each message, across store objects on
one database (processes, nodes) and restarts; EXAMINE and STATUS RECENT never claim; rev2
sessions neither see nor claim; no store write when nothing is above the watermark."""

from __future__ import annotations

import asyncio

from harness import Env, lines, make_env, message, run, seq

from merpati.services.auth import Authenticator, AuthSettings
from merpati.services.imap.session import ImapContext, ImapSettings
from merpati.storage import open_store
from merpati.wire.imap import commands as c

FLAGS = (c.FetchAttr("FLAGS"), c.FetchAttr("UID"))


async def restarted(tmp_path, before: Env) -> Env:
    """A new store object and ImapContext on the same database (a restart, or another node)."""
    store = await open_store(f"sqlite:///{tmp_path / 'm.db'}")
    ctx = ImapContext(store=store, authenticator=Authenticator(store, AuthSettings(failure_delay=0.0)),
                      settings=ImapSettings())
    return Env(store, ctx, accounts=dict(before.accounts))


def recent_uids(fetched: bytes) -> list[int]:
    return [int(x.split(b"UID ")[1].rstrip(b")")) for x in lines(fetched) if x.startswith(b"* ") and b"\\Recent" in x]


def test_recent_survives_a_restart_and_mail_delivered_meanwhile_is_recent(tmp_path) -> None:
    async def go() -> None:
        env = await make_env(tmp_path)
        bob = await env.user("bob")
        await env.deliver(bob, message("one"))
        await env.deliver(bob, message("two"))
        a = await env.login(bob)
        assert b"* 2 RECENT" in await env.run(a, c.Select("INBOX"))
        await env.store.close()

        env2 = await restarted(tmp_path, env)
        b = await env2.login(bob)
        assert b"* 0 RECENT" in await env2.run(b, c.Select("INBOX"))  # already handed out before
        await env2.run(b, c.Logout())
        await env2.deliver(bob, message("three"))  # nobody has INBOX selected
        await env2.store.close()

        env3 = await restarted(tmp_path, env)
        d, e = await env3.login(bob), await env3.login(bob)
        sel = await env3.run(d, c.Select("INBOX"))
        assert b"* 3 EXISTS" in sel and b"* 1 RECENT" in sel
        assert recent_uids(await env3.run(d, c.Fetch(seq("1:*"), FLAGS))) == [3]
        assert b"* 0 RECENT" in await env3.run(e, c.Select("INBOX"))
        assert recent_uids(await env3.run(e, c.Fetch(seq("1:*"), FLAGS))) == []
        await env3.store.close()

    run(go())


def test_two_store_objects_on_one_database_hand_new_mail_to_one_session(tmp_path) -> None:
    async def go() -> None:
        env = await make_env(tmp_path)
        bob = await env.user("bob")
        await env.deliver(bob, message("old"))
        other = await restarted(tmp_path, env)  # a second process on the same database
        a, b = await env.login(bob), await other.login(bob)
        assert b"* 1 RECENT" in await other.run(b, c.Select("INBOX"))
        assert b"* 0 RECENT" in await env.run(a, c.Select("INBOX"))
        await env.deliver(bob, message("new"))
        await other.deliver(bob, message("newer"))

        async def until_exists(e: Env, s) -> bytes:  # the other process's events come a bit later
            out = b""
            for _ in range(200):
                out += await e.run(s, c.Noop())
                if b"* 3 EXISTS" in out:
                    return out
                await asyncio.sleep(0.02)
            raise AssertionError(out)

        out_a, out_b = await until_exists(env, a), await until_exists(other, b)
        got_a = recent_uids(await env.run(a, c.Fetch(seq("1:*"), FLAGS)))
        got_b = recent_uids(await other.run(b, c.Fetch(seq("1:*"), FLAGS)))
        assert 1 in got_b and sorted(got_a + got_b) == [1, 2, 3]  # each message recent in one session
        assert b"* %d RECENT" % len(got_a) in out_a and b"* %d RECENT" % len(got_b) in out_b
        await other.store.close()
        await env.store.close()

    run(go())


def test_examine_and_status_do_not_claim(tmp_path) -> None:
    async def go() -> None:
        env = await make_env(tmp_path)
        bob = await env.user("bob")
        for i in range(3):
            await env.deliver(bob, message(f"m{i}"))
        s, e, a = await env.login(bob), await env.login(bob), await env.login(bob)
        status = c.Status("INBOX", ("MESSAGES", "RECENT"))
        assert b'* STATUS "INBOX" (MESSAGES 3 RECENT 3)' in await env.run(s, status)
        assert b"* 3 RECENT" in await env.run(e, c.Examine("INBOX"))
        assert b'* STATUS "INBOX" (MESSAGES 3 RECENT 3)' in await env.run(s, status)
        assert b"* 3 RECENT" in await env.run(a, c.Select("INBOX"))
        assert b'* STATUS "INBOX" (MESSAGES 3 RECENT 0)' in await env.run(s, status)
        assert b'(RECENT 3)' in await env.run(a, c.Status("INBOX", ("RECENT",)))  # its own, selected
        assert recent_uids(await env.run(e, c.Fetch(seq("1:*"), FLAGS))) == [1, 2, 3]  # EXAMINE keeps seeing
        await env.deliver(bob, message("new"))
        assert b'* STATUS "INBOX" (MESSAGES 4 RECENT 1)' in await env.run(s, status)
        out = await env.run(e, c.Noop())  # read-only: sees the new one as recent, claims nothing
        assert b"* 4 EXISTS" in out and b"* 4 RECENT" in out
        assert b'* STATUS "INBOX" (MESSAGES 4 RECENT 1)' in await env.run(s, status)
        out = await env.run(a, c.Noop())
        assert b"* 4 EXISTS" in out and b"* 4 RECENT" in out
        assert b'* STATUS "INBOX" (MESSAGES 4 RECENT 0)' in await env.run(s, status)
        e2 = await env.login(bob)
        assert b"* 0 RECENT" in await env.run(e2, c.Examine("INBOX"))
        await env.store.close()

    run(go())


def test_rev2_session_neither_sees_nor_claims(tmp_path) -> None:
    async def go() -> None:
        env = await make_env(tmp_path)
        bob = await env.user("bob")
        await env.deliver(bob, message("one"))
        r2, r1 = await env.login(bob), await env.login(bob)
        assert b"* ENABLED IMAP4rev2" in await env.run(r2, c.Enable(("IMAP4REV2",)))
        sel = await env.run(r2, c.Select("INBOX"))
        assert b"RECENT" not in sel
        await env.deliver(bob, message("two"))
        out = await env.run(r2, c.Noop())
        assert b"* 2 EXISTS" in out and b"RECENT" not in out
        assert await env.store.peek_recent((await env.store.get_mailbox(env.accounts[bob].id, "INBOX")).id) == 0
        assert b"* 2 RECENT" in await env.run(r1, c.Select("INBOX"))
        await env.store.close()

    run(go())


def test_no_store_write_when_nothing_is_above_the_watermark(tmp_path) -> None:
    async def go() -> None:
        env = await make_env(tmp_path)
        bob = await env.user("bob")
        await env.deliver(bob, message("one"))
        claims: list[tuple[int, int]] = []
        real = env.store.claim_recent

        async def counting(mailbox_id: int, upto_uid: int) -> int:
            claims.append((mailbox_id, upto_uid))
            return await real(mailbox_id, upto_uid)

        env.store.claim_recent = counting  # type: ignore[method-assign]
        a, b = await env.login(bob), await env.login(bob)
        assert b"* 1 RECENT" in await env.run(a, c.Select("INBOX"))
        assert len(claims) == 1
        assert b"* 0 RECENT" in await env.run(b, c.Select("INBOX"))  # peeked: nothing to claim
        assert len(claims) == 1
        await env.deliver(bob, message("two"))
        await env.run(a, c.Noop())
        assert len(claims) == 2 and claims[-1][1] == 2
        out = await env.run(b, c.Noop())  # peeks, sees it handed out: no write
        assert b"* 2 EXISTS" in out and b"* 0 RECENT" in out and len(claims) == 2
        await env.run(a, c.Unselect())
        assert b"* 0 RECENT" in await env.run(a, c.Select("INBOX"))
        assert len(claims) == 2
        await env.store.close()

    run(go())
