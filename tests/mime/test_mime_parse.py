"""merpati.mime: corpus, RFC examples, sections, headers, decoding, preview."""

from __future__ import annotations

import base64
from datetime import datetime, timedelta, timezone

import pytest
from mime_testutil import CRAFTED, corpus_files, parse_imap

from merpati.mime import MimeLimits, ParsedMessage, decode_words, parse_message, render_imap
from merpati.mime.text import decode_base64, decode_cte, decode_qp


def crlf(s: str | bytes) -> bytes:
    b = s.encode("utf-8") if isinstance(s, str) else s
    return b.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


# -- corpus ---------------------------------------------------------------------------

def test_corpus_is_found() -> None:
    files = corpus_files()  # raises with a clear message when missing, never skips
    assert len(files) >= 40


@pytest.mark.parametrize("path", corpus_files(), ids=lambda p: p.name)
def test_corpus_parses_and_round_trips(path) -> None:
    for data in (path.read_bytes(), crlf(path.read_bytes())):
        pm = parse_message(data)
        assert pm.size == len(data)
        s = pm.to_json()
        back = ParsedMessage.from_json(s)
        assert back == pm and back.to_json() == s
        # every view works from the stored form alone
        assert parse_imap(render_imap(back.envelope())) == back.envelope()
        assert parse_imap(render_imap(back.bodystructure())) == back.bodystructure()
        render_imap(back.bodystructure(False))
        assert back.section(data, "") == data
        assert back.section(data, "HEADER") + back.section(data, "TEXT") == data
        for p in back.parts:
            assert 0 <= p["h"] <= p["b"] <= p["e"] <= len(data)


@pytest.mark.parametrize("path", sorted(CRAFTED.glob("*.eml")), ids=lambda p: p.name)
def test_crafted_round_trip(path) -> None:
    data = path.read_bytes()
    pm = parse_message(data)
    assert ParsedMessage.from_json(pm.to_json()) == pm


# -- RFC 3501 §7.4.2 examples ---------------------------------------------------------

def test_rfc3501_envelope_example() -> None:
    data = (CRAFTED / "rfc3501_example.eml").read_bytes()
    env = render_imap(parse_message(data).envelope())
    assert env == (
        b'("Wed, 17 Jul 1996 02:23:25 -0700 (PDT)" "IMAP4rev1 WG mtg summary and minutes" '
        b'(("Terry Gray" NIL "gray" "cac.washington.edu")) (("Terry Gray" NIL "gray" "cac.washington.edu")) '
        b'(("Terry Gray" NIL "gray" "cac.washington.edu")) ((NIL NIL "imap" "cac.washington.edu")) '
        b'((NIL NIL "minutes" "CNRI.Reston.VA.US")("John Klensin" NIL "KLENSIN" "MIT.EDU")) NIL NIL '
        b'"<B27397-0100000@cac.washington.edu>")'
    )


def _body(size: int, lines: int) -> bytes:
    """A body of exactly ``size`` octets holding ``lines`` LFs (last line unterminated)."""
    per = (size - 2 * lines) // (lines + 1)
    text = b"\r\n".join([b"x" * per] * (lines + 1))
    return text + b"y" * (size - len(text))


def test_rfc3501_bodystructure_example() -> None:
    p1, p2 = _body(1152, 23), _body(4554, 73)
    data = (b"MIME-Version: 1.0\r\nContent-Type: MULTIPART/MIXED; BOUNDARY=\"b\"\r\n\r\n--b\r\n"
            b"Content-Type: TEXT/PLAIN; CHARSET=US-ASCII\r\nContent-Transfer-Encoding: 7BIT\r\n\r\n" + p1 +
            b"\r\n--b\r\nContent-Type: TEXT/PLAIN; CHARSET=US-ASCII; NAME=cc.diff\r\n"
            b"Content-ID: <960723163407.20117h@cac.washington.edu>\r\nContent-Description: Compiler diff\r\n"
            b"Content-Transfer-Encoding: BASE64\r\n\r\n" + p2 + b"\r\n--b--\r\n")
    pm = parse_message(data)
    assert render_imap(pm.bodystructure(extended=False)) == (
        b'(("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 1152 23)("TEXT" "PLAIN" '
        b'("CHARSET" "US-ASCII" "NAME" "cc.diff") "<960723163407.20117h@cac.washington.edu>" '
        b'"Compiler diff" "BASE64" 4554 73) "MIXED")'
    )
    ext = render_imap(pm.bodystructure())
    assert ext.endswith(b' "MIXED" ("BOUNDARY" "b") NIL NIL NIL)')


def test_message_rfc822_structure_and_lines() -> None:
    data = (CRAFTED / "nested_rfc822.eml").read_bytes()
    pm = parse_message(data)
    bs = pm.bodystructure()
    assert bs[-5] == b"mixed"
    msg = bs[1]
    assert msg[:2] == [b"message", b"rfc822"]
    env, inner, lines = msg[7], msg[8], msg[9]
    assert env[1] == b"inner"
    assert env[6] == [[None, None, b"grp", None], [None, None, b"x", b"y.z"], [None, None, b"w", b"y.z"],
                      [None, None, None, None], [b"Other Person", None, b"other", b"example.net"]]
    assert inner[-5] == b"alternative" and len(inner) == 2 + 5
    body = pm.section(data, "2")
    assert lines == body.count(b"\n") and msg[6] == len(body)
    att = bs[2]
    assert att[:3] == [b"application", b"octet-stream", [b"name", b"f.bin"]]
    assert att[7:] == [b"Q2hlY2sgSW50ZWdyaXR5IQ==", [b"attachment", [b"filename*", b"utf-8''%E2%82%AC.bin"]],
                       [b"en", b"de"], b"http://example.com/f.bin"]
    assert pm.filenames() == ["€.bin"]


def test_lines_follow_dovecot() -> None:
    # number of LF in the body; a final unterminated line is not counted (Dovecot 2.3)
    for body, lines in [(b"hello", 0), (b"hello\r\n", 1), (b"a\r\nb", 1), (b"", 0), (b"a\nb\n", 2)]:
        bs = parse_message(b"Subject: x\r\n\r\n" + body).bodystructure(False)
        assert bs[6:] == [len(body), lines]


def test_defaults() -> None:
    bs = parse_message(b"Subject: x\r\n\r\nhi").bodystructure()
    assert bs == [b"text", b"plain", [b"charset", b"us-ascii"], None, None, b"7bit", 2, 0,
                  None, None, None, None]
    data = (CRAFTED / "digest.eml").read_bytes()
    bs = parse_message(data).bodystructure(False)
    assert bs[0][:3] == [b"message", b"rfc822", None] and bs[0][7][1] == b"one"
    assert bs[1][:2] == [b"text", b"plain"]
    assert bs[2][7][1] == b"two" and bs[3] == b"digest"
    # a text type without a charset parameter gets the default appended
    bs = parse_message(b"Content-Type: text/html; format=x\r\n\r\n").bodystructure(False)
    assert bs[2] == [b"format", b"x", b"charset", b"us-ascii"]


def test_multipart_without_parts_gets_empty_text_part() -> None:
    data = (CRAFTED / "multipart_no_boundary.eml").read_bytes()
    bs = parse_message(data).bodystructure()
    assert render_imap(bs) == (b'(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0 NIL NIL NIL NIL)'
                               b' "mixed" NIL NIL NIL NIL)')


def test_global_is_structured_like_rfc822() -> None:
    data = crlf("Content-Type: message/global\n\nSubject: g\nFrom: ü@ex.test\n\nbody\n")
    bs = parse_message(data).bodystructure(False)
    assert bs[:2] == [b"message", b"global"] and bs[7][1] == b"g" and bs[9] == 4


# -- sections -----------------------------------------------------------------------

NESTED = crlf("""\
From: a@example.com
Subject: nest
Content-Type: multipart/mixed; boundary=o

--o
Content-Type: text/plain

one
--o
Content-Type: message/rfc822

Subject: inner
Content-Type: multipart/alternative; boundary=i

--i
Content-Type: text/plain

two-a
--i
Content-Type: text/html

<b>two-b</b>
--i--
--o
Content-Type: message/rfc822

Subject: single

three
--o--
""")


@pytest.mark.parametrize("spec,expected", [
    ("1", b"one"),
    ("1.MIME", b"Content-Type: text/plain\r\n\r\n"),
    ("2.HEADER", b"Subject: inner\r\nContent-Type: multipart/alternative; boundary=i\r\n\r\n"),
    ("2.MIME", b"Content-Type: message/rfc822\r\n\r\n"),
    ("2.1", b"two-a"),
    ("2.2", b"<b>two-b</b>"),
    ("2.2.MIME", b"Content-Type: text/html\r\n\r\n"),
    ("2.HEADER.FIELDS (subject)", b"Subject: inner\r\n\r\n"),
    ("2.HEADER.FIELDS.NOT (SUBJECT)", b"Content-Type: multipart/alternative; boundary=i\r\n\r\n"),
    ("3.TEXT", b"three"),
    ("3.1", b"three"),
    ("3.HEADER", b"Subject: single\r\n\r\n"),
    ("HEADER.FIELDS (FROM X-NONE)", b"From: a@example.com\r\n\r\n"),
    ("TEXT<0.4>", b"--o\r"),
    ("1<1.1>", b"n"),
    # like Dovecot, a non-multipart part is its own part 1 ("1.1" == "1")
    ("1.1", b"one"), ("2.1.1", b"two-a"),
    ("4", None), ("1.2", None), ("1.TEXT", None), ("2.3", None), ("3.2", None), ("0", None),
    ("1.1.HEADER", None), ("bogus", None), ("1MIME", None),
])
def test_sections(spec: str, expected: bytes | None) -> None:
    pm = ParsedMessage.from_json(parse_message(NESTED).to_json())
    assert pm.section(NESTED, spec) == expected


def test_section_of_whole_and_single_part() -> None:
    data = b"Subject: s\r\n\r\nbody"
    pm = parse_message(data)
    assert pm.section(data, "") == data
    assert pm.section(data, "1") == b"body"
    assert pm.section(data, "1.MIME") == b"Subject: s\r\n\r\n"
    assert pm.section(data, "2") is None
    assert pm.section(data, "", partial=(2, 3)) == b"bje"


def test_binary() -> None:
    payload = bytes(range(256))
    data = crlf("Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Transfer-Encoding: base64\n\n"
                ).replace(b"", b"") + base64.encodebytes(payload).replace(b"\n", b"\r\n") + crlf(
        "--b\nContent-Transfer-Encoding: quoted-printable\n\ncaf=C3=A9 =\nsoft\n--b\n"
        "Content-Transfer-Encoding: x-uuencode\n\nbegin\n--b--\n")
    pm = parse_message(data)
    assert pm.binary(data, "1") == payload
    assert pm.binary(data, "2") == "café soft".encode()
    assert pm.binary(data, "3") is None
    assert pm.binary(data, "4") is None and not pm.part_exists("4") and pm.part_exists("3")


# -- headers ----------------------------------------------------------------------------

def test_header_lookup_and_folding() -> None:
    data = crlf("Received: from a\n\tby b\nReceived: from c\nX-Folded: one\n  two\n\tthree\n"
                "subject : spaced name\nNo colon line\nTo: x@y\n\nbody")
    pm = parse_message(data)
    assert pm.received_count == 2
    assert pm.header_fields("received") == ["from a by b", "from c"]
    assert pm.header_fields("X-FOLDED") == ["one  two three"]
    assert pm.header_fields("Subject") == ["spaced name"]
    assert pm.header_fields("missing") == []
    assert pm.section(data, "HEADER.FIELDS (x-folded)") == b"X-Folded: one\r\n  two\r\n\tthree\r\n\r\n"


def test_bare_lf_and_mixed_line_ends() -> None:
    data = b"Subject: lf\nContent-Type: multipart/mixed; boundary=z\n\npre\n--z\r\n\nA\n--z\nContent-Type: text/html\n\nB\r\n--z--\n"
    pm = parse_message(data)
    assert pm.section(data, "1") == b"A" and pm.section(data, "2") == b"B"
    assert pm.subject == "lf"


def test_convenience_properties() -> None:
    data = crlf("From: =?utf-8?q?J=C3=B6rg?= <jorg@example.com>\nTo: a@b.c, \"B\" <b@c.d>\n"
                "Subject: =?iso-8859-1?q?caf=E9?= =?utf-8?b?w6k=?= end\n"
                "Message-ID:  <id@x>  \nIn-Reply-To: <p@x>\nReferences: <a@x>\n <b@x>\n"
                "Date: Tue, 1 Jul 2003 10:52:37 +0200\n\nhi")
    pm = parse_message(data)
    assert pm.subject == "caféé end"
    assert pm.from_ == "Jörg <jorg@example.com>"
    assert pm.addresses("from") == [("Jörg", "jorg@example.com")]
    assert pm.addresses("to") == [("", "a@b.c"), ("B", "b@c.d")]
    assert pm.message_id == "<id@x>" and pm.in_reply_to == "<p@x>"
    assert pm.references == ["<a@x>", "<b@x>"]
    assert pm.date == datetime(2003, 7, 1, 10, 52, 37, tzinfo=timezone(timedelta(hours=2)))
    assert parse_message(b"Date: garbage\r\n\r\n").date is None
    assert parse_message(b"\r\n").subject is None


# -- decoders ----------------------------------------------------------------------------

@pytest.mark.parametrize("raw,expected", [
    ("=?utf-8?q?a_b?=", "a b"),
    ("=?UTF-8?B?w6k=?=", "é"),
    ("=?utf-8?q?a?= =?utf-8?q?b?=", "ab"),                 # whitespace between words dropped
    ("=?utf-8?b?4oI=?= =?utf-8?b?rA==?=", "€"),           # split multi-byte char
    ("x =?utf-8?q?a?= y", "x a y"),
    ("=?utf-8*en?q?lang?=", "lang"),                      # RFC 2231 §5 language
    ("=?bogus-charset?q?a=FF?=", "a\ufffd"),              # unknown charset → replacement
    ("=?utf-8?x?abc?=", "=?utf-8?x?abc?="),               # malformed stays as is
    ("=?utf-8?q?unterminated", "=?utf-8?q?unterminated"),
    ("=?utf-8?b?!!!?=", ""),
    ("=?zlib?q?x?=", "x"), ("=?idna?q?=FF?=", "\ufffd"),  # non-text codecs never raise
])
def test_rfc2047(raw: str, expected: str) -> None:
    assert decode_words(raw) == expected


def test_rfc2231_params() -> None:
    data = (CRAFTED / "rfc2231.eml").read_bytes()
    pm = parse_message(data)
    bs = pm.bodystructure()
    assert bs[0][2] == [b"title*", b"us-ascii'en'This%20is%20even%20more%20%2A%2A%2Afun%2A%2A%2A%20isn't it!"]
    assert bs[1][2] == [b"charset", b"ISO-8859-1", b"name", b"longname.txt"]
    assert pm.filenames() == ["a b.txt", "longname.txt"]


def test_param_count_is_bounded() -> None:
    params = "".join(f"; p{i}=v" for i in range(500))
    pm = parse_message(f"Content-Type: text/plain{params}\r\n\r\n".encode())
    assert len(pm.parts[0]["p"]) == MimeLimits().max_params


@pytest.mark.parametrize("data", [b"", b"=", b"A", b"AB=C", b"****", b"QQ==QQ==", b"\x00\xff", b"Q Q\r\nQ="])
def test_base64_never_raises(data: bytes) -> None:
    assert isinstance(decode_base64(data), bytes)
    assert isinstance(decode_cte(data, "BASE64"), bytes)


@pytest.mark.parametrize("data", [b"=", b"=Z", b"=\r\n", b"=4", b"a=\nb", b"=FF=fg\x00"])
def test_qp_never_raises(data: bytes) -> None:
    assert isinstance(decode_qp(data), bytes)


# -- preview -----------------------------------------------------------------------------

def test_preview_plain_qp_charset() -> None:
    data = (CRAFTED / "nested_rfc822.eml").read_bytes()
    assert parse_message(data).preview == "Hello é world soft break"


def test_preview_html_only() -> None:
    data = (CRAFTED / "text_html_only.eml").read_bytes()
    assert parse_message(data).preview == "Hello world & friends"


def test_preview_base64_latin1_and_length() -> None:
    text = ("Grüße " * 100).encode("iso-8859-1")
    data = (b"Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: base64\r\n\r\n"
            + base64.encodebytes(text).replace(b"\n", b"\r\n"))
    pv = parse_message(data).preview
    assert pv.startswith("Grüße Grüße") and len(pv) == 200


def test_preview_skips_attachments() -> None:
    data = crlf("Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n"
                "Content-Disposition: attachment\n\nattached\n--b\nContent-Type: text/plain\n\n  real\n\n text \n--b--\n")
    assert parse_message(data).preview == "real text"


# -- render_imap ---------------------------------------------------------------------------

def test_render_imap() -> None:
    assert render_imap(None) == b"NIL"
    assert render_imap([b"a", 1, None, []]) == b'("a" 1 NIL ())'
    assert render_imap(b'say "hi"') == b'"say \\"hi\\""'
    assert render_imap(b"line\r\nbreak") == b"{11}\r\nline\r\nbreak"
    assert render_imap("é".encode()) == b"{2}\r\n\xc3\xa9"
    assert render_imap(b"x" * 2000).startswith(b"{2000}\r\n")
    assert render_imap([[b"a"], [b"b"], b"sub", [b"p"], [b"d"]]) == b'(("a")("b") "sub" ("p") ("d"))'
    deep: list = []
    cur = deep
    for _ in range(5000):  # no recursion limit
        nxt: list = []
        cur.append(nxt)
        cur = nxt
    assert render_imap(deep) == b"(" * 5001 + b")" * 5001
