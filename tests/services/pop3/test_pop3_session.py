"""POP3 sessions over a real SQLite store: login, listing, RETR/TOP, DELE/RSET/QUIT, locks, flags."""

from __future__ import annotations

import asyncio
from pathlib import Path

from pop3_env import ADDRESS, PASSWORD, CountingStore, make_env, message

from merpati.services.pop3 import Pop3Service, Pop3Settings
from merpati.storage.api import TemporaryStoreError
from merpati.storage.changes import Expunged
from merpati.wire.pop3 import (
    Dele,
    Err,
    Listing,
    Login,
    MultiLine,
    Noop,
    Ok,
    Quit,
    RespCode,
    Retr,
    Rset,
    Stat,
    Top,
    UidListing,
)


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def body_lines(resp: object) -> list[str]:
    assert isinstance(resp, MultiLine), resp
    return resp.body.decode().split("\r\n")[:-1]


def test_listing_sizes_are_exact_crlf_octets(tmp_path: Path) -> None:
    async def go() -> None:
        env = await make_env(tmp_path)
        lf_only = b"Subject: lf\n\nline one\n.dot\nlast line without newline"
        dotted = message(3, b".\r\n..\r\n")
        await env.deliver(message(1), lf_only, dotted)
        s = await env.login()
        assert await s.handle(Stat()) == Ok(f"3 {len(message(1)) + 58 + len(dotted)}")
        listing = body_lines(await s.handle(Listing()))
        retr = [await s.handle(Retr(i)) for i in (1, 2, 3)]
        for line, resp in zip(listing, retr):
            assert isinstance(resp, MultiLine)
            assert int(line.split()[1]) == len(resp.body)
            assert resp.text == f"{len(resp.body)} octets"
        assert retr[1].body == b"Subject: lf\r\n\r\nline one\r\n.dot\r\nlast line without newline\r\n"  # type: ignore[union-attr]
        assert len(retr[1].body) == 58  # type: ignore[union-attr]
        assert await s.handle(Listing(2)) == Ok("2 58")
        await env.store.close()

    run(go())


def test_top_uidl_and_errors(tmp_path: Path) -> None:
    async def go() -> None:
        env = await make_env(tmp_path)
        uids = await env.deliver(message(1, b"a\r\nb\r\nc\r\n"), message(2))
        mb = await env.inbox()
        s = await env.login()
        top = await s.handle(Top(1, 2))
        assert isinstance(top, MultiLine) and top.body.endswith(b"\r\n\r\na\r\nb\r\n")
        assert body_lines(await s.handle(UidListing())) == [
            f"{i} {uid:08X}{mb.uidvalidity:08X}" for i, uid in enumerate(uids, 1)
        ]
        assert await s.handle(UidListing(2)) == Ok(f"2 {uids[1]:08X}{mb.uidvalidity:08X}")
        assert await s.handle(Retr(3)) == Err("No such message.")
        assert await s.handle(Listing(99)) == Err("No such message.")
        assert await s.handle(Dele(1)) == Ok("Message 1 deleted.")
        for ev in (Retr(1), Top(1, 0), Dele(1), Listing(1), UidListing(1)):
            assert await s.handle(ev) == Err("Message 1 already deleted.")
        assert body_lines(await s.handle(Listing())) == [f"2 {len(message(2))}"]
        assert await s.handle(Stat()) == Ok(f"1 {len(message(2))}")
        assert await s.handle(Noop()) == Ok()
        await s.close()
        await env.store.close()

    run(go())


def test_dele_only_marks_rset_unmarks_quit_removes_marked_in_one_commit(tmp_path: Path) -> None:
    async def go() -> None:
        env = await make_env(tmp_path)
        uids = await env.deliver(*(message(i) for i in range(1, 6)))
        sub = env.store.changes.subscribe(env.account_id)
        s = await env.login()
        late = await env.deliver(message(99))  # delivered during the session: not in this one
        await s.handle(Dele(1))
        await s.handle(Dele(2))
        assert await s.handle(Rset()) == Ok("5 messages.")
        await s.handle(Dele(2))
        await s.handle(Dele(4))
        assert await env.uids() == uids + late  # DELE only marks
        assert await s.handle(Quit()) == Ok("Logging out, 2 messages deleted, 3 left.")
        assert await env.uids() == [uids[0], uids[2], uids[4]] + late
        events = []
        while True:
            ev = await asyncio.wait_for(sub.__anext__(), 5)
            if isinstance(ev, Expunged):
                events.append(ev)
                break
        assert events[0].uids == (uids[1], uids[3])  # one commit, one event
        s2 = await env.login()
        assert await s2.handle(Stat()) == Ok(f"4 {3 * len(message(1)) + len(message(99))}")
        await s2.close()
        await env.store.close()

    run(go())


def test_dropped_connection_removes_nothing(tmp_path: Path) -> None:
    async def go() -> None:
        env = await make_env(tmp_path, Pop3Settings(retr_marks_seen=True))
        uids = await env.deliver(message(1), message(2))
        s = await env.login()
        await s.handle(Retr(1))
        await s.handle(Dele(1))
        await s.handle(Dele(2))
        await s.close()  # the connection ended without QUIT
        mb = await env.inbox()
        metas = await env.store.list_messages(mb.id)
        assert [m.uid for m in metas] == uids
        assert all("\\Seen" not in m.flags for m in metas)
        await env.login()  # the lock was released
        await env.store.close()

    run(go())


def test_retr_marks_seen_only_when_configured_and_only_at_quit(tmp_path: Path) -> None:
    async def go() -> None:
        for marks in (False, True):
            env = await make_env(tmp_path / str(marks), Pop3Settings(retr_marks_seen=marks))
            await env.deliver(message(1), message(2), message(3))
            s = await env.login()
            await s.handle(Retr(1))
            await s.handle(Retr(2))
            await s.handle(Top(3, 0))
            await s.handle(Dele(2))
            mb = await env.inbox()
            assert all("\\Seen" not in m.flags for m in await env.store.list_messages(mb.id))
            await s.handle(Quit())
            flags = {m.uid: m.flags for m in await env.store.list_messages(mb.id)}
            assert ("\\Seen" in flags[1]) is marks
            assert "\\Seen" not in flags[3]  # TOP never marks
            await env.store.close()

    (tmp_path / "False").mkdir()
    (tmp_path / "True").mkdir()
    run(go())


def test_second_session_gets_in_use_until_the_first_ends(tmp_path: Path) -> None:
    async def go() -> None:
        env = await make_env(tmp_path)
        uids = await env.deliver(message(1), message(2), message(3))
        first = await env.login()
        second = env.service.session(remote_ip="192.0.2.2")
        resp = await second.handle(Login(ADDRESS, PASSWORD, "PLAIN"))
        assert resp == Err("Mailbox is locked by another POP3 session.", RespCode.IN_USE)
        await first.handle(Dele(1))
        await first.handle(Quit())
        await env.login(second)
        assert await second.handle(Dele(1)) == Ok("Message 1 deleted.")  # now the old message 2
        await second.handle(Quit())
        assert await env.uids() == [uids[2]]
        await env.store.close()

    run(go())


def test_concurrent_logins_one_maildrop_dele_and_quit(tmp_path: Path) -> None:
    """POP-05: two simultaneous logins, both DELE 1 and QUIT: one message deleted, once."""

    async def go() -> None:
        env = await make_env(tmp_path)
        uids = await env.deliver(message(1), message(2), message(3))
        sessions = [env.service.session(remote_ip="192.0.2.9") for _ in range(2)]
        answers = await asyncio.gather(*(s.handle(Login(ADDRESS, PASSWORD, "USER")) for s in sessions))
        assert sorted(type(a).__name__ for a in answers) == ["Err", "Ok"]
        assert any(isinstance(a, Err) and a.code is RespCode.IN_USE for a in answers)

        async def dele_quit(s: object) -> None:
            await s.handle(Dele(1))  # type: ignore[attr-defined]
            await s.handle(Quit())  # type: ignore[attr-defined]

        winner = sessions[[isinstance(a, Ok) for a in answers].index(True)]
        await dele_quit(winner)
        assert await env.uids() == uids[1:]
        await env.store.close()

    run(go())


def test_wrong_password_gets_auth_code_and_growing_delays(tmp_path: Path) -> None:
    """AUTH-01 through POP3: each failure answered after a delay that doubles (the authenticator's)."""

    async def go() -> None:
        env = await make_env(tmp_path)
        s = env.service.session(remote_ip="192.0.2.7")
        for _ in range(5):
            assert await s.handle(Login(ADDRESS, "wrong", "USER")) == Err("Authentication failed.", RespCode.AUTH)
        assert await s.handle(Login("nobody@a.test", "wrong", "USER")) == Err("Authentication failed.", RespCode.AUTH)
        assert env.sleeps[:5] == [0.5, 1.0, 2.0, 4.0, 8.0]
        assert env.sleeps[5] >= 8.0  # the same IP keeps its penalty for another user name
        await env.login(s)
        await env.store.close()

    run(go())


def test_authzid_must_be_the_user(tmp_path: Path) -> None:
    async def go() -> None:
        env = await make_env(tmp_path)
        s = env.service.session(remote_ip="127.0.0.1")
        assert await s.handle(Login(ADDRESS, PASSWORD, "PLAIN", "boss@a.test")) == Err(
            "Authentication failed.", RespCode.AUTH
        )
        assert isinstance(await s.handle(Login(ADDRESS, PASSWORD, "PLAIN", ADDRESS.upper())), Ok)
        await s.close()
        await env.store.close()

    run(go())


def test_login_delay(tmp_path: Path) -> None:
    async def go() -> None:
        env = await make_env(tmp_path, Pop3Settings(login_delay=60))
        s = await env.login()
        await s.handle(Quit())
        s2 = env.service.session(remote_ip="192.0.2.1")
        resp = await s2.handle(Login(ADDRESS, PASSWORD, "USER"))
        assert resp == Err("Logged in too recently, try again later.", RespCode.LOGIN_DELAY)
        env.clock[0] += 61
        await env.login(s2)
        await s2.close()
        await env.store.close()

    run(go())


def test_store_temporarily_down_gives_sys_temp_and_releases_the_lock(tmp_path: Path) -> None:
    async def go() -> None:
        holder: list[CountingStore] = []

        def wrap(store):  # type: ignore[no-untyped-def]
            holder.append(CountingStore(store, {"list_messages": TemporaryStoreError("locked")}))
            return holder[0]

        env = await make_env(tmp_path, wrap=wrap)
        s = env.service.session(remote_ip="192.0.2.1")
        resp = await s.handle(Login(ADDRESS, PASSWORD, "USER"))
        assert resp == Err("Temporary server problem, try again later.", RespCode.SYS_TEMP)
        holder[0].fail.clear()
        await env.login(s)
        holder[0].fail["expunge"] = TemporaryStoreError("disk full")
        await env.deliver(message(1))
        await s.close()
        s = await env.login()
        await s.handle(Dele(1))
        assert await s.handle(Quit()) == Err("Some deleted messages were not removed.", RespCode.SYS_TEMP)
        assert len(await env.uids()) == 1
        await env.login()  # the lock was released anyway
        await env.store.close()

    run(go())


def test_missing_inbox_is_sys_perm(tmp_path: Path) -> None:
    async def go() -> None:
        def wrap(store):  # type: ignore[no-untyped-def]
            counting = CountingStore(store)

            async def no_mailbox(*a, **k):  # type: ignore[no-untyped-def]
                return None

            counting.get_mailbox = no_mailbox  # type: ignore[method-assign]
            return counting

        env = await make_env(tmp_path, wrap=wrap)
        s = env.service.session(remote_ip="192.0.2.1")
        assert await s.handle(Login(ADDRESS, PASSWORD, "USER")) == Err("The maildrop does not exist.", RespCode.SYS_PERM)
        lock = await env.store.lock_maildrop(env.account_id)  # nobody kept it
        assert lock is not None
        await lock.release()
        await env.store.close()

    run(go())


def test_message_expunged_by_another_client_keeps_its_number(tmp_path: Path) -> None:
    async def go() -> None:
        env = await make_env(tmp_path)
        uids = await env.deliver(message(1), message(2))
        s = await env.login()
        mb = await env.inbox()
        await env.store.expunge(mb.id, [uids[0]])  # e.g. an IMAP client
        assert await s.handle(Retr(1)) == Err("Message 1 was removed by another client.")
        assert isinstance(await s.handle(Retr(2)), MultiLine)
        await s.handle(Dele(1))
        assert await s.handle(Quit()) == Ok("Logging out, 0 messages deleted, 1 left.")
        assert await env.uids() == [uids[1]]
        await env.store.close()

    run(go())


def test_uidl_stable_across_sessions_and_unique_after_expunge(tmp_path: Path) -> None:
    async def go() -> None:
        env = await make_env(tmp_path)
        await env.deliver(message(1), message(2), message(3))
        s = await env.login()
        before = body_lines(await s.handle(UidListing()))
        await s.handle(Dele(3))
        await s.handle(Quit())
        await env.deliver(message(4))
        s = await env.login()
        after = body_lines(await s.handle(UidListing()))
        assert after[:2] == before[:2]
        ids = [line.split()[1] for line in before + after]
        assert len(set(ids)) == 4  # message 4 did not reuse message 3's id
        assert all(0 < len(i) <= 70 and i.isascii() and i.isprintable() for i in ids)
        await s.close()
        await env.store.close()

    run(go())


def test_sizes_are_cached_and_listing_is_one_store_call(tmp_path: Path) -> None:
    async def go() -> None:
        holder: list[CountingStore] = []

        def wrap(store):  # type: ignore[no-untyped-def]
            holder.append(CountingStore(store))
            return holder[0]

        env = await make_env(tmp_path, wrap=wrap)
        await env.deliver(*(message(i) for i in range(40)))
        calls = holder[0].calls
        s = await env.login()
        assert calls.get("list_messages") == 1
        await s.handle(Listing())
        reads_for_sizes = calls.get("read_messages", 0) + calls.get("read_message", 0)
        assert reads_for_sizes >= 1
        for i in range(1, 41):
            await s.handle(Retr(i))
        assert calls.get("read_message", 0) == 0  # the bytes read for the sizes served the RETRs
        await s.handle(Quit())
        calls.clear()
        s = await env.login()
        await s.handle(Listing())
        await s.handle(Stat())
        assert calls == {"lock_maildrop": 1, "get_mailbox": 1, "list_messages": 1}  # sizes came from the cache
        await s.close()
        await env.store.close()

    run(go())


def test_retr_reads_ahead_in_batches(tmp_path: Path) -> None:
    async def go() -> None:
        env = await make_env(tmp_path)
        datas = [message(i) for i in range(40)]
        uids = await env.deliver(*datas)
        counting = CountingStore(env.store)
        service = Pop3Service(counting, env.auth)  # type: ignore[arg-type]
        s = await env.login(service.session(remote_ip="192.0.2.1"))
        await s.handle(Dele(2))
        mb = await env.inbox()
        await env.store.expunge(mb.id, [uids[20]])  # another client removes message 21
        got = []
        for i in range(1, 41):
            resp = await s.handle(Retr(i))
            got.append(resp.body if isinstance(resp, MultiLine) else resp)
        assert got[1] == Err("Message 2 already deleted.")
        assert got[20] == Err("Message 21 was removed by another client.")
        assert [g for i, g in enumerate(got) if i not in (1, 20)] == [d for i, d in enumerate(datas) if i not in (1, 20)]
        assert counting.calls.get("read_message", 0) <= 1
        assert counting.calls["read_messages"] <= 4  # batches of up to 16, not one call per message
        await s.close()
        await env.store.close()

    run(go())
