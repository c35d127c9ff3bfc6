"""merpati.core.address: the envelope address grammar (RFC 5321 §4.1.2, RFC 6531 §3.3)."""

from __future__ import annotations

from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from merpati.core.address import (
    Address,
    AddressError,
    AddressUtf8Error,
    parse_address,
    parse_domain,
    parse_path,
)
from merpati.wire.smtp import DEFAULT_EXTENSIONS, SmtpLimits, SmtpReplyError, commands
from merpati.wire.smtp.commands import parse_mail, parse_rcpt


@pytest.mark.parametrize(
    ("text", "local", "domain"),
    [
        ("user@example.org", "user", "example.org"),
        ("User.Name@EXAMPLE.Org", "User.Name", "example.org"),  # local case kept, domain lowered
        ("a+tag@x.example", "a+tag", "x.example"),
        ("!#$%&'*+/=?^_`{|}~-@x.example", "!#$%&'*+/=?^_`{|}~-", "x.example"),
        ('"abc"@x.example', "abc", "x.example"),  # quoted but needless → unquoted
        ('"a b"@x.example', '"a b"', "x.example"),
        ('"a\\"b"@x.example', '"a\\"b"', "x.example"),
        ('"a\\b"@x.example', "ab", "x.example"),  # quoted-pair of an ordinary char
        ('"a@b"@x.example', '"a@b"', "x.example"),
        ('""@x.example', '""', "x.example"),  # SMTP-19: empty quoted local part is grammar
        ("u@[192.0.2.1]", "u", "[192.0.2.1]"),
        ("u@[IPv6:2001:DB8::1]", "u", "[IPv6:2001:db8::1]"),
        ("u@[ipv6:0:0:0:0:0:0:0:1]", "u", "[IPv6:::1]"),
        ("u@xn--bcher-kva.example", "u", "xn--bcher-kva.example"),
        ("u@1.example", "u", "1.example"),
    ],
)
def test_parse_address_valid(text: str, local: str, domain: str) -> None:
    address = parse_address(text, allow_utf8=False)
    assert address == Address(local, domain)
    assert address.is_quoted == local.startswith('"')


@pytest.mark.parametrize(
    "text",
    [
        "",
        "user",
        "@example.org",
        "user@",
        "user@@example.org",
        "a@b@c.example",
        ".user@x.example",
        "user.@x.example",
        "us..er@x.example",
        "us er@x.example",
        'u"ser@domain.tld',  # SMTP-18
        '"unterminated@x.example',
        '"a"b@x.example',
        "user@-x.example",
        "user@x-.example",
        "user@x..example",
        "user@x.example.",
        "user@x_y.example",
        "user@[300.1.1.1]",
        "user@[01.2.3.4]",
        "user@[IPv6:fe80::1%eth0]",
        "user@[IPv6:zz::1]",
        "user@[tag:whatever]",
        "user@[1.2.3.4",
        "alice@example.org)<bob@example.org>",  # SMTP-34
        "alice@example.org,bob@example.org",
        "a\x00b@x.example",
        "a\rb@x.example",  # SMTP-32
        "a\\b@x.example",
        "/@)$@)BLAARGH!@#$$",
        "x" * 65 + "@x.example",
        "u@" + ("a" * 63 + ".") * 4 + "example",
    ],
)
def test_parse_address_invalid(text: str) -> None:
    with pytest.raises(AddressError):
        parse_address(text, allow_utf8=True)


def test_local_part_limit_is_octets_and_configurable() -> None:
    assert parse_address("x" * 64 + "@x.example", allow_utf8=False).local_part == "x" * 64
    with pytest.raises(AddressError, match="local part too long"):
        parse_address("é" * 33 + "@x.example", allow_utf8=True)  # 66 octets
    assert parse_address("x" * 100 + "@x.example", allow_utf8=False, max_local_part=200)


def test_utf8_needs_permission() -> None:
    with pytest.raises(AddressUtf8Error):
        parse_address("föä@öä.example", allow_utf8=False)
    with pytest.raises(AddressUtf8Error):
        parse_address("user@öä.example", allow_utf8=False)
    address = parse_address("Föä@ÖÄ.example", allow_utf8=True)
    assert address == Address("Föä", "öä.example")
    assert not address.is_ascii


@pytest.mark.parametrize("text", ["a@x\u2028y.example", "a\u200b\u0085@x.example", "a@x\u00a0.example", "a@x!.example"])
def test_utf8_rejects_non_printable_and_symbols(text: str) -> None:
    with pytest.raises(AddressError):
        parse_address(text, allow_utf8=True)


def test_idn_one_mode_no_transitional_mapping() -> None:
    # SMTP-30 (d): ß and ς are kept (no IDNA2003 transitional mapping), NFC applied
    assert parse_domain("straße.example", allow_utf8=True) == "straße.example"
    assert parse_domain("ς.example", allow_utf8=True) == "ς.example"
    assert parse_domain("e\u0301.example", allow_utf8=True) == "\u00e9.example"


def test_str_and_helpers() -> None:
    address = parse_address("User+tag+more@Example.ORG", allow_utf8=False)
    assert str(address) == "User+tag+more@example.org"
    assert address.localpart_base() == "User"
    assert address.localpart_base("-") == "User+tag+more"
    assert parse_address("+x@a.example", allow_utf8=False).localpart_base() == "+x"
    quoted = parse_address('"a+b c"@a.example', allow_utf8=False)
    assert quoted.localpart_base() == '"a+b c"'
    assert quoted.local_value == "a+b c"
    assert str(Address("Postmaster", "")) == "Postmaster"
    assert parse_address("u@[192.0.2.1]", allow_utf8=False).is_address_literal


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<user@x.example>", Address("user", "x.example")),
        ("<@a.example,@b.example:user@d.example>", Address("user", "d.example")),  # SMTP-29
        ("<@a.example:user@d.example>", Address("user", "d.example")),
        ('<"a>b"@x.example>', Address('"a>b"', "x.example")),
    ],
)
def test_parse_path(text: str, expected: Address) -> None:
    assert parse_path(text, allow_utf8=False, allow_null=False) == expected


@pytest.mark.parametrize(
    "text",
    [
        "user@x.example",
        "<user@x.example",
        "<@a.example user@d.example>",
        "<@a.example,b.example:user@d.example>",
        "<@:user@d.example>",
        "<@a_b.example:user@d.example>",
        "<@a.example,@b.example>",
        "<x" + "a" * 250 + "@x.example>",  # path over 256 octets
    ],
)
def test_parse_path_invalid(text: str) -> None:
    with pytest.raises(AddressError):
        parse_path(text, allow_utf8=False, allow_null=True)


def test_null_path() -> None:
    assert parse_path("<>", allow_utf8=False, allow_null=True) is None
    with pytest.raises(AddressError):
        parse_path("<>", allow_utf8=False, allow_null=False)


_ATEXT = st.sampled_from(list("abcXYZ019!#$%&'*+/=?^_`{|}~-"))
_ATOM = st.text(_ATEXT, min_size=1, max_size=8)
_LABEL = st.text(st.sampled_from(list("abz09")), min_size=1, max_size=8)


@given(st.lists(_ATOM, min_size=1, max_size=4), st.lists(_LABEL, min_size=1, max_size=4))
def test_roundtrip_dot_string(atoms: list[str], labels: list[str]) -> None:
    text = ".".join(atoms)[:64].strip(".")
    if not text or ".." in text:
        return
    address = parse_address(f"{text}@{'.'.join(labels)}", allow_utf8=False)
    assert parse_address(str(address), allow_utf8=False) == address


@given(st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=30))
def test_roundtrip_quoted(value: str) -> None:
    quoted = '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    try:
        address = parse_address(quoted + "@x.example", allow_utf8=False)
    except AddressError as err:
        assert "too long" in str(err)
        return
    assert address.local_value == value
    assert parse_address(str(address), allow_utf8=False) == address  # normal form is stable


@given(st.text(max_size=40))
def test_never_crashes(text: str) -> None:
    for utf8 in (False, True):
        try:
            address = parse_address(text, allow_utf8=utf8)
        except AddressError:
            continue
        assert parse_address(str(address), allow_utf8=utf8) == address


# --- the MAIL/RCPT fast path must agree with the full grammar ---------------------------
_MIXED_LABEL = st.text(st.sampled_from(list("aZ9-")), min_size=1, max_size=8)
_PATH_CHARS = st.sampled_from(list("aZ9.-_+@<>\"\\[]:, ") + ["é", "x" * 60, "y." * 40, "SIZE=1"])


def _outcome(parse: object, *args: object, **kw: object) -> object:
    try:
        return parse(*args, **kw)  # type: ignore[operator]
    except SmtpReplyError as err:
        return err.reply


@settings(max_examples=400, deadline=None)
@given(
    body=st.one_of(
        st.lists(_PATH_CHARS, max_size=12).map("".join),
        st.tuples(st.lists(_ATOM, min_size=1, max_size=3), st.lists(_MIXED_LABEL, min_size=1, max_size=4)).map(
            lambda t: ".".join(t[0]) + "@" + ".".join(t[1])
        ),
    ),
    wrap=st.sampled_from(["<{}>", "<{}> ", "<{}>x", "{}", "<{}> SIZE=10", "<<{}>>"]),
    limits=st.sampled_from([SmtpLimits(), SmtpLimits(max_local_part=3, max_domain=8, max_path=12)]),
)
def test_plain_path_fast_path_matches_full_parser(body: str, wrap: str, limits: SmtpLimits) -> None:
    _check_fast_path(wrap.format(body).encode(), limits)


def test_plain_path_fast_path_length_limits() -> None:
    # each limit alone, then together: the fast path may only ever be stricter (it falls back)
    for limits in (SmtpLimits(max_local_part=3), SmtpLimits(max_domain=8), SmtpLimits(max_path=12),
                   SmtpLimits(max_local_part=3, max_domain=8, max_path=12)):
        for local in range(1, 6):
            for domain in range(1, 11):
                _check_fast_path(b"<" + b"a" * local + b"@" + b"B" * domain + b">", limits)


def _check_fast_path(path: bytes, limits: SmtpLimits) -> None:
    mail = (b"FROM:" + path, dict(offered=DEFAULT_EXTENSIONS, auth_offered=False, limits=limits))
    rcpt = (b"TO:" + path, dict(offered=DEFAULT_EXTENSIONS, smtputf8=False, limits=limits))
    fast = (_outcome(parse_mail, mail[0], **mail[1]), _outcome(parse_rcpt, rcpt[0], **rcpt[1]))
    with mock.patch.object(commands, "_plain_path", lambda *args: None):
        full = (_outcome(parse_mail, mail[0], **mail[1]), _outcome(parse_rcpt, rcpt[0], **rcpt[1]))
    assert fast == full, path
