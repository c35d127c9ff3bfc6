"""Pure parts of the search layer: base subject (RFC 5256 §2.1), folding, the query AST's
validation, what gets indexed (search_doc), and the THREAD algorithms (RFC 5256 §2.2/§2.3)."""

from __future__ import annotations

import base64
from datetime import date

import pytest

from merpati.mime import parse_message
from merpati.storage import InvalidInput
from merpati.storage import search as s
from merpati.storage.search_doc import build_search_doc, html_to_text, normalize_msgid
from merpati.storage.threads import ThreadNode, ThreadRow, format_threads, orderedsubject, references

# -- base subject ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "subject, base, reply",
    [
        ("hello", "hello", False),
        ("Re: hello", "hello", True),
        ("RE: Re: re: hello", "hello", True),
        ("Fwd: hello", "hello", True),
        ("Fw: hello", "hello", True),
        ("FWD:hello", "hello", True),
        ("Re : hello", "hello", True),
        ("Re[2]: hello", "hello", True),
        ("Re [2]: hello", "hello", True),
        ("[list] Re: hello", "hello", True),
        ("Re: [list] hello", "hello", True),
        ("[list] hello", "hello", False),
        ("[a] [b] hello", "hello", False),
        ("[PATCH]", "[PATCH]", False),  # removing the blob would leave nothing
        ("[a] [PATCH]", "[PATCH]", False),
        ("hello (fwd)", "hello", True),
        ("hello (FWD) (fwd)  ", "hello", True),
        ("[fwd: hello]", "hello", True),
        ("[Fwd: [fwd: hello]]", "hello", True),
        ("Re: [fwd: hello (fwd)]", "hello", True),
        ("  spaced \t  out  ", "spaced out", False),
        ("Rerun: tests", "Rerun: tests", False),
        ("Ref: x", "Ref: x", False),
        ("re", "re", False),
        ("Re:", "", True),
        ("", "", False),
        (None, "", False),
        ("Grüße Re: x", "Grüße Re: x", False),
        ("AW: hallo", "AW: hallo", False),  # only re/fw/fwd are leaders (RFC 5256)
    ],
)
def test_base_subject(subject, base, reply):
    assert s.base_subject(subject) == (base, reply)


def test_base_subject_is_linear_on_hostile_subjects():
    s.base_subject("(fwd)" * 100_000 + "x")
    s.base_subject("[a]" * 100_000)
    s.base_subject("Re: " * 100_000)


# -- folding -------------------------------------------------------------------------------------------


def test_fold_is_case_insensitive_beyond_ascii():
    assert s.fold("STRASSE") == s.fold("Straße")
    assert s.fold("ÉTÉ") == s.fold("été")
    assert s.fold("ΣΊΣΥΦΟΣ") == s.fold("σίσυφος")
    assert s.fold("ﬁle") == "file"  # compatibility ligature
    assert s.fold("a\r\nb\rc") == "a\nb\nc"
    assert s.fold("a\x00b") == "a\ufffdb"


def test_sort_fold_is_ascii_casemap_for_ascii():
    assert s.sort_fold("abc_") == "ABC_"
    assert s.sort_fold("ab") < s.sort_fold("a_")  # "_" sorts after letters when they are upper-cased
    assert s.sort_fold("émile") == s.sort_fold("Émile")


# -- AST --------------------------------------------------------------------------------------------------


def test_uidset_normalises():
    u = s.UidSet.of(5, (9, 7), (1, 2), 3, (0, 0), (2**40, 2**41))
    assert u.ranges == ((1, 3), (5, 5), (7, 9))
    assert 8 in u and 4 not in u and 10 not in u
    with pytest.raises(InvalidInput):
        s.UidSet.of(-1)
    with pytest.raises(InvalidInput):
        s.UidSet("1:3")


def test_and_or_accept_lists():
    assert s.And([s.All(), s.Body("x")], s.Text("y")).items == (s.All(), s.Body("x"), s.Text("y"))
    assert s.Or().items == ()


def test_validate_bounds_and_types():
    s.validate(s.And(s.Not(s.Or(s.Body("x"), s.FlagIs("\\Seen"))), s.InternalDate(s.DateOp.ON, date(2024, 1, 1))))
    deep: s.Query = s.All()
    for _ in range(s.MAX_DEPTH + 1):
        deep = s.Not(deep)
    with pytest.raises(InvalidInput):
        s.validate(deep)
    with pytest.raises(InvalidInput):
        s.validate(s.Or([s.All()] * (s.MAX_NODES + 1)))
    s.validate(s.Or([s.Body("x")] * s.MAX_TEXT_KEYS + [s.Body("")] * 100))
    with pytest.raises(InvalidInput):
        s.validate(s.Or([s.Text("x")] * (s.MAX_TEXT_KEYS + 1)))
    for bad in (s.FlagIs("\\Recent"), s.Body("x" * (s.MAX_STRING + 1)), s.Size(s.SizeOp.LARGER, -1),
                s.Header("", "x"), s.Body(b"x"), "ALL", s.ModSeq(True)):  # type: ignore[arg-type]
        with pytest.raises(InvalidInput):
            s.validate(bad)  # type: ignore[arg-type]


def test_sort_key_parse():
    assert s.SortKey.parse("reverse date SUBJECT") == [
        s.SortKey(s.SortField.DATE, True), s.SortKey(s.SortField.SUBJECT, False)
    ]
    for bad in ("", "REVERSE", "DATE REVERSE", "BOGUS"):
        with pytest.raises(InvalidInput):
            s.SortKey.parse(bad)


# -- what gets indexed --------------------------------------------------------------------------------------


def _doc(data: bytes):
    return build_search_doc(data, parse_message(data))


def test_doc_decodes_headers_and_bodies():
    body = base64.encodebytes("Überweisung bestätigt".encode()).replace(b"\n", b"\r\n")
    data = (
        b"From: =?ISO-8859-1?Q?Andr=E9?= <andre@example.org>\r\n"
        b"To: \"Zo\xc3\xab\" <zoe@example.com>, bob@example.com\r\n"
        b"Subject: =?UTF-8?B?R3LDvMOfZSBhdXMgS8O2bG4=?=\r\n"
        b"Date: Wed, 01 May 2024 23:30:00 -0700\r\n"
        b"Message-ID: <\"quoted id\"@Example.ORG>\r\n"
        b"References: <a@x> junk <b@X>\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=BB\r\n\r\n"
        b"--BB\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n" + body +
        b"--BB\r\nContent-Type: text/html; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
        b"<html><style>p{}</style><p>Ol=E9 <b>se=F1or</b></p></html>\r\n"
        b"--BB\r\nContent-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\niVBORw0KGgoSECRETPIXELS\r\n"
        b"--BB\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner subject\r\nFrom: x@y\r\n\r\ninner body\r\n"
        b"--BB--\r\n"
    )
    doc = _doc(data)
    assert "überweisung bestätigt" in doc.body
    assert "olé señor" in doc.body and "p{}" not in doc.body and "<b>" not in doc.body
    assert "secretpixels" not in doc.body  # non-text parts are not indexed
    assert "inner subject" in doc.body and "inner body" in doc.body
    fields = dict(doc.fields)
    assert fields["subject"] == "grüsse aus köln"  # decoded, then folded (ß → ss)
    assert "andré" in fields["from"]
    assert "subject: grüsse aus köln\n" in doc.headers
    assert doc.subject_key == s.sort_fold("Grüße aus Köln")
    assert (doc.from_key, doc.to_key, doc.cc_key) == ("ANDRE", "ZOE", "")
    assert doc.display_from_key == s.sort_fold("André") and doc.display_to_key == s.sort_fold("Zoë")
    assert doc.sent_day == (date(2024, 5, 1) - date(1970, 1, 1)).days  # its own date, not UTC's 2 May
    assert doc.message_id == "quotedid@example.org"
    assert doc.refs == ("a@x", "b@x")


def test_doc_limits_and_fallbacks():
    big = b"Subject: big\r\n\r\n" + b"abcdefghij" * 300_000
    doc = _doc(big)
    assert len(doc.body) <= 1 << 20
    bare = _doc(b"no header at all")
    assert bare.sent_us is None and bare.message_id is None and bare.subject_key == ""
    assert _doc(b"In-Reply-To: <p@x> <q@x>\r\n\r\n").refs == ("p@x",)
    assert _doc(b"Date: not a date\r\n\r\n").sent_day is None
    assert _doc(b"From: undisclosed-recipients:;\r\nTo: Group: a@b;\r\n\r\n").to_key == "A"
    # a message the MIME parser refuses still gets a (empty) document instead of an error
    assert build_search_doc(b"Content-Type: multipart/mixed; boundary=a\r\n\r\n" + b"--a\r\n" * 20_000).body == ""


def test_html_to_text_and_msgid():
    assert html_to_text("<p>a<br>b</p><!-- c --><script>d</script>&amp;") == "\na\nb  &"
    assert normalize_msgid(' "a b"@X.org ') == "ab@x.org"
    assert normalize_msgid("nodomain") is None


# -- THREAD -------------------------------------------------------------------------------------------------


def row(uid, sent=None, subject="", reply=False, mid=None, refs=()):
    return ThreadRow(uid, sent if sent is not None else uid, subject, reply, mid, tuple(refs))


def T(uid, *children):  # noqa: N802
    return ThreadNode(uid, list(children))


def test_format_threads():
    forest = [T(2), T(3, T(6, T(4, T(23)), T(44, T(7, T(96)))))]
    assert format_threads(forest) == "(2)(3 6 (4 23)(44 7 96))"
    assert format_threads([T(None, T(1), T(2))]) == "((1)(2))"
    assert format_threads([T(1, T(2), T(3))], {1: 10, 2: 20, 3: 30}) == "(10 (20)(30))"
    assert format_threads([]) == ""


def test_orderedsubject():
    rows = [row(1, 10, "FOO"), row(2, 30, "FOO", True), row(3, 20, "BAR"), row(4, 40, "FOO"), row(5, 5, "BAZ"),
            row(6, 50, "BAZ")]
    assert format_threads(orderedsubject(rows)) == "(5 6)(1 (2)(4))(3)"
    # ties on the sent date fall back to the UID
    assert format_threads(orderedsubject([row(2, 1, "A"), row(1, 1, "A")])) == "(1 2)"


def test_references_chain_and_siblings():
    rows = [row(1, mid="a"), row(2, mid="b", refs=["a"]), row(3, mid="c", refs=["a", "b"]), row(4, mid="d", refs=["a"])]
    assert format_threads(references(rows)) == "(1 (2 3)(4))"


def test_references_missing_parent_dummy():
    assert format_threads(references([row(2, mid="b", refs=["x"]), row(3, mid="c", refs=["x"])])) == "((2)(3))"
    assert format_threads(references([row(2, mid="b", refs=["x"])])) == "(2)"  # one child: promoted
    # a dummy in the middle of a chain is spliced out
    assert format_threads(references([row(1, mid="a"), row(3, mid="c", refs=["a", "x"])])) == "(1 3)"


def test_references_truncated_references_are_corrected():
    # 2 first makes b a child of a (a -> b -> c); then b itself says it answers x: its
    # parent link is broken and made again (1B); x is a lone dummy, so b goes to the top.
    rows = [row(1, mid="a"), row(2, mid="c", refs=["a", "b"]), row(3, mid="b", refs=["x"])]
    assert format_threads(references(rows)) == "(1)(3 2)"
    # an existing parent is kept when a later message's references disagree (1A)
    rows = [row(1, mid="a"), row(2, mid="b", refs=["x"]), row(3, mid="c", refs=["a", "b"])]
    assert format_threads(references(rows)) == "(1)(2 3)"


def test_references_loops_are_not_created():
    assert format_threads(references([row(1, mid="a", refs=["b"]), row(2, mid="b", refs=["a"])])) == "(2 1)"
    assert format_threads(references([row(1, mid="a", refs=["a"])])) == "(1)"


def test_references_duplicate_and_missing_message_ids():
    rows = [row(1, subject="X", mid="same"), row(2, subject="Y", mid="same"), row(3, subject="Z"), row(4, mid="k", refs=["same"])]
    assert format_threads(references(rows)) == "(1 4)(2)(3)"


def test_references_subject_grouping():
    # a reply without references joins the original as its child
    assert format_threads(references([row(1, subject="FOO", mid="a"), row(2, subject="FOO", reply=True, mid="b")])) == "(1 2)"
    # two originals with the same subject get a dummy parent
    assert format_threads(references([row(1, subject="FOO", mid="a"), row(2, subject="FOO", mid="b")])) == "((1)(2))"
    # the original is in the table even when the reply came first
    assert format_threads(references([row(1, 1, "FOO", True, "a"), row(2, 2, "FOO", False, "b")])) == "(2 1)"
    # an empty base subject never groups
    assert format_threads(references([row(1, subject="", mid="a"), row(2, subject="", mid="b")])) == "(1)(2)"
    # a dummy thread with that subject takes the later ones in
    rows = [row(1, 1, "FOO", True, "a", ["x"]), row(2, 2, "FOO", True, "b", ["x"]), row(3, 3, "FOO", False, "c")]
    assert format_threads(references(rows)) == "((1)(2)(3))"


def test_references_sorts_by_sent_date_at_every_level():
    rows = [row(1, 50, mid="a"), row(2, 40, mid="b", refs=["a"]), row(3, 30, mid="c", refs=["a"]), row(4, 10, mid="d")]
    assert format_threads(references(rows)) == "(4)(1 (3)(2))"


def test_threads_deep_chains_do_not_recurse():
    n = 5000
    rows = [row(1, mid="m1")] + [row(i, mid=f"m{i}", refs=[f"m{i - 1}"]) for i in range(2, n + 1)]
    forest = references(rows)
    assert format_threads(forest) == "(" + " ".join(str(i) for i in range(1, n + 1)) + ")"
    assert forest == references(rows)
