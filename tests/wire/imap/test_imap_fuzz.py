"""Hypothesis: the engine never crashes, whole and byte-by-byte feeding agree, and
generated valid commands parse to what was generated."""

from __future__ import annotations

import os
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from imap_helpers import Harness

from merpati.wire.imap import (
    NEED_DATA,
    AppendChunk,
    AppendLiteral,
    AuthCancel,
    AuthResponse,
    Command,
    ConnectionClosed,
    Fetch,
    IdleDone,
    ImapLimits,
    ImapServer,
    ProtocolError,
    SequenceSet,
    Store,
    StoreMode,
)
from merpati.wire.imap import response as R
from merpati.wire.imap.commands import FetchAttr, FetchBody, Section
from merpati.wire.imap.seqset import MAX_NZ

FUZZ = settings(max_examples=int(os.environ.get("IMAP_FUZZ_EXAMPLES", "300")), deadline=None, suppress_health_check=[HealthCheck.too_slow])
LIMITS = ImapLimits(max_line=2048, max_line_prelogin=1024, max_literal=512, max_literal_prelogin=256,
                    message_size=2000, max_command=8192, max_command_prelogin=4096)
OK_EVENTS = (Command, ProtocolError, AppendLiteral, AppendChunk, IdleDone, AuthResponse, AuthCancel,
             ConnectionClosed)

TOKENS = [b"a", b"b1", b" ", b"(", b")", b"[", b"]", b"<", b">", b".", b"{", b"}", b"+}", b"~{", b"{3}\r\n",
          b"{2+}\r\n", b"{0}\r\n", b"~{1}\r\n", b'"', b"\\", b"*", b"%", b"$", b"\r\n", b"\n", b"\r", b"\x00",
          b"\xff", b"1", b"1:*", b"4294967296", b"NIL", b"UID", b"FETCH", b"STORE", b"SEARCH", b"APPEND",
          b"LOGIN", b"SELECT", b"LIST", b"IDLE", b"DONE", b"AUTHENTICATE", b"PLAIN", b"STARTTLS",
          b"COMPRESS", b"BODY[", b"BODY.PEEK[HEADER.FIELDS (", b"+FLAGS", b"\\Seen", b"INBOX", b"&Jjo-",
          b"&", b"OR", b"NOT", b"RETURN", b"CHARSET", b"*", b"=", b"AHUAcA==", b"99999999999999999999"]

junk = st.lists(st.one_of(st.sampled_from(TOKENS), st.binary(max_size=8)), max_size=60).map(b"".join)


def run(data: bytes, *, bytewise: bool, authenticated: bool, **kw: Any) -> list[Any]:
    h = Harness(limits=LIMITS, authenticated=authenticated, **kw)
    h.feed(data, bytewise=bytewise)
    events = h.take()[0]
    for ev in events:
        assert isinstance(ev, OK_EVENTS), ev
    assert len(h.eng.buffered) <= LIMITS.max_line + LIMITS.max_command + 16
    return events


@FUZZ
@given(junk, st.booleans(), st.booleans())
def test_junk_never_crashes_and_feeding_agrees(data: bytes, authenticated: bool, lplus: bool) -> None:
    whole = run(data, bytewise=False, authenticated=authenticated, literal_plus=lplus)
    single = run(data, bytewise=True, authenticated=authenticated, literal_plus=lplus)
    assert whole == single


@FUZZ
@given(st.binary(max_size=300), st.booleans())
def test_random_bytes_never_crash(data: bytes, stream: bool) -> None:
    run(data + b"\r\n", bytewise=False, authenticated=True, stream_append=stream)


@FUZZ
@given(st.lists(junk, max_size=6))
def test_random_chunking_agrees(pieces: list[bytes]) -> None:
    data = b"".join(pieces)
    h = Harness(limits=LIMITS, authenticated=True)
    for piece in pieces:
        h.eng.receive_data(piece)
        h.pump()
    assert h.take()[0] == run(data, bytewise=False, authenticated=True)


# -- generated valid commands ---------------------------------------------------------------------
nz = st.integers(1, MAX_NZ)
seqsets = st.lists(st.tuples(st.one_of(nz, st.just(0)), st.one_of(nz, st.just(0))), min_size=1,
                   max_size=5).map(lambda rs: SequenceSet(tuple(rs)))
flags = st.lists(st.one_of(st.sampled_from(["\\Seen", "\\Deleted", "\\Flagged", "\\Answered", "\\Draft"]),
                           st.from_regex(r"\$?[A-Za-z][A-Za-z0-9_]{0,10}", fullmatch=True)), max_size=4)
tags = st.from_regex(r"[A-Za-z0-9.\-_]{1,8}", fullmatch=True)
fetch_items = st.lists(st.one_of(
    st.sampled_from(["FLAGS", "UID", "RFC822.SIZE", "INTERNALDATE", "ENVELOPE", "BODYSTRUCTURE",
                     "MODSEQ"]).map(FetchAttr),
    st.builds(lambda part, peek: FetchBody(Section(tuple(part)), None, peek),
              st.lists(st.integers(1, 20), max_size=3), st.booleans()),
    st.builds(lambda names, peek: FetchBody(Section((), "HEADER.FIELDS", tuple(names)), None, peek),
              st.lists(st.from_regex(r"[A-Z][A-Z0-9\-]{0,10}", fullmatch=True), min_size=1, max_size=3),
              st.booleans()),
), min_size=1, max_size=6)


def fetch_text(f: Fetch) -> bytes:
    parts = []
    for it in f.items:
        if isinstance(it, FetchAttr):
            parts.append(it.name)
        else:
            parts.append(("BODY.PEEK[" if it.peek else "BODY[") + it.section.spec + "]")
    text = ("UID " if f.uid else "") + "FETCH " + f.sequence.format() + " (" + " ".join(parts) + ")"
    if f.changedsince is not None:
        text += f" (CHANGEDSINCE {f.changedsince})"
    return text.encode()


@FUZZ
@given(tags, seqsets, fetch_items, st.booleans(), st.one_of(st.none(), st.integers(1, 2**63 - 1)))
def test_generated_fetch_round_trip(tag: str, seq: SequenceSet, items: list[Any], uid: bool,
                                    since: int | None) -> None:
    cmd = Fetch(seq, tuple(items), uid, since)
    data = tag.encode() + b" " + fetch_text(cmd) + b"\r\n"
    for bytewise in (False, True):
        events = run(data, bytewise=bytewise, authenticated=True)
        assert events == [Command(tag, cmd)]


@FUZZ
@given(tags, seqsets, st.sampled_from(list(StoreMode)), flags, st.booleans(), st.booleans())
def test_generated_store_round_trip(tag: str, seq: SequenceSet, mode: StoreMode, fl: list[str],
                                    silent: bool, uid: bool) -> None:
    cmd = Store(seq, mode, tuple(fl), silent, uid)
    text = (("UID " if uid else "") + "STORE " + seq.format() + " " + mode.value + "FLAGS"
            + (".SILENT" if silent else "") + " (" + " ".join(fl) + ")")
    events = run(tag.encode() + b" " + text.encode() + b"\r\n", bytewise=False, authenticated=True)
    assert events == [Command(tag, cmd)]


@FUZZ
@given(st.binary(max_size=200), st.text(max_size=30))
def test_login_strings_round_trip(user: bytes, password: str) -> None:
    """Strings serialised by our own serialiser (quoted or literal) parse back."""
    pw = password.encode()
    data = b"a LOGIN " + R.serialize(user) + b" " + R.serialize(pw) + b"\r\n"
    events = run(data, bytewise=False, authenticated=True)
    ev = events[-1]
    if b"\x00" in user or b"\x00" in pw:
        assert isinstance(ev, ProtocolError)
        return
    try:
        expected_user = user.decode()
    except UnicodeDecodeError:
        assert isinstance(ev, ProtocolError)
        return
    assert ev == Command("a", type(ev.command)(expected_user, password))


@FUZZ
@given(st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=30), st.booleans())
def test_mailbox_names_round_trip(name: str, utf8: bool) -> None:
    eng = ImapServer(authenticated=True, utf8=utf8)
    eng.receive_data(b"a SELECT " + R.mailbox(name, utf8=utf8) + b"\r\n")
    ev = eng.next_event()
    expected = "INBOX" if name.upper() == "INBOX" else name
    if any("\x80" <= ch <= "\x9f" for ch in name):
        assert isinstance(ev, ProtocolError)
    else:
        assert ev == Command("a", type(ev.command)(expected)), ev
    assert eng.next_event() is NEED_DATA
