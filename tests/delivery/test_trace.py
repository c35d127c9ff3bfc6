"""Trace headers never let client data inject a header line (SMTP-31)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest

from merpati.delivery import trace
from merpati.delivery.envelope import ClientInfo

WHEN = datetime(2026, 11, 28, 12, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    "helo",
    ["evil\r\nBcc: x@y", "a\nX-Injected: 1", "a\rb", "<>()\\\";@", "\x00\x01\x7f", "ünï", "x" * 5000],
)
def test_received_is_one_header_whatever_the_helo(helo):
    client = ClientInfo(ip="127.0.0.1", port=1, helo=helo, esmtp=True, reverse_name="bad\nname")
    header = trace.received(
        client=client, hostname="mx.test", queue_id="ABC", recipient="u@x.test", smtputf8=False, when=WHEN
    )
    lines = header.split(b"\r\n")
    assert lines[0].startswith(b"Received: from ")
    assert all(line.startswith(b"\t") for line in lines[1:-1])
    assert lines[-1] == b""
    assert b"\n" not in header.replace(b"\r\n", b"")
    assert b"\r" not in header.replace(b"\r\n", b"")
    assert len(header) < 800


def test_protocol_names_follow_rfc3848():
    plain = ClientInfo(ip="1.2.3.4", port=1, helo="h", esmtp=True)
    assert trace.protocol_name(plain, smtputf8=False) == "ESMTP"
    tls = ClientInfo(ip="1.2.3.4", port=1, helo="h", esmtp=True, tls=True)
    assert trace.protocol_name(tls, smtputf8=False) == "ESMTPS"
    assert trace.protocol_name(tls, smtputf8=True) == "UTF8SMTPS"
    helo = ClientInfo(ip="1.2.3.4", port=1, helo="h", esmtp=False)
    assert trace.protocol_name(helo, smtputf8=False) == "SMTP"


def test_return_path_and_delivered_to_are_single_lines():
    assert trace.return_path("a\r\nb@x", smtputf8=False) == b"Return-Path: <a??b@x>\r\n"
    assert trace.return_path("", smtputf8=False) == b"Return-Path: <>\r\n"
    assert trace.delivered_to("bob@x.test") == b"Delivered-To: bob@x.test\r\n"


@pytest.mark.parametrize(
    "when",
    [
        datetime(2026, 11, 28, 2, 10, 12, tzinfo=timezone.utc),
        datetime(2024, 2, 29, 23, 59, 59, tzinfo=timezone(timedelta(hours=-3, minutes=-30))),
        datetime(2025, 1, 1, 0, 0, 0, tzinfo=timezone(timedelta(hours=5, minutes=45))),
    ],
)
def test_rfc5322_date_matches_the_stdlib(when):
    assert trace.rfc5322_date(when) == format_datetime(when)
