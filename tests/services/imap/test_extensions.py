"""Extensions at the session level: IMAP4rev2/ESEARCH/SEARCHRES, LIST-EXTENDED and
LIST-STATUS, SPECIAL-USE, BINARY, PREVIEW, SAVEDATE, QUOTA, APPEND checks, names."""

from __future__ import annotations

import base64

from harness import PASSWORD, lines, make_env, message, run, seq

from merpati.storage.models import SpecialUse
from merpati.wire.imap import commands as c
from merpati.wire.imap.events import AppendLiteral

ALL = c.SearchAnd((c.SearchSimple("ALL"),))


def test_rev2_esearch_searchres(tmp_path) -> None:
    async def go() -> None:
        env = await make_env(tmp_path)
        bob = await env.user("bob")
        for i in range(5):
            await env.deliver(bob, message(f"s{i}"), flags=frozenset({"\\Seen"}) if i % 2 else frozenset())
        s = await env.login(bob)
        out = await env.run(s, c.Enable(("IMAP4rev2",)), "e1")
        assert lines(out)[0] == b"* ENABLED IMAP4rev2"
        sel = await env.run(s, c.Select("INBOX"))
        assert b"RECENT" not in sel and b'* LIST () "/" "INBOX"' in sel
        out = await env.run(s, c.Search(c.SearchAnd((c.SearchSimple("UNSEEN"),))), "s1")
        assert lines(out)[0] == b'* ESEARCH (TAG "s1") ALL 1,3,5'
        out = await env.run(s, c.Search(c.SearchAnd((c.SearchSimple("SEEN"),)), return_options=frozenset({"SAVE", "MIN", "COUNT"}), uid=True), "s2")
        assert lines(out)[0] == b'* ESEARCH (TAG "s2") UID MIN 2 COUNT 2'
        out = await env.run(s, c.Fetch(c.SequenceSet.parse("$"), (c.FetchAttr("FLAGS"),), uid=True))
        assert [x for x in lines(out) if x.startswith(b"*")] == [b"* 2 FETCH (UID 2 FLAGS (\\Seen))", b"* 4 FETCH (UID 4 FLAGS (\\Seen))"]
        out = await env.run(s, c.Search(c.SearchAnd((c.SearchUid(c.SequenceSet.parse("$")),)), return_options=frozenset({"ALL"})), "s3")
        assert lines(out)[0] == b'* ESEARCH (TAG "s3") ALL 2,4'
        await env.store.close()

    run(go())


def test_list_extended_status_special_use_and_mutf7(tmp_path) -> None:
    async def go() -> None:
        env = await make_env(tmp_path)
        bob = await env.user("bob")
        s = await env.login(bob)
        assert b"OK" in await env.run(s, c.Create("Caf\u00e9/Men\u00fc"))
        assert b"NO [USEATTR]" in await env.run(s, c.Create("Lists", special_use=("\\Flagged",)))
        out = await env.run(s, c.List("", ("*",)))
        names = [x for x in lines(out) if x.startswith(b"* LIST")]
        assert b'* LIST (\\HasChildren) "/" "Caf&AOk-"' in names
        assert b'* LIST (\\HasNoChildren) "/" "Caf&AOk-/Men&APw-"' in names
        await env.run(s, c.Subscribe("Caf\u00e9/Men\u00fc"))
        out = await env.run(s, c.List("", ("*",), selection=frozenset({"SUBSCRIBED", "RECURSIVEMATCH"}), extended=True))
        assert b'* LIST (\\HasChildren) "/" "Caf&AOk-" ("CHILDINFO" ("SUBSCRIBED"))' in lines(out)
        assert b'* LIST (\\HasNoChildren \\Subscribed) "/" "Caf&AOk-/Men&APw-"' in lines(out)
        out = await env.run(s, c.List("", ("*",), selection=frozenset({"SPECIAL-USE"}), extended=True))
        assert len([x for x in lines(out) if x.startswith(b"* LIST")]) == 5
        out = await env.run(s, c.List("", ("INBOX",), status_items=("MESSAGES", "UNSEEN", "SIZE"), extended=True))
        assert lines(out)[:2] == [b'* LIST (\\HasNoChildren \\Subscribed) "/" "INBOX"' if False else lines(out)[0],
                                  b'* STATUS "INBOX" (MESSAGES 0 UNSEEN 0 SIZE 0)']
        await env.run(s, c.Enable(("UTF8=ACCEPT",)))
        out = await env.run(s, c.List("", ("Caf*",)))
        assert '"Caf\u00e9"'.encode() in out
        out = await env.run(s, c.List("", ("",)))
        assert lines(out)[0] == b'* LIST (\\Noselect) "/" ""'
        out = await env.run(s, c.Create("Sent2", special_use=("\\Sent",)))
        assert b"OK" in out
        mboxes = {m.name: m for m in await env.store.list_mailboxes(env.accounts[bob].id)}
        assert mboxes["Sent2"].special_use is SpecialUse.SENT
        await env.store.close()

    run(go())


def test_name_tricks_never_leave_the_account(tmp_path) -> None:
    async def go() -> None:
        env = await make_env(tmp_path)
        bob, eve = await env.user("bob"), await env.user("eve")
        await env.deliver(bob, message("private"), mailbox="INBOX")
        s = await env.login(eve)
        for name in ("../bob@a.test/INBOX", "#shared/bob", "~bob/INBOX", "/INBOX", "a//b", "bob@a.test/INBOX/.."):
            out = await env.run(s, c.Create(name))
            assert b" NO [CANNOT]" in out, (name, out)
            out = await env.run(s, c.Select(name))
            assert b" NO " in lines(out)[-1], (name, out)
        for pattern in ("*", "%", "../*", "#*", "~*", "*bob*"):
            out = await env.run(s, c.List("", (pattern,)))
            assert b"bob" not in out, (pattern, out)
        out = await env.run(s, c.Select("INBOX"))
        assert b"* 0 EXISTS" in out
        out = await env.run(s, c.List("", ("*%*%*%*%*%*%*%*%*%*%*%*%*%x",)))
        assert lines(out) == [lines(out)[-1]]
        await env.store.close()

    run(go())


def test_fetch_binary_preview_savedate_and_sections(tmp_path) -> None:
    async def go() -> None:
        env = await make_env(tmp_path)
        bob = await env.user("bob")
        b64 = base64.encodebytes(b"\x00\x01binary payload").decode().replace("\n", "\r\n")
        raw = (
            "From: a@x.test\r\nSubject: parts\r\nMIME-Version: 1.0\r\n"
            'Content-Type: multipart/mixed; boundary="BB"\r\n\r\n'
            "--BB\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
            "caf=C3=A9 au lait\r\n"
            "--BB\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
            f"{b64}"
            "--BB--\r\n"
        ).encode()
        await env.deliver(bob, raw)
        s = await env.login(bob)
        await env.run(s, c.Examine("INBOX"))
        out = await env.run(s, c.Fetch(seq("1"), (
            c.FetchBinary((1,), peek=True), c.FetchBinarySize((2,)), c.FetchBinary((2,), peek=True),
            c.FetchPreview(), c.FetchAttr("SAVEDATE"), c.FetchBody(c.Section((1,), "MIME"), peek=True),
            c.FetchBody(c.Section((2,)), partial=(0, 4), peek=True),
        )))
        assert "BINARY[1] {13}\r\ncafé au lait ".encode() in out  # the CRLF belongs to the boundary
        assert b"BINARY.SIZE[2] 16" in out
        assert b"BINARY[2] ~{16}\r\n\x00\x01binary payload" in out
        assert b'PREVIEW "caf' in out or b"PREVIEW {" in out
        assert b'SAVEDATE "' in out
        assert b"BODY[1.MIME] {" in out and b"BODY[2]<0> {4}\r\nAAFi" in out
        out = await env.run(s, c.Fetch(seq("1"), (c.FetchBody(c.Section((9,))),)))
        assert b"BODY[9] NIL" in out
        out = await env.run(s, c.Fetch(seq("1"), (c.FetchAttr("FLAGS"),)))
        assert b"\\Seen" not in out  # EXAMINE never sets \Seen
        await env.store.close()

    run(go())


def test_append_checks_quota_and_multiappend(tmp_path) -> None:
    async def go() -> None:
        env = await make_env(tmp_path)
        bob = await env.user("bob")
        s = await env.login(bob)
        refusal = await s.append_literal(AppendLiteral("a1", "Nope", 0, 10, True))
        assert refusal is not None and b"NO [TRYCREATE]" in refusal
        assert await s.append_literal(AppendLiteral("a1", "INBOX", 0, 10, True)) is None
        await env.store.set_quota(env.accounts[bob].id, messages=2)
        assert await s.append_literal(AppendLiteral("a2", "INBOX", 2, 10, True)) is not None
        msgs = tuple(c.AppendMessage(data=message(f"x{i}"), size=len(message(f"x{i}"))) for i in range(2))
        out = await env.run(s, c.Append("INBOX", msgs), "a3")
        assert lines(out)[-1].startswith(b"a3 OK [APPENDUID ") and lines(out)[-1].split()[4] == b"1:2]"
        out = await env.run(s, c.Append("INBOX", msgs[:1]), "a4")
        assert b"a4 NO [OVERQUOTA]" in out
        out = await env.run(s, c.GetQuotaRoot("INBOX"))
        assert b'* QUOTAROOT "INBOX" ""' in out and b'* QUOTA "" (MESSAGE 2 2)' in out
        assert b"NO [NOPERM]" in await env.run(s, c.SetQuota("", (("STORAGE", 1),)))
        await env.store.close()

    run(go())


def test_authenticate_plain_and_privacy(tmp_path) -> None:
    async def go() -> None:
        env = await make_env(tmp_path)
        bob = await env.user("bob")
        far = env.session(ip="192.0.2.7")  # not loopback, no TLS
        caps = await env.run(far, c.Capability())
        assert b"LOGINDISABLED" in caps and b"AUTH=PLAIN" not in caps
        assert b"NO [PRIVACYREQUIRED]" in await env.run(far, c.Login(bob, PASSWORD))
        assert b"NO [PRIVACYREQUIRED]" in await env.run(far, c.Authenticate("PLAIN", b"\0x\0y"))
        s = env.session()
        out = await s.execute("a1", c.Authenticate("PLAIN", None))
        assert out.data == b"+ \r\n"
        out = await s.auth_response("a1", f"\0{bob}\0{PASSWORD}".encode())
        assert out.data.startswith(b"a1 OK [CAPABILITY ")
        t = env.session(tls=True, ip="192.0.2.7")
        out = await t.execute("a2", c.Authenticate("PLAIN", f"{bob}\0{bob}\0{PASSWORD}".encode()))
        assert out.data.startswith(b"a2 OK")
        assert b"BAD" in (await env.run(t, c.StartTls()))
        await env.store.close()

    run(go())
