"""A 250 after DATA is a promise: SIGKILL the server mid-load and every acknowledged message
must still be there, exactly once, and nothing half-written may appear.

Several smtplib clients (threads) send distinct messages (a unique token in the Message-ID and
in an end-of-body marker) to one mailbox. After a random-ish number of 250s the server gets
SIGKILL: no signal handler, no flush, no close. The clients see their connections die; the
message each one had in flight is "in doubt" (it may or may not have been committed). Then the
server restarts on the same data folder and the mailbox is exported:

* every token that got a 250 is present exactly once;
* no token is present twice, and nothing is present that was never sent;
* every stored message is byte-exact what its client sent (after the trace fields), so none
  is truncated or torn.

This runs three kill/restart rounds on one data folder, so recovery after a crash that follows
a crash is covered too. No timing is asserted.
"""

from __future__ import annotations

import collections
import random
import re
import smtplib
import threading
import time

import pytest

from support.messages import split_trace, token

pytestmark = pytest.mark.slow

SENDER = "durable-sender@elsewhere.test"
CLIENTS = 6
ROUNDS = 3
PER_ROUND = 150
TOKEN_RE = re.compile(rb"^Message-ID: <([0-9a-f]{16})@durability\.test>\r\n", re.M)


def build_message(rcpt: str, tok: str, rng: random.Random) -> bytes:
    # Sizes from 1 KB to ~120 KB, so a kill often lands in the middle of a large write.
    lines = rng.choice([10, 50, 400, 1500])
    body = b"".join(b"%s line %05d of the durable message body.....\r\n" % (tok.encode(), i) for i in range(lines))
    return (
        f"From: <{SENDER}>\r\n"
        f"To: <{rcpt}>\r\n"
        f"Subject: durability {tok}\r\n"
        f"Message-ID: <{tok}@durability.test>\r\n"
        "\r\n"
    ).encode() + body + f"END-OF-MESSAGE {tok}\r\n".encode()


class Load:
    """CLIENTS threads sending the round's messages until they run out or the server dies."""

    def __init__(self, host: str, port: int, rcpt: str, messages: dict[str, bytes]) -> None:
        self.host, self.port, self.rcpt = host, port, rcpt
        self.todo = collections.deque(messages)
        self.messages = messages
        self.lock = threading.Lock()
        self.acked: list[str] = []
        self.in_doubt: list[str] = []
        self.errors: list[str] = []
        self.threads = [threading.Thread(target=self._client, daemon=True) for _ in range(CLIENTS)]

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def join(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        for t in self.threads:
            t.join(max(0.1, deadline - time.monotonic()))
        alive = [t for t in self.threads if t.is_alive()]
        assert not alive, f"{len(alive)} client threads still running after {timeout}s"

    def _next(self) -> str | None:
        with self.lock:
            return self.todo.popleft() if self.todo else None

    def _client(self) -> None:
        try:
            client = smtplib.SMTP(self.host, self.port, local_hostname="durability.test", timeout=60)
        except OSError as exc:
            with self.lock:
                self.errors.append(f"connect: {exc!r}")
            return
        try:
            while (tok := self._next()) is not None:
                try:
                    refused = client.sendmail(SENDER, [self.rcpt], self.messages[tok])
                except (smtplib.SMTPException, OSError) as exc:
                    # The server died (or refused) with this message in flight: in doubt.
                    with self.lock:
                        self.in_doubt.append(tok)
                        self.errors.append(repr(exc))
                    return
                with self.lock:
                    (self.acked if not refused else self.in_doubt).append(tok)
        finally:
            try:
                client.close()
            except OSError:
                pass


def tokens_in(stored: list[bytes]) -> collections.Counter:
    counts: collections.Counter = collections.Counter()
    for message in stored:
        m = TOKEN_RE.search(message)
        assert m, f"a stored message without a token (torn or foreign): {message[:300]!r}...{message[-200:]!r}"
        counts[m.group(1).decode()] += 1
    return counts


def check_mailbox(stored: list[bytes], sent: dict[str, bytes], acked: set[str], in_doubt: set[str]) -> collections.Counter:
    counts = tokens_in(stored)
    missing = sorted(acked - set(counts))
    assert not missing, f"{len(missing)} messages got a 250 but are not in the mailbox: {missing[:10]}"
    twice = {t: n for t, n in counts.items() if n > 1}
    assert not twice, f"messages stored more than once: {twice}"
    unknown = set(counts) - acked - in_doubt
    assert not unknown, f"messages stored that never got a 250 nor were in flight: {sorted(unknown)[:10]}"
    for message in stored:
        parts = split_trace(message)
        tok = TOKEN_RE.search(message).group(1).decode()
        assert parts.original == sent[tok], (
            f"message {tok} is not what was sent ({len(parts.original)} bytes stored, {len(sent[tok])} sent; "
            f"tail {parts.original[-120:]!r})"
        )
    return counts


def test_sigkill_loses_no_acknowledged_message(merpati_factory):
    rng = random.Random()
    seed = rng.randrange(1 << 30)
    rng.seed(seed)
    server = merpati_factory()
    rcpt = server.new_user("durable")
    server.start()

    sent: dict[str, bytes] = {}
    acked: set[str] = set()
    in_doubt: set[str] = set()
    report = [f"seed={seed}"]
    for round_no in range(ROUNDS):
        messages = {}
        for _ in range(PER_ROUND):
            tok = token()
            messages[tok] = build_message(rcpt, tok, rng)
        sent.update(messages)
        kill_after = rng.randrange(PER_ROUND // 4, PER_ROUND * 2 // 3)
        load = Load(server.host, server.port, rcpt, messages)
        load.start()
        deadline = time.monotonic() + 180
        while True:
            with load.lock:
                done = len(load.acked) >= kill_after or not any(t.is_alive() for t in load.threads)
            if done or time.monotonic() > deadline:
                break
            time.sleep(0.002)
        server.kill()
        load.join()
        acked |= set(load.acked)
        in_doubt |= set(load.in_doubt)
        report.append(
            f"round {round_no}: kill after {kill_after} → acked {len(load.acked)}, in doubt {len(load.in_doubt)}, "
            f"unsent {len(load.todo)}, client errors {len(load.errors)}"
        )
        assert len(load.acked) >= kill_after, (
            f"the load never reached {kill_after} acks before the kill: {report}; errors {load.errors[:5]}"
        )
        assert len(load.in_doubt) <= CLIENTS, report

        server.start()  # same data folder: recovery happens here
        stored = server.export(rcpt)
        counts = check_mailbox(stored, sent, acked, in_doubt)
        report.append(f"  after restart: {len(stored)} stored ({len(counts.keys() & in_doubt)} of the in-doubt)")

    # The recovered server still accepts and files mail normally.
    tok = token()
    last = build_message(rcpt, tok, rng)
    sent[tok] = last
    with smtplib.SMTP(server.host, server.port, local_hostname="durability.test", timeout=30) as client:
        assert client.sendmail(SENDER, [rcpt], last) == {}
    acked.add(tok)
    stored = server.export(rcpt)
    check_mailbox(stored, sent, acked, in_doubt)
    print("\n".join(report))
