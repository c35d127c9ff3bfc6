"""Two sessions on one mailbox: the RFC 9051 §7.5.1 rules, \\Recent, MODSEQ, resyncs."""

from __future__ import annotations

from harness import lines, make_env, message, run, seq

from merpati.wire.imap import commands as c

FLAGS_UID = (c.FetchAttr("FLAGS"), c.FetchAttr("UID"))


async def two_sessions(tmp_path, n: int = 3):
    env = await make_env(tmp_path)
    bob = await env.user("bob")
    for i in range(n):
        await env.deliver(bob, message(f"m{i}"))
    a, b = await env.login(bob), await env.login(bob)
    await env.run(a, c.Select("INBOX"))
    await env.run(b, c.Select("INBOX"))
    return env, bob, a, b


def test_no_expunge_during_fetch_store_search_but_at_noop_and_uid_forms(tmp_path) -> None:
    async def go() -> None:
        env, bob, a, b = await two_sessions(tmp_path)
        await env.run(a, c.Store(seq("2"), c.StoreMode.ADD, ("\\Deleted",)))
        assert b"* 2 EXPUNGE" in await env.run(a, c.Expunge())
        out = await env.run(b, c.Fetch(seq("1:3"), FLAGS_UID))
        assert b"EXPUNGE" not in out
        assert [x for x in lines(out) if x.startswith(b"* ")] == [b"* 1 FETCH (FLAGS () UID 1)", b"* 3 FETCH (FLAGS () UID 3)"]
        out = await env.run(b, c.Search(c.SearchAnd((c.SearchSimple("ALL"),))))
        assert b"EXPUNGE" not in out and lines(out)[0] == b"* SEARCH 1 3"
        out = await env.run(b, c.Store(seq("3"), c.StoreMode.ADD, ("\\Seen",)))
        assert b"EXPUNGE" not in out
        out = await env.run(b, c.Fetch(seq("1"), FLAGS_UID, uid=True))
        assert b"* 2 EXPUNGE\r\n" in out  # UID FETCH is another command: allowed there
        out = await env.run(b, c.Noop())
        assert b"EXPUNGE" not in out
        await env.store.close()

    run(go())


def test_exists_flags_and_own_changes_not_repeated(tmp_path) -> None:
    async def go() -> None:
        env, bob, a, b = await two_sessions(tmp_path)
        await env.deliver(bob, message("new"))
        out = await env.run(b, c.Fetch(seq("1"), FLAGS_UID))
        assert b"* 4 EXISTS\r\n" in out  # EXISTS may come during FETCH
        out = await env.run(a, c.Store(seq("1"), c.StoreMode.ADD, ("\\Flagged",)))
        assert lines(out)[0] == b"* 1 FETCH (FLAGS (\\Flagged \\Recent))"  # a selected first
        out = await env.run(a, c.Noop())
        assert b"FETCH" not in out  # its own change is not reported twice
        out = await env.run(b, c.Noop())
        assert b"* 1 FETCH (UID 1 FLAGS (\\Flagged))\r\n" in out
        out = await env.run(b, c.Noop())
        assert b"FETCH" not in out
        await env.store.close()

    run(go())


def test_recent_in_exactly_one_session(tmp_path) -> None:
    async def go() -> None:
        env = await make_env(tmp_path)
        bob = await env.user("bob")
        await env.deliver(bob, message("one"))
        a, b, e = await env.login(bob), await env.login(bob), await env.login(bob)
        assert b"* 1 RECENT" in await env.run(e, c.Examine("INBOX"))  # read-only: sees, keeps
        assert b"* 1 RECENT" in await env.run(a, c.Select("INBOX"))
        assert b"* 0 RECENT" in await env.run(b, c.Select("INBOX"))
        await env.deliver(bob, message("two"))
        out_b = await env.run(b, c.Noop())
        out_a = await env.run(a, c.Noop())
        assert b"* 2 EXISTS" in out_b and b"* 1 RECENT" in out_b
        assert b"* 2 EXISTS" in out_a and b"* 1 RECENT" in out_a  # still its first one
        fa = await env.run(a, c.Fetch(seq("1:2"), (c.FetchAttr("FLAGS"),)))
        fb = await env.run(b, c.Fetch(seq("1:2"), (c.FetchAttr("FLAGS"),)))
        assert lines(fa)[:2] == [b"* 1 FETCH (FLAGS (\\Recent))", b"* 2 FETCH (FLAGS ())"]
        assert lines(fb)[:2] == [b"* 1 FETCH (FLAGS ())", b"* 2 FETCH (FLAGS (\\Recent))"]
        await env.store.close()

    run(go())


def test_condstore_modseq_unchangedsince_and_qresync(tmp_path) -> None:
    async def go() -> None:
        env, bob, a, b = await two_sessions(tmp_path)
        q = await env.login(bob)
        out = await env.run(q, c.Enable(("QRESYNC",)))
        assert lines(out)[0] == b"* ENABLED QRESYNC"
        sel = await env.run(q, c.Select("INBOX"))
        [hms] = [int(x.split(b"HIGHESTMODSEQ ")[1].split(b"]")[0]) for x in lines(sel) if b"HIGHESTMODSEQ" in x]
        uv = int([x for x in lines(sel) if b"UIDVALIDITY" in x][0].split(b"UIDVALIDITY ")[1].split(b"]")[0])
        await env.run(q, c.Unselect())
        out = await env.run(a, c.Fetch(seq("1"), (c.FetchAttr("MODSEQ"),)))
        m1 = int(out.split(b"MODSEQ (")[1].split(b")")[0])
        out = await env.run(a, c.Store(seq("1"), c.StoreMode.ADD, ("\\Seen",), unchangedsince=m1))
        assert b"MODSEQ (" in out and lines(out)[-1].split()[1] == b"OK"
        out = await env.run(b, c.Fetch(seq("2"), (c.FetchAttr("MODSEQ"),)))
        m2 = int(out.split(b"MODSEQ (")[1].split(b")")[0])
        out = await env.run(b, c.Store(seq("1:2"), c.StoreMode.ADD, ("\\Answered",), unchangedsince=m2))
        assert b"[MODIFIED 1]" in lines(out)[-1]
        await env.run(a, c.Store(seq("3"), c.StoreMode.ADD, ("\\Deleted",)))
        await env.run(a, c.Expunge())
        sel = await env.run(q, c.Select("INBOX", qresync=c.QresyncParams(uv, hms)))
        assert b"* VANISHED (EARLIER) 3\r\n" in sel
        assert any(x.startswith(b"* 1 FETCH (UID 1 FLAGS (\\Answered \\Seen) MODSEQ (") or
                   x.startswith(b"* 1 FETCH (UID 1 FLAGS (\\Seen) MODSEQ (") for x in lines(sel)), sel
        await env.run(a, c.Store(seq("1"), c.StoreMode.ADD, ("\\Deleted",)))
        await env.run(a, c.Expunge())
        assert b"* VANISHED 1\r\n" in await env.run(q, c.Noop())
        await env.store.close()

    run(go())


def test_feed_overflow_resyncs(tmp_path) -> None:
    async def go() -> None:
        env, bob, a, b = await two_sessions(tmp_path)
        await env.run(a, c.Store(seq("2"), c.StoreMode.ADD, ("\\Deleted",)))
        await env.run(a, c.Expunge())
        await env.deliver(bob, message("later"))
        b.subscription._mark_overflow()  # as the feed does when b falls behind
        out = await env.run(b, c.Noop())
        assert b"* 2 EXPUNGE\r\n" in out and b"* 3 EXISTS\r\n" in out
        await env.store.close()

    run(go())


def test_idle_pushes_updates(tmp_path) -> None:
    async def go() -> None:
        env, bob, a, b = await two_sessions(tmp_path)
        out = await b.execute("i1", c.Idle())
        assert out.data.startswith(b"+ idling\r\n")
        await env.deliver(bob, message("pushed"))
        assert await b.wait_change()
        assert await b.idle_sync() == b"* 4 EXISTS\r\n* 1 RECENT\r\n"  # b saw it first
        assert b"BAD" in await env.run(a, c.Store(seq("4"), c.StoreMode.ADD, ("\\Deleted",)))  # a's view: 3
        await env.run(a, c.Store(seq("4"), c.StoreMode.ADD, ("\\Deleted",)))  # the BAD's sync told a
        await env.run(a, c.Expunge())
        assert await b.idle_sync() == b"* 4 EXPUNGE\r\n"
        assert await b.idle_done("i1") == b"i1 OK IDLE terminated\r\n"
        await env.store.close()

    run(go())
