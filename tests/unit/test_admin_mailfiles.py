"""mboxrd and maildir files, without a store: byte-exact round trips, dates, flags, names."""

from __future__ import annotations

import io
import os
from datetime import datetime, timedelta, timezone

import pytest

from merpati.admin import maildir, mbox

T0 = datetime(2024, 2, 29, 13, 14, 15, tzinfo=timezone.utc)

TRICKY = [
    b"Subject: crlf\r\n\r\nCaf\xc3\xa9 \xff\xfe 8-bit\r\nFrom here\r\n>From there\r\n",
    b"Subject: lf\n\nFrom the start of a line\n>From quoted\n>>From twice\nFromage\n",
    b"Subject: no newline\n\nlast line without end",
    b"Subject: ends in From\n\nhi\nFrom x",
    b"Subject: blank end\n\nbody\n\n",
    b"From the very first line\nSubject: odd\n\nx\n",
    b"Subject: lone cr\n\nline\r",
    b"",
]


def test_quote_is_mboxrd_and_reversible() -> None:
    data = b"From a\n>From b\n>>From c\nX From d\n>Frog\n"
    assert mbox.quote(data) == b">From a\n>>From b\n>>>From c\nX From d\n>Frog\n"
    assert mbox.unquote(mbox.quote(data)) == data


def test_mbox_round_trip_is_byte_exact() -> None:
    out = io.BytesIO()
    for i, data in enumerate(TRICKY):
        mbox.write_message(out, data, T0 + timedelta(days=i))
    back = list(mbox.read_mbox(io.BytesIO(out.getvalue())))
    assert [m.data for m in back] == TRICKY
    assert [m.internaldate for m in back] == [T0 + timedelta(days=i) for i in range(len(TRICKY))]


def test_from_line_uses_return_path_and_utc_asctime() -> None:
    when = datetime(2024, 1, 5, 8, 0, 0, tzinfo=timezone(timedelta(hours=7)))
    line = mbox.from_line(b"Return-Path: <a@b.test>\r\nSubject: x\r\n\r\n", when)
    assert line == b"From a@b.test Fri Jan  5 01:00:00 2024\n"
    assert mbox.from_line(b"Return-Path: <>\n\n", when).startswith(b"From MAILER-DAEMON ")


def test_foreign_mbox_dates_flags_and_crlf_separators() -> None:
    text = (
        b"From someone@example.test Sat Jan  6 10:00:00 2024 +0200\r\n"
        b"Status: RO\r\nX-Status: AF\r\nSubject: one\r\n\r\nbody\r\n\r\n"
        b"From x Sun Jan  7 10:00:00 2024\r\n"
        b"Subject: two\r\n\r\nbody\r\n"
    )
    one, two = mbox.read_mbox(io.BytesIO(text))
    assert one.data == b"Status: RO\r\nX-Status: AF\r\nSubject: one\r\n\r\nbody\r\n"
    assert one.internaldate == datetime(2024, 1, 6, 8, 0, tzinfo=timezone.utc)
    assert one.flags == {"\\Seen", "\\Answered", "\\Flagged"}
    assert two.data == b"Subject: two\r\n\r\nbody"  # the final CRLF was the separator
    assert two.flags == frozenset()


def test_not_an_mbox() -> None:
    with pytest.raises(ValueError):
        list(mbox.read_mbox(io.BytesIO(b"Subject: x\n\nbody\n")))
    assert list(mbox.read_mbox(io.BytesIO(b""))) == []


def test_header_date_fallback() -> None:
    assert mbox.header_date(b"Date: Mon, 1 Jan 2024 10:00:00 +0100\n\n") == datetime(
        2024, 1, 1, 9, 0, tzinfo=timezone.utc
    )
    assert mbox.header_date(b"Subject: x\n\n") is None


@pytest.mark.parametrize(
    ("mailbox", "dirname"),
    [("INBOX", ""), ("Sent", ".Sent"), ("Archive/2024", ".Archive.2024"), ("v1.2%", ".v1%2E2%25"), ("Çà/é", ".Çà.é")],
)
def test_maildirpp_folder_names(mailbox: str, dirname: str) -> None:
    assert maildir.folder_dirname(mailbox) == dirname
    if dirname:
        assert maildir.mailbox_from_dirname(dirname) == mailbox


def test_maildir_round_trip_flags_keywords_dates_and_order(tmp_path) -> None:  # type: ignore[no-untyped-def]
    messages = [
        (3, TRICKY[0], T0, frozenset({"\\Seen", "\\Answered", "$Forwarded"})),
        (7, TRICKY[1], T0 - timedelta(days=400), frozenset({"\\Flagged", "\\Deleted", "\\Draft", "$Junk"})),
        (9, TRICKY[2], T0 + timedelta(seconds=1), frozenset({"$Forwarded", "\\Recent"})),
    ]
    writer = maildir.FolderWriter(tmp_path / "md", "host/with:colon")
    for m in messages:
        writer.add(*m)
    writer.close(uidvalidity=1234, uidnext=10)

    names = sorted(os.listdir(tmp_path / "md" / "cur"))
    assert f"{int(T0.timestamp())}.3.host\\057with\\072colon:2,RSa" in names
    assert (tmp_path / "md" / "dovecot-keywords").read_text() == "0 $Forwarded\n1 $Junk\n"
    back = list(maildir.read_folder(tmp_path / "md"))
    assert [m.data for m in back] == [m[1] for m in messages]  # UID order, not date order
    assert [m.internaldate for m in back] == [m[2] for m in messages]
    assert [m.flags for m in back] == [m[3] - {"\\Recent"} for m in messages]


def test_foreign_maildir_new_and_cur(tmp_path) -> None:  # type: ignore[no-untyped-def]
    for sub in ("cur", "new", "tmp"):
        (tmp_path / sub).mkdir()
    (tmp_path / "new" / "200.M1P2.h").write_bytes(b"Subject: new\n\nx\n")
    (tmp_path / "cur" / "100.M1P2.h!2,FS").write_bytes(b"Subject: old\n\nx\n")
    (tmp_path / "tmp" / "300.M1P2.h").write_bytes(b"half written")
    old, new = maildir.read_folder(tmp_path)
    assert old.flags == {"\\Flagged", "\\Seen"} and new.flags == frozenset()
    assert new.data == b"Subject: new\n\nx\n"
