"""The result vocabulary: constructors, validation, sanitising."""

from __future__ import annotations

import math

import pytest

from merpati.delivery.checks import Action, accept, add_headers, add_score, quarantine, reject, tempfail
from merpati.delivery.checks.results import normalize, sanitize


def test_constructors() -> None:
    assert reject("no").action is Action.REJECT and reject("no").code == 550 and reject("no").enhanced == "5.7.1"
    assert tempfail().code == 451 and tempfail().enhanced == "4.7.1"
    assert quarantine("x").action is Action.QUARANTINE
    assert accept().action is Action.ACCEPT
    r = add_score(2.5, "bad").with_headers(("X-Test", "1"))
    assert r.score == 2.5 and r.headers == (("X-Test", "1"),) and r.action is Action.NONE


@pytest.mark.parametrize("code", [250, 451, 600, 99])
def test_reject_needs_a_5xx_code(code: int) -> None:
    with pytest.raises(ValueError):
        reject("x", code)


def test_tempfail_needs_a_4xx_code() -> None:
    with pytest.raises(ValueError):
        tempfail("x", 550)


@pytest.mark.parametrize("name", ["", "Bad Name", "X:Y", "a" * 100, "X\r\nInjected"])
def test_bad_header_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError):
        add_headers((name, "v"))


def test_header_values_and_texts_lose_line_breaks() -> None:
    r = add_headers(("X-A", "one\r\nInjected: yes"))
    assert "\r" not in r.headers[0][1] and "\n" not in r.headers[0][1]
    assert sanitize("a\r\nb\x00c") == "a b c"
    assert len(sanitize("x" * 5000)) <= 400


def test_normalize() -> None:
    assert normalize(None, "c") == []
    out = normalize([add_score(1, "a"), None, reject("b")], "c")
    assert [r.check for r in out] == ["c", "c"]
    with pytest.raises(TypeError):
        normalize("reject", "c")
    with pytest.raises(TypeError):
        normalize([1], "c")
    with pytest.raises(ValueError):
        normalize(add_score(math.nan, "nan"), "c")
    with pytest.raises(ValueError):
        normalize(add_score(math.inf, "inf"), "c")
