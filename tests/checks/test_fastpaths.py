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
