"""STORE (UNCHANGEDSINCE n) with two sessions on one mailbox (RFC 7162 §3.1.3): the condition
is checked in the same store transaction as the change, so of two sessions racing to change a
message they both read at one MODSEQ exactly one wins and the other gets [MODIFIED ...]; a
failed message comes with an untagged FETCH of its current flags and MODSEQ."""

from __future__ import annotations

import asyncio
import re

from harness import lines, make_env, message, run, seq

from merpati.wire.imap import commands as c

MODSEQ = (c.FetchAttr("MODSEQ"),)


async def two_sessions(tmp_path, n: int = 3):
    env = await make_env(tmp_path)
    bob = await env.user("bob")
    for i in range(n):
        await env.deliver(bob, message(f"m{i}"))
    a, b = await env.login(bob), await env.login(bob)
    await env.run(a, c.Select("INBOX"))
    await env.run(b, c.Select("INBOX"))
    return env, a, b


async def modseq_of(env, s, number: int) -> int:
    out = await env.run(s, c.Fetch(seq(str(number)), MODSEQ))
    return int(re.search(rb"\* %d FETCH \(MODSEQ \((\d+)\)\)" % number, out).group(1))


def tagged(out: bytes) -> bytes:
    return lines(out)[-1]


def test_racing_sessions_exactly_one_wins(tmp_path) -> None:
    async def go() -> None:
        env, a, b = await two_sessions(tmp_path)
        for round_ in range(5):
            since = max(await modseq_of(env, a, 1), await modseq_of(env, b, 1))
            out_a, out_b = await asyncio.gather(
                env.run(a, c.Store(seq("1"), c.StoreMode.REPLACE, (f"$a{round_}",), unchangedsince=since)),
                env.run(b, c.Store(seq("1"), c.StoreMode.REPLACE, (f"$b{round_}",), unchangedsince=since)),
            )
            results = {"a": out_a, "b": out_b}
            losers = [k for k, out in results.items() if b"[MODIFIED 1]" in tagged(out)]
            assert len(losers) == 1, results
            [winner] = [k for k in results if k not in losers]
            assert tagged(results[winner]).split()[1:3] == [b"OK", b"STORE"], results
            # the loser is told the winner's flags and MODSEQ at once
            loser_out = results[losers[0]]
            m = re.search(rb"\* 1 FETCH \(UID 1 FLAGS \(([^)]*)\) MODSEQ \((\d+)\)\)", loser_out)
            assert m and m.group(1) == f"${winner}{round_}".encode(), loser_out
            stored = {x.uid: x for x in await env.store.list_messages(a.selected.mailbox_id)}[1]
            assert stored.flags == frozenset({f"${winner}{round_}"}) and stored.modseq == int(m.group(2))
        await env.store.close()

    run(go())


def test_failed_messages_get_modified_and_a_fetch_the_others_change(tmp_path) -> None:
    async def go() -> None:
        env, a, b = await two_sessions(tmp_path)
        since = await modseq_of(env, b, 3)  # the highest MODSEQ of the three
        await env.run(a, c.Store(seq("2"), c.StoreMode.ADD, ("$Other",)))
        out = await env.run(b, c.Store(seq("1:3"), c.StoreMode.ADD, ("\\Answered",), unchangedsince=since))
        assert tagged(out).endswith(b"OK [MODIFIED 2] Conditional STORE failed"), out
        got = [x for x in lines(out) if x.startswith(b"* ")]
        assert any(re.fullmatch(rb"\* 2 FETCH \(UID 2 FLAGS \(\$Other\) MODSEQ \(\d+\)\)", x) for x in got), got
        assert any(re.fullmatch(rb"\* 1 FETCH \(FLAGS \(\\Answered\) MODSEQ \(\d+\)\)", x) for x in got), got
        assert sum(x.startswith(b"* 2 FETCH") for x in got) == 1  # not repeated by the sync after STORE
        out = await env.run(b, c.Noop())
        assert b"FETCH" not in out  # b already knows
        by_uid = {m.uid: m for m in await env.store.list_messages(a.selected.mailbox_id)}
        assert by_uid[2].flags == frozenset({"$Other"})
        assert by_uid[1].flags == by_uid[3].flags == frozenset({"\\Answered"})
        # UID STORE reports UIDs; .SILENT still tells the MODSEQs of the changed ones
        since = await modseq_of(env, b, 3)
        await env.run(a, c.Store(seq("3"), c.StoreMode.ADD, ("$Again",)))
        out = await env.run(b, c.Store(seq("1:3"), c.StoreMode.REMOVE, ("\\Answered",), silent=True,
                                       uid=True, unchangedsince=since))
        assert tagged(out).endswith(b"OK [MODIFIED 3] Conditional STORE failed"), out
        got = [x for x in lines(out) if x.startswith(b"* ")]
        assert any(re.fullmatch(rb"\* 1 FETCH \(UID 1 MODSEQ \(\d+\)\)", x) for x in got), got
        assert any(re.fullmatch(rb"\* 3 FETCH \(UID 3 FLAGS \(\\Answered \$Again\) MODSEQ \(\d+\)\)", x) for x in got), got
        await env.store.close()

    run(go())


def test_no_spurious_modified_when_the_message_already_is_as_asked(tmp_path) -> None:
    async def go() -> None:
        env, a, b = await two_sessions(tmp_path)
        since = await modseq_of(env, b, 3)
        await env.run(a, c.Store(seq("2"), c.StoreMode.ADD, ("\\Seen", "$Other")))
        # +FLAGS \Seen on 2 failed the test, but 2 has \Seen already: no MODIFIED
        out = await env.run(b, c.Store(seq("2"), c.StoreMode.ADD, ("\\seen",), unchangedsince=since))
        assert tagged(out).split()[1:3] == [b"OK", b"STORE"], out
        assert re.search(rb"\* 2 FETCH \(UID 2 FLAGS \(\\Seen \$Other\) MODSEQ \(\d+\)\)", out), out
        out = await env.run(b, c.Store(seq("2"), c.StoreMode.REMOVE, ("\\Flagged",), unchangedsince=since))
        assert b"MODIFIED" not in tagged(out), out
        # ... but a replacement that was not applied is reported, even when it looks the same
        out = await env.run(b, c.Store(seq("2"), c.StoreMode.REPLACE, ("\\Seen", "$Other"), unchangedsince=since))
        assert tagged(out).endswith(b"OK [MODIFIED 2] Conditional STORE failed"), out
        # and so is a +FLAGS that would change something
        out = await env.run(b, c.Store(seq("2"), c.StoreMode.ADD, ("\\Flagged",), unchangedsince=since))
        assert b"[MODIFIED 2]" in tagged(out), out
        assert {m.uid: m.flags for m in await env.store.list_messages(a.selected.mailbox_id)}[2] == frozenset({"\\Seen", "$Other"})
        await env.store.close()

    run(go())


def test_unchangedsince_zero_fails_every_message(tmp_path) -> None:
    async def go() -> None:
        env, a, b = await two_sessions(tmp_path)
        out = await env.run(b, c.Store(seq("1:3"), c.StoreMode.REPLACE, ("$X",), unchangedsince=0))
        assert tagged(out).endswith(b"OK [MODIFIED 1:3] Conditional STORE failed"), out
        assert all(not m.flags for m in await env.store.list_messages(a.selected.mailbox_id))
        out = await env.run(a, c.Noop())
        assert b"FETCH" not in out  # nothing changed, nothing to announce
        await env.store.close()

    run(go())
