"""Hypothesis over random conversations (SECURITY-CASES c.3 P1: AUTHORIZATION → TRANSACTION → UPDATE)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from merpati.wire.pop3 import (
    NEED_DATA,
    Close,
    Err,
    Listing,
    Login,
    MultiLine,
    Ok,
    Pop3Server,
    Quit,
    Retr,
    StartTls,
    State,
    Top,
    UidListing,
)

WORDS = [b"USER", b"PASS", b"AUTH", b"STLS", b"CAPA", b"UTF8", b"QUIT", b"STAT", b"LIST", b"RETR", b"DELE",
         b"NOOP", b"RSET", b"TOP", b"UIDL", b"APOP", b"XYZ", b"*", b"PLAIN", b"LOGIN"]
ARGS = [b"", b"1", b"0", b"-1", b"2 3", b"99999999999999999999", b"a@b", b"AGFAYgBj", b"=", b"x" * 600, b"\x00", b"\xff"]
LINES = st.builds(lambda w, a, sep, end: w + (sep + a if a else b"") + end,
                  st.sampled_from(WORDS), st.sampled_from(ARGS), st.sampled_from([b" ", b"  ", b"\t"]),
                  st.sampled_from([b"\r\n", b"\n", b"\r\n", b"\r"]))


def answer(ev: object) -> Ok | Err | MultiLine:
    if isinstance(ev, Login):
        return Ok() if ev.password.startswith("p") or ev.password == "c" else Err("no")
    if isinstance(ev, Quit):
        return Ok("bye")
    if isinstance(ev, (Retr, Top)) or (isinstance(ev, (Listing, UidListing)) and ev.msg is None):
        return MultiLine("x", b".a\r\n")
    return Ok()


def check_output(out: bytes) -> None:
    for line in out.split(b"\r\n")[:-1]:
        assert len(line) + 2 <= 512
        assert b"\r" not in line and b"\n" not in line and b"\x00" not in line


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(LINES, max_size=30), st.booleans(), st.integers(min_value=1, max_value=7))
def test_random_conversations_never_crash(script: list[bytes], secure: bool, step: int) -> None:
    srv = Pop3Server(plaintext_auth=secure, tls_available=True)
    data = b"".join(script)
    out = bytearray()
    pieces = [data[i : i + step] for i in range(0, len(data), step)]
    pieces.reverse()
    while True:
        ev = srv.next_event()
        out += srv.data_to_send()
        if ev is NEED_DATA:
            if not pieces:
                srv.receive_eof()
                pieces.append(b"")
                continue
            srv.receive_data(pieces.pop())
            continue
        if isinstance(ev, Close):
            break
        if isinstance(ev, StartTls):
            srv.tls_started()
            continue
        out += srv.send(answer(ev))
    check_output(bytes(out))
    assert srv.closed


class Pop3Machine(RuleBasedStateMachine):
    """The engine against a model of which commands reach the session in which state."""

    def __init__(self) -> None:
        super().__init__()
        self.srv = Pop3Server(plaintext_auth=True)
        self.logged_in = False
        self.closed = False

    def run(self, line: bytes) -> list[object]:
        self.srv.receive_data(line)
        events = []
        while True:
            ev = self.srv.next_event()
            out = self.srv.data_to_send()
            check_output(out)
            if ev is NEED_DATA:
                return events
            events.append(ev)
            if isinstance(ev, Close):
                self.closed = True
                return events
            check_output(self.srv.send(answer(ev)))

    @rule(line=LINES)
    def random_line(self, line: bytes) -> None:
        if self.closed:
            return
        events = self.run(line)
        for ev in events:
            if not isinstance(ev, (Close, Login)):
                assert self.logged_in, f"{ev} reached the session before login"

    @rule(password=st.sampled_from([b"pw", b"bad"]))
    def login(self, password: bytes) -> None:
        if self.closed or self.logged_in:
            return
        events = self.run(b"USER u@x\r\nPASS " + password + b"\r\n")
        if events and isinstance(events[0], Login) and password == b"pw":
            self.logged_in = True

    @invariant()
    def state_agrees(self) -> None:
        if self.closed:
            assert self.srv.state is State.CLOSED
        elif self.logged_in:
            assert self.srv.state is State.TRANSACTION
        else:
            assert self.srv.state in (State.AUTHORIZATION, State.SASL)


Pop3Machine.TestCase.settings = settings(max_examples=150, stateful_step_count=30, deadline=None)
TestPop3Machine = Pop3Machine.TestCase
