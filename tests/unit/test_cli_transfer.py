"""`merpati export` / `merpati import`: byte-exact round trips through a real SQLite store."""

from __future__ import annotations

import asyncio
import io
import os
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from merpati.admin import mbox
from merpati.cli.main import main
from merpati.config import load_config
from merpati.mime import parse_message
from merpati.storage import open_store
from merpati.storage.models import Delivery

T0 = datetime(2024, 3, 1, 12, 0, 0, tzinfo=timezone.utc)

MESSAGES = [
    b"From: a@example.test\r\nSubject: crlf 8bit\r\n\r\nCaf\xc3\xa9 \xe9\xff\r\nFrom here\r\n>From there\r\n",
    b"From: b@example.test\nSubject: lf\n\nFrom the start\n>From quoted\n>>From twice\n",
    b"From: c@example.test\nSubject: no final newline\n\nlast line",
    b"From: d@example.test\r\nSubject: trailing blank\r\n\r\nbody\r\n\r\n",
    b"Return-Path: <bounce@remote.test>\nFrom: e@example.test\nSubject: ends with From\n\nx\nFrom y",
]
FLAGS = [
    frozenset({"\\Seen"}),
    frozenset({"\\Seen", "\\Answered", "$Forwarded"}),
    frozenset(),
    frozenset({"\\Flagged", "\\Draft", "\\Deleted"}),
    frozenset({"$Label1"}),
]


@pytest.fixture
def cfg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Path:
    path = tmp_path / "var" / "merpati.toml"
    assert main(["-c", str(path), "init", "--hostname", "mx.example.test", "--domain", "example.test"]) == 0
    for user in ("joe@example.test", "ann@example.test", "bob@example.test"):
        monkeypatch.setattr(sys, "stdin", io.StringIO("pw\n"))
        assert main(["-c", str(path), "user", "add", user]) == 0
    capsys.readouterr()
    return path


def seed(cfg: Path, address: str, mailbox: str = "INBOX") -> None:
    """Deliver MESSAGES with FLAGS and distinct internal dates (some out of UID order)."""

    async def go() -> None:
        store = await open_store(load_config(cfg).storage_url)
        try:
            account = await store.get_account(address)
            assert account is not None
            if await store.get_mailbox(account.id, mailbox) is None:
                await store.create_mailbox(account.id, mailbox)
            await store.deliver(
                [
                    Delivery(account.id, data, parse_message(data), T0 - timedelta(days=7 * (i % 3), seconds=i),
                             mailbox=mailbox, flags=FLAGS[i])
                    for i, data in enumerate(MESSAGES)
                ]
            )
        finally:
            await store.close()

    asyncio.run(go())


def stored(cfg: Path, address: str, mailbox: str = "INBOX") -> list[tuple[bytes, datetime, frozenset[str]]]:
    async def go() -> list[tuple[bytes, datetime, frozenset[str]]]:
        store = await open_store(load_config(cfg).storage_url)
        try:
            account = await store.get_account(address)
            assert account is not None
            box = await store.get_mailbox(account.id, mailbox)
            assert box is not None
            return [
                (await store.read_message(box.id, m.uid), m.internaldate, m.flags)
                for m in await store.list_messages(box.id)
            ]
        finally:
            await store.close()

    return asyncio.run(go())


def run(cfg: Path, *argv: str) -> int:
    return main([*argv, "-c", str(cfg)])


def tree(root: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under root → (content, mtime); the uidlist carries a UIDVALIDITY, so skip it.

    Only message files carry a meaningful mtime (the internal date); the keywords file's is
    the time of the export.
    """
    return {
        str(p.relative_to(root)): (p.read_bytes(), int(p.stat().st_mtime) if p.parent.name == "cur" else 0)
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != "dovecot-uidlist"
    }


def test_mbox_round_trip(cfg: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    seed(cfg, "joe@example.test")
    first, second = tmp_path / "first.mbox", tmp_path / "second.mbox"
    assert run(cfg, "export", "joe@example.test", str(first)) == 0
    assert "exported 5 message(s) from INBOX" in capsys.readouterr().out
    assert run(cfg, "import", "ann@example.test", str(first)) == 0
    assert "imported 5 message(s) into INBOX" in capsys.readouterr().out
    assert run(cfg, "export", "ann@example.test", str(second), "--format", "mbox") == 0
    assert second.read_bytes() == first.read_bytes()
    original, copied = stored(cfg, "joe@example.test"), stored(cfg, "ann@example.test")
    assert [m[0] for m in copied] == MESSAGES
    assert [m[1] for m in copied] == [m[1] for m in original]
    assert first.read_bytes().startswith(b"From MAILER-DAEMON ")
    assert b"\nFrom bounce@remote.test " in first.read_bytes()


def test_maildir_round_trip_keeps_flags_dates_and_order(cfg: Path, tmp_path: Path) -> None:
    seed(cfg, "joe@example.test")
    first, second = tmp_path / "first", tmp_path / "second"
    assert run(cfg, "export", "joe@example.test", str(first), "--format", "maildir") == 0
    assert run(cfg, "import", "ann@example.test", str(first), "--format", "maildir") == 0
    assert run(cfg, "export", "ann@example.test", str(second), "--format", "maildir") == 0
    assert tree(second) == tree(first)
    assert stored(cfg, "ann@example.test") == stored(cfg, "joe@example.test")
    names = sorted(os.listdir(first / "cur"))
    assert all(".mx.example.test:2," in n for n in names)
    assert any(n.endswith(":2,DFT") for n in names)


@pytest.mark.parametrize("fmt", ["mbox", "maildir"])
def test_all_mailboxes_round_trip(cfg: Path, tmp_path: Path, fmt: str) -> None:
    seed(cfg, "joe@example.test")
    seed(cfg, "joe@example.test", "Projects/2024.Q1")
    first, second = tmp_path / "first", tmp_path / "second"
    assert run(cfg, "export", "joe@example.test", str(first), "--format", fmt, "--all") == 0
    if fmt == "mbox":
        assert (first / "INBOX.mbox").is_file() and (first / "Projects.2024%2EQ1.mbox").is_file()
        assert (first / "Sent.mbox").read_bytes() == b""
    else:
        assert (first / "cur").is_dir() and (first / ".Projects.2024%2EQ1" / "cur").is_dir()
    assert run(cfg, "import", "bob@example.test", str(first)) == 0  # format detected
    assert run(cfg, "export", "bob@example.test", str(second), "--format", fmt, "--all") == 0
    assert tree(second) == tree(first)
    assert [m[0] for m in stored(cfg, "bob@example.test", "Projects/2024.Q1")] == MESSAGES


def test_import_into_a_named_mailbox_and_status_flags(cfg: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    source = tmp_path / "in.mbox"
    with open(source, "wb") as f:
        mbox.write_message(f, b"Status: RO\nX-Status: F\nSubject: s\n\nx\n", T0)
        mbox.write_message(f, b"Subject: t\n\ny\n", T0)
    assert run(cfg, "import", "joe@example.test", str(source), "--mailbox", "Old/Mail") == 0
    msgs = stored(cfg, "joe@example.test", "Old/Mail")
    assert [m[2] for m in msgs] == [frozenset({"\\Seen", "\\Flagged"}), frozenset()]
    capsys.readouterr()
    assert run(cfg, "mailbox", "list", "joe@example.test") == 0
    row = next(line.split() for line in capsys.readouterr().out.splitlines() if line.startswith("Old/Mail"))
    assert row[1:3] == ["2", "1"]


def test_transfer_errors(cfg: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    def error() -> str:
        lines = capsys.readouterr().err.splitlines()
        assert len(lines) == 1 and lines[0].startswith("merpati: error: "), lines
        return lines[0]

    out = tmp_path / "x.mbox"
    assert run(cfg, "export", "nobody@example.test", str(out)) == 1
    assert "unknown user" in error()
    assert run(cfg, "export", "joe@example.test", str(out), "--mailbox", "Nope") == 1
    assert "no mailbox 'Nope'" in error()
    out.write_bytes(b"")
    assert run(cfg, "export", "joe@example.test", str(out)) == 1
    assert "exists already" in error()
    assert run(cfg, "import", "joe@example.test", str(tmp_path / "missing.mbox")) == 1
    assert "no such file" in error()
    bad = tmp_path / "bad.mbox"
    bad.write_bytes(b"Subject: not an mbox\n\n")
    assert run(cfg, "import", "joe@example.test", str(bad)) == 1
    assert "not an mbox file" in error()
    (tmp_path / "empty").mkdir()
    assert run(cfg, "import", "joe@example.test", str(tmp_path / "empty")) == 1
    assert "neither a maildir" in error()


def nested_bomb(depth: int = 120) -> bytes:
    head = b"".join(b'Content-Type: multipart/mixed; boundary="b%d"\n\n--b%d\n' % (i, i) for i in range(depth))
    tail = b"".join(b"\n--b%d--\n" % i for i in reversed(range(depth)))
    return b"Subject: bomb\n" + head + b"Content-Type: text/plain\n\nx\n" + tail


def test_import_skips_a_mime_bomb_and_says_so(cfg: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    from merpati.mime import MimeLimitError

    with pytest.raises(MimeLimitError):
        parse_message(nested_bomb())
    source = tmp_path / "in.mbox"
    with open(source, "wb") as f:
        mbox.write_message(f, nested_bomb(), T0)
        mbox.write_message(f, MESSAGES[0], T0)
    assert run(cfg, "import", "joe@example.test", str(source)) == 1
    captured = capsys.readouterr()
    assert "imported 1 message(s) into INBOX" in captured.out
    err = captured.err.splitlines()
    assert err[0].startswith("merpati: warning: skipped INBOX message 1: ")
    assert err[-1] == "merpati: error: 1 message(s) were not imported"
    assert [m[0] for m in stored(cfg, "joe@example.test")] == [MESSAGES[0]]
