"""curl's SMTP client (`curl smtp://`) against a real `merpati serve` over loopback."""

from __future__ import annotations

import pytest

from support.messages import assert_delivered, make_message

from .clients import describe, run_client

pytestmark = pytest.mark.interop

SENDER = "curl-sender@elsewhere.test"


def curl(merpati, rcpts: list[str], upload, *extra: str):
    args = [
        "--silent", "--show-error",
        "--noproxy", "*",
        "--max-time", "60",
        f"smtp://{merpati.host}:{merpati.port}/client.test",  # the path is curl's EHLO name
        "--mail-from", SENDER,
    ]
    for r in rcpts:
        args += ["--mail-rcpt", r]
    args += ["--upload-file", str(upload), *extra]
    return run_client("curl", args)


def test_curl_plain(merpati, tmp_path):
    rcpt = merpati.new_user("curl")
    msg = make_message(sender=SENDER, to=rcpt, subject="from curl")
    (tmp_path / "msg.eml").write_bytes(msg)
    proc = curl(merpati, [rcpt], tmp_path / "msg.eml")
    assert proc.returncode == 0, describe(proc)
    [stored] = merpati.export(rcpt)
    parts = assert_delivered(stored, msg, sender=SENDER, recipients=rcpt)
    assert "with ESMTP " in parts.received


def test_curl_starttls_required(merpati, tmp_path):
    a = merpati.new_user("curltls-a")
    b = merpati.new_user("curltls-b")
    msg = make_message(sender=SENDER, to=a, subject="from curl over STARTTLS")
    (tmp_path / "msg.eml").write_bytes(msg)
    proc = curl(merpati, [a, b], tmp_path / "msg.eml", "--ssl-reqd", "-k")
    assert proc.returncode == 0, describe(proc)
    for rcpt in (a, b):
        [stored] = merpati.export(rcpt)
        parts = assert_delivered(stored, msg, sender=SENDER, recipients=rcpt)
        assert "with ESMTPS " in parts.received


def test_curl_unknown_recipient_fails(merpati, tmp_path):
    msg = make_message(sender=SENDER, to="x@y.test")
    (tmp_path / "msg.eml").write_bytes(msg)
    proc = curl(merpati, ["ghost-curl@merpati.test"], tmp_path / "msg.eml")
    assert proc.returncode != 0, describe(proc)
    assert b"550" in proc.stderr, describe(proc)
