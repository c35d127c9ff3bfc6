"""SequenceSet, modified UTF-7, LIST pattern matching and the response serialiser,
with Hypothesis round trips."""

from __future__ import annotations

import re
import time
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from merpati.wire.imap import MailboxNameError, SequenceSet, SequenceSetError, match_mailbox_pattern
from merpati.wire.imap import mutf7
from merpati.wire.imap import response as R
from merpati.wire.imap.seqset import MAX_NZ, STAR


# -- SequenceSet -----------------------------------------------------------------------------
def test_seqset_parse_format() -> None:
    s = SequenceSet.parse("1:3,5,*,7:*,9:4")
    assert s.ranges == ((1, 3), (5, 5), (STAR, STAR), (7, STAR), (9, 4))
    assert s.format() == "1:3,5,*,7:*,9:4"
    assert str(SequenceSet.parse(b"$")) == "$"


def test_seqset_semantics() -> None:
    s = SequenceSet.parse("1:3,5,9:7,20:*")
    assert list(s.iterate(10)) == [1, 2, 3, 5, 7, 8, 9, 10]
    assert s.resolve(10) == [(1, 3), (5, 5), (7, 10)]
    assert s.contains(10, 10) and not s.contains(11, 10) and not s.contains(4, 10)
    assert s.count(100) == 3 + 1 + 3 + 81
    assert list(SequenceSet.parse("100:*").iterate(50)) == [50]
    assert list(SequenceSet.parse("*").iterate(0)) == []
    assert SequenceSet.parse("1:*").uses_star and not SequenceSet.parse("1:4").uses_star


def test_seqset_iterate_bounded_by_max() -> None:
    s = SequenceSet.parse("1:4294967295")
    assert s.count(10) == 10
    assert sum(1 for _ in s.iterate(10)) == 10


def test_seqset_saved_needs_resolution() -> None:
    s = SequenceSet.parse("$")
    assert s.saved
    with pytest.raises(SequenceSetError):
        s.resolve(10)
    with pytest.raises(SequenceSetError):
        s.contains(1, 10)


@pytest.mark.parametrize("bad", ["", "0", "1:0", "01", "4294967296", "1,", ",1", "1::2", "a", "1:2:3",
                                 "$,1", "*:*:*", "-1", "1 2", "9" * 30])
def test_seqset_invalid(bad: str) -> None:
    with pytest.raises(SequenceSetError):
        SequenceSet.parse(bad)


def test_seqset_range_limit() -> None:
    with pytest.raises(SequenceSetError):
        SequenceSet.parse(",".join(["1"] * 101), max_ranges=100)
    assert len(SequenceSet.parse(",".join(["1"] * 100), max_ranges=100).ranges) == 100


def test_seqset_from_numbers() -> None:
    assert SequenceSet.from_numbers([5, 1, 2, 3, 9, 10, 3]).format() == "1:3,5,9:10"
    assert SequenceSet.from_numbers([]).format() == ""
    with pytest.raises(SequenceSetError):
        SequenceSet.from_numbers([0])


nz = st.integers(1, MAX_NZ)
seq_number = st.one_of(nz, st.just(STAR))
ranges = st.lists(st.tuples(seq_number, seq_number), min_size=1, max_size=30)


@given(ranges)
def test_seqset_round_trip(rs: list[tuple[int, int]]) -> None:
    s = SequenceSet(tuple(rs))
    text = s.format()
    assert SequenceSet.parse(text) == s
    assert SequenceSet.parse(text).format() == text


@given(st.lists(st.tuples(st.integers(1, 60), st.integers(1, 60)), min_size=1, max_size=10),
       st.integers(0, 50))
def test_seqset_resolve_matches_naive(rs: list[tuple[int, int]], max_value: int) -> None:
    s = SequenceSet(tuple(rs))
    naive = {n for a, b in rs for n in range(min(a, b), max(a, b) + 1) if n <= max_value}
    # n:m with both above max contains nothing; "*" semantics are separate
    assert set(s.iterate(max_value)) == naive
    assert all(s.contains(n, max_value) == (n in naive) for n in range(0, 62))
    assert s.count(max_value) == len(naive)


@given(st.lists(st.integers(1, 10_000), max_size=200))
def test_seqset_from_numbers_round_trip(nums: list[int]) -> None:
    s = SequenceSet.from_numbers(nums)
    assert set(s.iterate(10_000)) == set(nums)


# -- modified UTF-7 ------------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "wire"), [
    ("INBOX", "INBOX"),
    ("&", "&-"),
    ("a&b&", "a&-b&-"),
    ("Entwürfe", "Entw&APw-rfe"),
    ("~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"),
    ("☺!", "&Jjo-!"),
    ("x😀y", "x&2D3eAA-y"),
    ("Отправленные", "&BB4EQgQ,BEAEMAQyBDsENQQ9BD0ESwQ1-"),
])
def test_mutf7_vectors(name: str, wire: str) -> None:
    assert mutf7.encode(name) == wire
    assert mutf7.decode(wire) == name
    assert mutf7.decode(wire.encode()) == name


@pytest.mark.parametrize("bad", ["&", "&Jjo!", "&AGE-&AGE-", "&AGE-", "&U,BTFw-&ZeVnLIqe-", "&2D3e-",
                                 "&2D0-", "&3gA-", "&Jjp-", "a\x7fb", "\x80", "&Jj-", "&J-", "&A-", "&Jjo"])
def test_mutf7_malformed(bad: str) -> None:
    with pytest.raises(MailboxNameError):
        mutf7.decode(bad)


def test_mutf7_controls_refused_in_names() -> None:
    with pytest.raises(MailboxNameError):
        mutf7.decode_name(b"&AAA-")  # U+0000
    with pytest.raises(MailboxNameError):
        mutf7.decode_name(b"a\x01b", utf8=True)
    assert mutf7.decode_name("ä&".encode(), utf8=True) == "ä&"
    assert mutf7.encode_name("ä", utf8=True) == "ä"


names = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)


@given(names)
def test_mutf7_round_trip(name: str) -> None:
    wire = mutf7.encode(name)
    assert re.fullmatch(r"[\x20-\x7e]*", wire)
    assert mutf7.decode(wire) == name


@given(st.text(st.sampled_from("&-+,AZaz09/!~ \x7f"), max_size=20))
def test_mutf7_decode_is_canonical_or_error(wire: str) -> None:
    try:
        name = mutf7.decode(wire)
    except MailboxNameError:
        return
    assert mutf7.encode(name) == wire


# -- LIST patterns ---------------------------------------------------------------------------
@pytest.mark.parametrize(("pattern", "name", "expected"), [
    ("*", "a/b/c", True), ("%", "a/b", False), ("%", "a", True), ("a/%", "a/b", True),
    ("a/%", "a/b/c", False), ("a/*", "a/b/c", True), ("a%b", "a/b", False), ("a*b", "a/x/b", True),
    ("INBOX", "INBOX", True), ("INBOX", "INBOXx", False), ("", "", True), ("a", "", False),
    ("%/%", "a/b", True), ("*x", "abc", False), ("*%", "a/b", True), ("%*", "a/b", True),
    ("%%", "a/b", False), ("a%%c", "abc", True), ("*/c", "a/b/c", True), ("%/c", "a/b/c", False),
])
def test_pattern_table(pattern: str, name: str, expected: bool) -> None:
    assert match_mailbox_pattern(pattern, name, "/") is expected


def test_pattern_without_delimiter() -> None:
    assert match_mailbox_pattern("%", "a/b", None)


def _reference(pattern: str, name: str, delim: str) -> bool:
    rx = "".join(".*" if ch == "*" else f"[^{re.escape(delim)}]*" if ch == "%" else re.escape(ch)
                 for ch in pattern)
    return re.fullmatch(rx, name, re.S) is not None


@given(st.text("ab/*%", max_size=8), st.text("ab/", max_size=10))
def test_pattern_matches_reference(pattern: str, name: str) -> None:
    assert match_mailbox_pattern(pattern, name, "/") == _reference(pattern, name, "/")


def test_imap09_pathological_pattern_is_linear() -> None:
    pattern = "*%*%*%*%*%*%*%*%*%*%*%*%*%x"
    name = "a/" * 2000 + "b"  # a deep folder name that does not match
    start = time.process_time()
    for _ in range(20):
        assert not match_mailbox_pattern(pattern, name, "/")
    # Backtracking would need astronomically long; a linear matcher needs milliseconds.
    # (A sanity bound, not a timing assertion on the product: 20 × 4 kB names.)
    assert time.process_time() - start < 30
    assert match_mailbox_pattern(pattern, name + "x", "/")


# -- response serialiser -------------------------------------------------------------------------
def parse_value(data: bytes, pos: int = 0) -> tuple[object, int]:
    """A small IMAP client-side value parser (for round trips)."""
    ch = data[pos:pos + 1]
    if ch == b"(":
        out = []
        pos += 1
        while data[pos:pos + 1] != b")":
            if out:
                assert data[pos:pos + 1] == b" "
                pos += 1
            v, pos = parse_value(data, pos)
            out.append(v)
        return out, pos + 1
    if ch == b'"':
        m = re.compile(rb'"((?:[^"\\]|\\.)*)"').match(data, pos)
        assert m
        return re.sub(rb"\\(.)", rb"\1", m.group(1)), m.end()
    m = re.compile(rb"(~?)\{(\d+)\}\r\n").match(data, pos)
    if m:
        n = int(m.group(2))
        return data[m.end():m.end() + n], m.end() + n
    m = re.compile(rb"[^ ()]+").match(data, pos)
    assert m
    tok = m.group()
    if tok == b"NIL":
        return None, m.end()
    if tok.isdigit():
        return int(tok), m.end()
    return ("atom", tok.decode()), m.end()


values = st.recursive(
    st.one_of(st.none(), st.integers(0, 2**63), st.binary(max_size=50),
              st.text(max_size=20).map(lambda s: s.encode())),
    lambda inner: st.lists(inner, max_size=5), max_leaves=30)


@given(values)
def test_serialize_round_trip(value: object) -> None:
    data = R.serialize(value)
    parsed, end = parse_value(data)
    assert end == len(data)
    assert parsed == value


@settings(max_examples=50)
@given(st.binary(max_size=100))
def test_literal8_round_trip(b: bytes) -> None:
    data = R.serialize(R.Literal8(b))
    assert data.startswith(b"~{")
    assert parse_value(data) == (b, len(data))


def test_serialize_choices() -> None:
    assert R.serialize(None) == b"NIL"
    assert R.serialize(42) == b"42"
    assert R.serialize("a b") == b'"a b"'
    assert R.serialize(b'a"b\\') == b'"a\\"b\\\\"'
    assert R.serialize(b"a\r\nb") == b"{4}\r\na\r\nb"
    assert R.serialize("ä") == b"{2}\r\n\xc3\xa4"
    assert R.serialize(b"x" * 2000).startswith(b"{2000}\r\n")
    assert R.serialize(b"\x00") == b"{1}\r\n\x00"
    assert R.serialize([R.Atom("FLAGS"), [R.Atom("\\Seen")], R.Atom("UID"), 4]) == b"(FLAGS (\\Seen) UID 4)"
    assert R.serialize(R.Raw(b"(x)")) == b"(x)"
    assert R.serialize(R.Literal(b"ab")) == b"{2}\r\nab"
    assert R.serialize(R.Quoted("/")) == b'"/"'
    assert R.serialize([]) == b"()"
    for bad in (True, -1, 1.5, object()):
        with pytest.raises((TypeError, ValueError)):
            R.serialize(bad)
    for bad_atom in ("a b", "", "a\r", 'a"', "a{"):
        with pytest.raises(ValueError):
            R.serialize(R.Atom(bad_atom))
    with pytest.raises(ValueError):
        R.serialize(R.Quoted("a\r\n"))


def test_lines() -> None:
    assert R.tagged("a1", "OK", "done", "READ-WRITE") == b"a1 OK [READ-WRITE] done\r\n"
    assert R.tagged("a1", "NO", "bad\r\nb1 OK injected") == b"a1 NO bad  b1 OK injected\r\n"
    assert R.tagged("a", "NO", "x", "TRY]CREATE") == b"a NO [TRYCREATE] x\r\n"
    assert R.untagged_status("OK", "hi", "UIDVALIDITY 3") == b"* OK [UIDVALIDITY 3] hi\r\n"
    assert R.untagged(3, R.Atom("EXISTS")) == b"* 3 EXISTS\r\n"
    assert R.untagged(R.Atom("LIST"), [R.Atom("\\HasNoChildren")], R.Quoted("/"),
                      R.Raw(R.mailbox("Entwürfe"))) == b'* LIST (\\HasNoChildren) "/" "Entw&APw-rfe"\r\n'
    assert R.mailbox("Entwürfe", utf8=True) == b"{9}\r\nEntw\xc3\xbcrfe"
    assert R.untagged_raw("5 FETCH (FLAGS ())") == b"* 5 FETCH (FLAGS ())\r\n"
    assert R.continuation() == b"+ \r\n"
    assert R.continuation("idling") == b"+ idling\r\n"
    assert R.tagged("a", "OK", "") == b"a OK .\r\n"
    assert len(R.tagged("a", "BAD", "x" * 5000)) < 1100


def test_internaldate() -> None:
    pst = timezone(timedelta(hours=-7))
    assert R.format_internaldate(datetime(1996, 7, 17, 2, 44, 25, tzinfo=pst)) == b'"17-Jul-1996 02:44:25 -0700"'
    assert R.format_internaldate(datetime(2001, 1, 2, 3, 4, 5)) == b'"02-Jan-2001 03:04:05 +0000"'
    ist = timezone(timedelta(hours=5, minutes=30))
    assert R.format_internaldate(datetime(2001, 1, 2, 3, 4, 5, tzinfo=ist)).endswith(b'+0530"')
