"""swaks (the Swiss Army Knife for SMTP) against a real `merpati serve` over loopback."""

from __future__ import annotations

import pytest

from support.messages import assert_delivered, make_message

from .clients import describe, run_client

pytestmark = pytest.mark.interop

SENDER = "swaks-sender@elsewhere.test"


def write_data(path, msg: bytes):
    """swaks always ends DATA with CRLF "." CRLF after the file's content, so a file that already
    ends in CRLF would gain an empty line; give it the message without its final CRLF."""
    assert msg.endswith(b"\r\n")
    path.write_bytes(msg[:-2])
    return path


def swaks(merpati, rcpt: str, data_file, *extra: str):
    return run_client(
        "swaks",
        [
            "--server", f"{merpati.host}:{merpati.port}",
            "--helo", "client.test",
            "--from", SENDER,
            "--to", rcpt,
            "--data", f"@{data_file}",
            "--timeout", "30",
            *extra,
        ],
    )


def test_swaks_plain(merpati, tmp_path):
    rcpt = merpati.new_user("swaks")
    msg = make_message(sender=SENDER, to=rcpt, subject="from swaks")
    proc = swaks(merpati, rcpt, write_data(tmp_path / "msg.eml", msg))
    assert proc.returncode == 0, describe(proc)
    [stored] = merpati.export(rcpt)
    parts = assert_delivered(stored, msg, sender=SENDER, recipients=rcpt)
    assert "with ESMTP " in parts.received


def test_swaks_starttls(merpati, tmp_path):
    rcpt = merpati.new_user("swakstls")
    msg = make_message(sender=SENDER, to=rcpt, subject="from swaks over TLS")
    proc = swaks(merpati, rcpt, write_data(tmp_path / "msg.eml", msg), "--tls")
    assert proc.returncode == 0, describe(proc)
    assert b"TLS started" in proc.stdout, describe(proc)
    [stored] = merpati.export(rcpt)
    parts = assert_delivered(stored, msg, sender=SENDER, recipients=rcpt)
    assert "with ESMTPS " in parts.received


def test_swaks_8bit_body(merpati, tmp_path):
    rcpt = merpati.new_user("swaks8")
    body = "Grüße — ünïcödé body, 漢字, and Latin-1 ".encode() + b"caf\xe9\r\nsecond line \xff\xfe\r\n"
    msg = make_message(
        sender=SENDER,
        to=rcpt,
        body=body,
        extra_headers=b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n",
    )
    proc = swaks(merpati, rcpt, write_data(tmp_path / "msg.eml", msg))
    assert proc.returncode == 0, describe(proc)
    [stored] = merpati.export(rcpt)
    assert_delivered(stored, msg, sender=SENDER, recipients=rcpt)


def test_swaks_unknown_user_and_relay(merpati, tmp_path):
    msg = make_message(sender=SENDER, to="x@y.test")
    write_data(tmp_path / "msg.eml", msg)
    proc = swaks(merpati, "ghost-swaks@merpati.test", tmp_path / "msg.eml")
    assert proc.returncode != 0
    assert b"550 5.1.1" in proc.stdout, describe(proc)
    proc = swaks(merpati, "someone@relay-target.test", tmp_path / "msg.eml")
    assert proc.returncode != 0
    assert b"554 5.7.1" in proc.stdout, describe(proc)
