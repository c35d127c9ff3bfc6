"""SECURITY-CASES POP-06 (second half): ``kill -9`` the server during the UPDATE state.

Any subset of the marked messages may be removed (ours: all or none, one commit), but never a
message that was not marked (RFC 1939 §6: "In no case may the server remove any messages not
marked as deleted"). The server is SIGKILLed right after QUIT is written, at a few different
moments, restarted on the same data, and the mailbox is checked each time.
"""

from __future__ import annotations

import re
import socket
import time

from support.merpati_server import PASSWORD

MESSAGES = 120


def mbox(count: int) -> bytes:
    out = []
    for i in range(count):
        out.append(
            b"From sender@elsewhere.test Sat Jan  3 00:00:00 2026\n"
            b"From: sender@elsewhere.test\nSubject: crash %d\n\nbody %d\n\n" % (i, i)
        )
    return b"".join(out)


def subjects(messages: list[bytes]) -> list[str]:
    return [re.search(rb"Subject: ([^\r\n]*)", m).group(1).decode() for m in messages]  # type: ignore[union-attr]


def pop3_quit_after_marking(server, user: str, marked: int) -> None:  # type: ignore[no-untyped-def]
    sock = socket.create_connection((server.host, server.ports["pop3"]), timeout=30)
    f = sock.makefile("rb")
    assert f.readline().startswith(b"+OK")
    commands = [b"USER " + user.encode(), b"PASS " + PASSWORD.encode()] + [b"DELE %d" % i for i in range(1, marked + 1)]
    sock.sendall(b"".join(c + b"\r\n" for c in commands))
    for _ in commands:
        assert f.readline().startswith(b"+OK")
    sock.sendall(b"QUIT\r\n")
    return sock  # type: ignore[return-value]


def test_kill_9_during_update_never_removes_unmarked_messages(merpati_factory, tmp_path) -> None:  # type: ignore[no-untyped-def]
    server = merpati_factory(listeners=("pop3",))
    user = server.new_user("crash")
    (tmp_path / "in.mbox").write_bytes(mbox(MESSAGES))
    server.cli("import", user, str(tmp_path / "in.mbox"))
    server.start()
    before = subjects(server.export(user))
    assert len(before) == MESSAGES
    outcomes = []
    for delay in (0.0, 0.001, 0.005, 0.02, None):
        marked = len(before) // 3
        sock = pop3_quit_after_marking(server, user, marked)
        if delay is None:  # after the answer: the commit is done
            sock.settimeout(30)
            assert sock.recv(4096).startswith(b"+OK Logging out")
        elif delay:
            time.sleep(delay)
        server.kill()
        sock.close()
        after = subjects(server.export(user))
        unmarked = before[marked:]
        assert after[-len(unmarked):] == unmarked, "an unmarked message was removed"
        assert after in (before, unmarked), "a partial UPDATE was committed"
        outcomes.append("removed" if after == unmarked else "kept")
        before = after
        server.start()
    assert outcomes[-1] == "removed"
    server.stop()
