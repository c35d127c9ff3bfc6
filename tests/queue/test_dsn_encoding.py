"""The report's own Content-Transfer-Encoding follows what it carries: a returned original with
8-bit bytes makes the whole multipart/report 8bit (RFC 2045 §6.4), not only a UTF-8 address."""

from __future__ import annotations

from merpati.queue import dsn
from merpati.storage.queue_api import MessageKind, QueueMessage, QueueRecipient, RecipientState


def _compose(data: bytes, *, ret: str | None, sender: str = "alice@a.test"):
    rcpt = QueueRecipient(id=1, address="bob@b.test", domain="b.test", state=list(RecipientState)[0])
    message = QueueMessage(
        id=1, queue_id="Q1", sender=sender, created=1_700_000_000.0, size=len(data), kind=MessageKind.MAIL,
        origin="", envid=None, ret=ret, smtputf8=False, body_type=None, recipients=(rcpt,),
    )
    entries = [dsn.DsnEntry(rcpt, dsn.FAILED, "5.1.1", "550 5.1.1 unknown user")]
    out = dsn.compose(message=message, data=data, entries=entries, hostname="mx.a.test", now=1_700_000_100.0)
    assert out is not None
    head = out.data.split(b"\r\n\r\n", 1)[0]
    return out, head


def test_eight_bit_returned_body_makes_the_report_eight_bit() -> None:
    out, head = _compose(b"From: a@a.test\r\nSubject: x\r\n\r\nb\xc3\xb6dy\r\n", ret="FULL")
    assert b"Content-Transfer-Encoding: 8bit" in head
    assert out.body_type == "8BITMIME"
    assert not out.smtputf8


def test_ascii_report_stays_seven_bit() -> None:
    out, head = _compose(b"From: a@a.test\r\nSubject: x\r\n\r\nbody\r\n", ret="FULL")
    assert b"Content-Transfer-Encoding: 7bit" in head
    assert out.body_type is None


def test_headers_only_return_with_eight_bit_body_stays_seven_bit() -> None:
    out, head = _compose(b"From: a@a.test\r\nSubject: x\r\n\r\nb\xc3\xb6dy\r\n", ret="HDRS")
    assert b"Content-Transfer-Encoding: 7bit" in head
    assert out.body_type is None
