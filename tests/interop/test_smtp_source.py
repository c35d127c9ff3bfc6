"""Postfix's load generator smtp-source against a real `merpati serve` over loopback."""

from __future__ import annotations

import re

import pytest

from support.messages import split_trace

from .clients import describe, run_client

pytestmark = pytest.mark.interop

SENDER = "loadgen@elsewhere.test"
# What smtp-source sends: four header lines, an empty line, then lines of X (the first few
# numbered), all CRLF, and nothing else.
SMTP_SOURCE_MESSAGE = re.compile(
    rb"From: <(?P<from>[^>]*)>\r\nTo: <(?P<to>[^>]*)>\r\nDate: [^\r\n]+\r\nMessage-Id: <[^>\r\n]+>\r\n\r\n"
    rb"(?:\d*X+\r\n)+\Z"
)


def smtp_source(merpati, rcpt: str, *args: str):
    return run_client(
        "smtp-source",
        [*args, "-f", SENDER, "-t", rcpt, "-M", "loadgen.test", f"{merpati.host}:{merpati.port}"],
        package="postfix",
        timeout=240,
    )


def check_mailbox(stored_messages: list[bytes], rcpt: str, size: int) -> None:
    for stored in stored_messages:
        parts = split_trace(stored)
        m = SMTP_SOURCE_MESSAGE.match(parts.original)
        assert m, f"not what smtp-source sent: {parts.original[:400]!r}"
        assert m.group("from").decode() == SENDER and m.group("to").decode() == rcpt
        assert abs(len(parts.original) - size) < 400, len(parts.original)
        assert parts.return_path == f"<{SENDER}>"
        assert parts.delivered_to.strip("<>").lower() == rcpt.lower()


def test_smtp_source_200_messages_5_sessions(merpati):
    rcpt = merpati.new_user("loadgen")
    proc = smtp_source(merpati, rcpt, "-s", "5", "-m", "200", "-l", "2000")
    assert proc.returncode == 0, describe(proc)
    stored = merpati.export(rcpt)
    assert len(stored) == 200, f"{len(stored)} messages in the mailbox, 200 sent\n{describe(proc)}"
    check_mailbox(stored, rcpt, 2000)


def test_smtp_source_reused_connections(merpati):
    """-d: several transactions per connection (RSET-free back-to-back MAIL)."""
    rcpt = merpati.new_user("loadgen-d")
    proc = smtp_source(merpati, rcpt, "-d", "-s", "3", "-m", "60", "-l", "5000")
    assert proc.returncode == 0, describe(proc)
    stored = merpati.export(rcpt)
    assert len(stored) == 60, f"{len(stored)} messages in the mailbox, 60 sent\n{describe(proc)}"
    check_mailbox(stored, rcpt, 5000)


def test_smtp_source_preformatted_file(merpati, tmp_path):
    """-F: smtp-source sends a file's lines with CRLF appended and leading dots doubled; what
    the mailbox holds must be those lines, CRLF-terminated and unstuffed, byte for byte."""
    rcpt = merpati.new_user("loadgen-file")
    lines = [
        f"From: <{SENDER}>",
        f"To: <{rcpt}>",
        "Subject: preformatted",
        "Message-ID: <preformatted@loadgen.test>",
        "",
        ".leading dot",
        "..two leading dots",
        ".",
        "the line above was a lone dot",
    ]
    (tmp_path / "msg.txt").write_text("\n".join(lines) + "\n")
    # smtp-source ends DATA with CRLF "." CRLF after the file's last CRLF (seen on the wire with
    # Postfix 3.7's smtp-source), so the message it sends carries one empty line more.
    expected = ("\r\n".join(lines) + "\r\n\r\n").encode()
    proc = smtp_source(merpati, rcpt, "-s", "2", "-m", "10", "-F", str(tmp_path / "msg.txt"))
    assert proc.returncode == 0, describe(proc)
    stored = merpati.export(rcpt)
    assert len(stored) == 10, describe(proc)
    for message in stored:
        parts = split_trace(message)
        assert parts.original == expected, parts.original
        assert parts.delivered_to.strip("<>").lower() == rcpt.lower()
