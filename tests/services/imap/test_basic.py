"""Session basics: login, capabilities, select, fetch, store, expunge."""

from __future__ import annotations

from harness import PASSWORD, lines, make_env, message, run, seq

from merpati.wire.imap import commands as c


def test_login_select_fetch_store_expunge(tmp_path) -> None:
    async def go() -> None:
        env = await make_env(tmp_path)
        bob = await env.user("bob")
        for i in range(3):
            await env.deliver(bob, message(f"msg {i}"))
        s = env.session()
        pre = await env.run(s, c.Capability())
        assert b"AUTH=PLAIN" in pre and b"IMAP4rev1" in pre
        bad = await env.run(s, c.Login(bob, "wrong"))
        assert b"NO [AUTHENTICATIONFAILED]" in bad
        ok = await env.run(s, c.Login(bob, PASSWORD), "a1")
        assert ok.startswith(b"a1 OK [CAPABILITY IMAP4rev1")
        sel = await env.run(s, c.Select("INBOX"), "a2")
        assert b"* 3 EXISTS\r\n" in sel and b"a2 OK [READ-WRITE]" in sel
        assert b"* 3 RECENT" in sel
        out = await env.run(s, c.Fetch(seq("1:*"), (c.FetchAttr("FLAGS"), c.FetchAttr("UID"))))
        assert lines(out)[:3] == [b"* 1 FETCH (FLAGS (\\Recent) UID 1)", b"* 2 FETCH (FLAGS (\\Recent) UID 2)",
                                  b"* 3 FETCH (FLAGS (\\Recent) UID 3)"]
        out = await env.run(s, c.Store(seq("2"), c.StoreMode.ADD, ("\\Deleted",)))
        assert lines(out)[0] == b"* 2 FETCH (FLAGS (\\Deleted \\Recent))"
        out = await env.run(s, c.Expunge())
        assert lines(out)[0] == b"* 2 EXPUNGE"
        out = await env.run(s, c.Fetch(seq("2"), (c.FetchBody(c.Section((), "HEADER.FIELDS", ("SUBJECT",)), peek=True),), uid=True))
        assert b"UID 2" not in out
        out = await env.run(s, c.Fetch(seq("3"), (c.FetchBody(c.Section((), "HEADER.FIELDS", ("SUBJECT",)), peek=True),), uid=True))
        assert b'* 2 FETCH (UID 3 BODY[HEADER.FIELDS (SUBJECT)] {18}\r\nSubject: msg 2\r\n\r\n)' in out
        out = await env.run(s, c.Fetch(seq("1"), (c.FetchBody(c.Section()),)))
        assert b"FLAGS (\\Seen \\Recent)" in out
        await env.store.close()

    run(go())
