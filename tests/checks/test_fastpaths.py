"""Speed-ups in the checks give exactly what the plain code gave."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from merpati.delivery.checks import bayes
from merpati.delivery.checks.greylist import GreylistCheck, client_network
from merpati.delivery.checks.helo import HeloCheck

TEXT = st.lists(
    st.one_of(st.text(max_size=15), st.sampled_from(["don't", "a$b-c", "x_1", "K", "İstanbul", "ǅ", "1abc", " "])),
    max_size=60,
).map(" ".join)


@settings(max_examples=300, deadline=None)
@given(TEXT)
def test_ascii_word_pattern_matches_unicode_one(text: str) -> None:
    lowered = text.lower()
    assert bayes._words(lowered) == bayes._WORD.findall(lowered)


@settings(max_examples=100, deadline=None)
@given(TEXT, st.sampled_from(["", " see http://Example.COM./x and HTTPS://a.b", "http://x"]))
def test_url_hosts_found_as_before(text: str, urls: str) -> None:
    body = (text + urls).encode("utf-8")
    message = b"Subject: hi\r\n\r\n" + body
    found = set(bayes.tokens(message))
    for host in bayes._URL_HOST.findall(body.decode("utf-8")):
        assert bayes._digest("u:" + host.lower().strip(".")) in found


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(max_size=20), st.sampled_from(
    ["1.2.3.4", "01.2.3.4", "::1", "[127.0.0.1]", "fe80::1%eth0", "1.2.3", "12", "deadbeef", "a.b", "1.2.3.4."]
)))
def test_helo_judge_same_for_any_name(name: str) -> None:
    import ipaddress

    check = HeloCheck()
    got = check.judge(name, client_ip="127.0.0.1", ours="mx.test")
    try:
        ipaddress.ip_address(name.strip())
        is_ip = not name.strip().startswith("[")
    except ValueError:
        is_ip = False
    if is_ip:
        assert got is not None and "bare IP" in got.reason


def test_greylist_network_memo_matches_function() -> None:
    check = GreylistCheck(store=None, delay=0)  # type: ignore[arg-type]
    for ip in ["127.0.0.1", "10.1.2.3", "2001:db8::1", "bogus", "127.0.0.1"]:
        assert check._network(ip) == client_network(ip)


def _tokens_plain(message: bytes, parsed) -> list[int]:  # type: ignore[no-untyped-def]
    """tokens() as it was written before its fast paths: one word at a time."""
    found: dict[str, None] = {}
    if parsed is not None:
        for w in bayes._WORD.findall((parsed.subject or "").lower()):
            found["s:" + w] = None
        sender = parsed.from_ or ""
        if "@" in sender:
            found["f:" + sender.rsplit("@", 1)[1].strip(" >").lower()] = None
    for text in bayes._texts(message, parsed):
        for host in bayes._URL_HOST.findall(text):
            found["u:" + host.lower().strip(".")] = None
        for w in bayes._WORD.findall(text.lower()):
            found[w] = None
            if len(found) >= bayes.MAX_TOKENS:
                break
        if len(found) >= bayes.MAX_TOKENS:
            break
    return [bayes._digest(t) for t in found]


@settings(max_examples=60, deadline=None)
@given(TEXT, st.integers(0, 3))
def test_tokens_match_the_plain_version(text: str, parts: int) -> None:
    from merpati.mime import parse_message

    if parts:
        body = "".join(
            f"--b\r\nContent-Type: text/{'html' if i % 2 else 'plain'}; charset=utf-8\r\n\r\n<p>{text} w{i}</p> http://H{i}.test\r\n"
            for i in range(parts)
        ) + "--b--\r\n"
        message = ("Subject: Re: " + text[:40] + "\r\nFrom: A <a@Example.ORG>\r\n"
                   "Content-Type: multipart/alternative; boundary=b\r\n\r\n" + body).encode("utf-8", "surrogatepass")
    else:
        message = ("Subject: " + text[:40] + "\r\n\r\n" + text).encode("utf-8", "surrogatepass")
    parsed = parse_message(message)
    memo: dict[str, int] = {}
    assert bayes.tokens(message, parsed) == _tokens_plain(message, parsed)
    assert bayes.tokens(message, parsed, memo) == _tokens_plain(message, parsed) == bayes.tokens(message, parsed, memo)


def test_tokens_bound_reached_as_before() -> None:
    from merpati.mime import parse_message

    words = " ".join(f"w{i:05d}x" for i in range(bayes.MAX_TOKENS + 50))
    for head in ("", "Subject: a b c d\r\n"):
        message = (head + "Content-Type: text/plain\r\n\r\n" + words[: len(words) // 2] + "\r\n").encode()
        parsed = parse_message(message)
        assert bayes.tokens(message, parsed) == _tokens_plain(message, parsed)
        message = (head + "\r\n" + words).encode()
        parsed = parse_message(message)
        assert bayes.tokens(message, parsed, {}) == _tokens_plain(message, parsed)
        assert len(bayes.tokens(message, parsed)) == bayes.MAX_TOKENS
