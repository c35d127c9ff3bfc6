"""Hostile input: SECURITY-CASES MIME-01..MIME-06 and IMAP-13."""

from __future__ import annotations

import time
import tracemalloc

import pytest

from merpati.mime import MimeLimitError, MimeLimits, ParsedMessage, parse_message, render_imap


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def test_mime01_deep_multipart_nesting_is_refused_quickly() -> None:
    levels = 10_000
    data = b"".join(b"Content-Type: multipart/mixed; boundary=a%d\n\n--a%d\n" % (i, i) for i in range(levels))
    t = time.perf_counter()
    with pytest.raises(MimeLimitError) as ei:
        parse_message(data)
    assert time.perf_counter() - t < 1.0
    assert "deep" in ei.value.reason


def test_mime01_minimal_boundaries_and_rfc822_nesting() -> None:
    same = b"Content-Type: multipart/mixed; boundary=a\n\n--a\n" * 10_000
    with pytest.raises(MimeLimitError):
        parse_message(same)
    msgs = b"Content-Type: message/rfc822\n\n" * 10_000
    with pytest.raises(MimeLimitError):
        parse_message(msgs)


def test_nesting_at_the_limit_is_accepted_and_renders() -> None:
    limits = MimeLimits()
    data = b"".join(b"Content-Type: multipart/mixed; boundary=a%d\n\n--a%d\n" % (i, i)
                    for i in range(limits.max_depth)) + b"\nleaf\n"
    pm = parse_message(data)
    assert len(pm.parts) == limits.max_depth + 1
    assert render_imap(pm.bodystructure()).count(b'"mixed"') == limits.max_depth
    pm2 = ParsedMessage.from_json(pm.to_json())
    assert pm2.section(data, ".".join(["1"] * limits.max_depth)) == b"leaf\n"


def test_mime02_million_parts_bounded_time_and_memory() -> None:
    data = b"Content-Type: multipart/mixed; boundary=a\n\n" + b"--a\n" * 1_000_000
    t = time.perf_counter()
    with pytest.raises(MimeLimitError) as ei:
        parse_message(data)
    assert time.perf_counter() - t < 2.0  # ~0.1 s here: scanning stops at the limit
    assert "parts" in ei.value.reason
    tracemalloc.start()
    try:
        with pytest.raises(MimeLimitError):
            parse_message(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 50 << 20


def test_parts_at_the_limit_are_accepted() -> None:
    limits = MimeLimits(max_parts=101)
    data = b"Content-Type: multipart/mixed; boundary=a\n\n" + b"--a\n\nx\n" * 100 + b"--a--\n"
    assert len(parse_message(data, limits=limits).bodystructure()) == 100 + 5
    with pytest.raises(MimeLimitError):
        parse_message(data + b"--a\n\nx\n", limits=MimeLimits(max_parts=100))


def test_mime03_200k_addresses_in_to() -> None:
    to = b", ".join(b"u%d@example.com" % i for i in range(200_000))
    data = b"To: " + to + b"\r\nSubject: many\r\n\r\nbody"
    limits = MimeLimits(max_header_field=8 << 20)
    (pm, dt) = timed(lambda: parse_message(data, limits=limits))
    assert len(pm.envelope()[5]) == limits.max_addresses
    assert dt < 2.0
    # with the default limits the 4 MB field itself is refused
    with pytest.raises(MimeLimitError):
        parse_message(data)


def test_mime03_10k_cc_headers() -> None:
    data = b"".join(b"Cc: a%d@example.com, b%d@example.com\r\n" % (i, i) for i in range(10_000)) + b"\r\nx"
    pm, dt = timed(lambda: parse_message(data))
    assert len(pm.envelope()[6]) == MimeLimits().max_addresses
    assert len(pm.header_fields("cc")) == 10_000
    assert dt < 2.0


def test_mime04_20mb_single_header() -> None:
    data = b"Subject: " + b"x" * (20 << 20) + b"\r\n\r\nbody"
    _, dt = timed(lambda: pytest.raises(MimeLimitError, parse_message, data))
    assert dt < 2.0
    folded = b"Subject: " + b"x\r\n " * (1 << 19) + b"\r\n\r\nbody"  # 1.5 MiB, folded
    with pytest.raises(MimeLimitError):
        parse_message(folded)


def test_mime04_60mb_of_headers() -> None:
    data = b"X-H: " + b"y" * 1000 + b"\r\n"
    data = data * (60 << 10) + b"\r\nbody"
    with pytest.raises(MimeLimitError):
        parse_message(data)


def test_mime04_header_limits_apply_to_nested_parts() -> None:
    data = (b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nX: " + b"z" * (2 << 20)
            + b"\r\n\r\nbody\r\n--b--\r\n")
    with pytest.raises(MimeLimitError):
        parse_message(data)


def test_mime05_100k_rfc2231_params() -> None:
    params = b"".join(b";\r\n name*%d*=%%41" % i for i in range(100_000))
    data = b"Content-Type: text/plain" + params + b"\r\n\r\nx"
    pm, dt = timed(lambda: parse_message(data, limits=MimeLimits(max_header_field=8 << 20)))
    assert dt < 2.0
    p = pm.parts[0]["p"]
    assert len(p) == 1 and p[0][0] == "name*" and len(p[0][1]) == 3 * MimeLimits().max_params


def test_mime05_bad_encodings_never_raise() -> None:
    data = (b"Subject: =?utf-8?b?####?= =?x-nope?q?=ZZ?= =?utf-8?q?=E2=82?=\r\n"
            b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
            b"Content-Type: text/plain; charset=\"no-such\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
            b"!!!===A\r\n--b\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n=Z=\r\n=F\r\n--b--\r\n")
    pm = parse_message(data)
    assert isinstance(pm.subject, str)
    assert isinstance(pm.binary(data, "1"), bytes) and isinstance(pm.binary(data, "2"), bytes)


def test_mime06_nul_in_header_names_and_bogus_cte() -> None:
    data = (b"Sub\x00ject: x\r\nFr\x00m: a@b\r\n\x00: y\r\nContent-Type: multipart/mixed; boundary=b\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\n--b\r\nContent-Type: message/rfc822\r\n"
            b"Content-Transfer-Encoding: x-bogus\r\n\r\nSubject: in\r\n\r\nz\r\n--b--\r\n")
    pm = parse_message(data)
    assert pm.header_fields("sub\x00ject") == ["x"]
    pm2 = ParsedMessage.from_json(pm.to_json())
    assert pm2 == pm
    bs = pm2.bodystructure()
    assert bs[0][:2] == [b"message", b"rfc822"] and bs[0][7][1] == b"in"
    render_imap(bs)
    render_imap(pm2.envelope())


def test_imap13_many_parts_bodystructure_is_fast() -> None:
    data = b"Content-Type: multipart/mixed; boundary=a\n\n" + b"--a\nContent-Type: text/plain\n\nx\n" * 9_999
    pm, dt = timed(lambda: parse_message(data))
    assert dt < 2.0
    out, dt = timed(lambda: render_imap(pm.bodystructure()))
    assert dt < 2.0 and out.count(b'"plain"') == 9_999


def test_many_non_boundary_dash_lines_stay_linear() -> None:
    data = b"Content-Type: multipart/mixed; boundary=abc\n\n--abc\n\n" + b"--abd\n" * 1_000_000 + b"--abc--\n"
    pm, dt = timed(lambda: parse_message(data))
    assert len(pm.parts) == 2 and dt < 2.0
