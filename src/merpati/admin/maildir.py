"""Maildir reading and writing (Maildir++ folders, Dovecot keyword and UID files).

Written per folder: ``cur/<time>.<uid>.<host>:2,<flags>`` (plus empty ``new/`` and ``tmp/``),
where ``time`` is the internal date in Unix seconds and the file's mtime is set to it (Dovecot
takes the internal date from the mtime). Flags are the maildir letters D F R S T for \\Draft
\\Flagged \\Answered \\Seen \\Deleted; keywords are the letters a-z listed in a
``dovecot-keywords`` file (Dovecot's own scheme; a folder's 27th and later keywords are dropped).
A ``dovecot-uidlist`` (version 3) records the UID order, so an import keeps the messages in the
order they had; files it does not list come after, ordered by name.

Maildir++: INBOX is the root folder, mailbox ``a/b`` is the folder ``.a.b``. A ``.`` or ``%``
inside a name is written ``%2E`` / ``%25`` so every name survives the trip.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

FLAG_LETTERS = {"\\Draft": "D", "\\Flagged": "F", "\\Answered": "R", "\\Seen": "S", "\\Deleted": "T"}
LETTER_FLAGS = {v: k for k, v in FLAG_LETTERS.items()}
KEYWORD_LETTERS = "abcdefghijklmnopqrstuvwxyz"
INFO_SEPARATORS = (":2,", "!2,")  # "!" where ":" is not allowed in file names
_ESCAPED = re.compile(r"%(2[Ee]|25)")


@dataclass(frozen=True, slots=True)
class MaildirMessage:
    data: bytes
    internaldate: datetime
    flags: frozenset[str]


def is_maildir(path: Path) -> bool:
    return (path / "cur").is_dir() or (path / "new").is_dir()


def folder_dirname(mailbox: str) -> str:
    """Maildir++ folder name for a mailbox: "" for INBOX, ".a.b" for "a/b"."""
    if mailbox.upper() == "INBOX":
        return ""
    parts = [p.replace("%", "%25").replace(".", "%2E") for p in mailbox.split("/")]
    return "." + ".".join(parts)


def mailbox_from_dirname(dirname: str) -> str:
    parts = dirname[1:].split(".")
    return "/".join(_ESCAPED.sub(lambda m: chr(int(m.group(1), 16)), p) for p in parts)


def safe_host(hostname: str) -> str:
    """The host part of a maildir name, with "/" and ":" escaped as the maildir spec says."""
    return hostname.replace("/", "\\057").replace(":", "\\072") or "localhost"


class FolderWriter:
    """Write the messages of one mailbox into a maildir; call ``close`` at the end."""

    def __init__(self, path: Path, hostname: str) -> None:
        self.path = path
        self.host = safe_host(hostname)
        self.keywords: list[str] = []
        self.uidlist: list[tuple[int, str]] = []
        for sub in ("cur", "new", "tmp"):
            (path / sub).mkdir(parents=True, exist_ok=True)

    def add(self, uid: int, data: bytes, internaldate: datetime, flags: frozenset[str]) -> None:
        stamp = int(internaldate.timestamp())
        base = f"{stamp}.{uid}.{self.host}"
        name = f"{base}:2,{self._info(flags)}"
        tmp = self.path / "tmp" / base
        with open(tmp, "wb") as f:
            f.write(data)
        os.utime(tmp, (stamp, stamp))
        os.replace(tmp, self.path / "cur" / name)
        self.uidlist.append((uid, base))

    def _info(self, flags: frozenset[str]) -> str:
        letters = [FLAG_LETTERS[f] for f in flags if f in FLAG_LETTERS]
        for flag in flags:
            if flag.startswith("\\"):
                continue  # \Recent or an unknown system flag: no maildir letter
            if flag not in self.keywords and len(self.keywords) < len(KEYWORD_LETTERS):
                self.keywords.append(flag)
            if flag in self.keywords:
                letters.append(KEYWORD_LETTERS[self.keywords.index(flag)])
        return "".join(sorted(letters))

    def close(self, uidvalidity: int, uidnext: int) -> None:
        if self.keywords:
            text = "".join(f"{i} {k}\n" for i, k in enumerate(self.keywords))
            (self.path / "dovecot-keywords").write_text(text, encoding="utf-8")
        lines = [f"3 V{uidvalidity} N{uidnext}\n"] + [f"{uid} :{base}\n" for uid, base in self.uidlist]
        (self.path / "dovecot-uidlist").write_text("".join(lines), encoding="utf-8")


def read_folder(path: Path) -> Iterator[MaildirMessage]:
    """Yield the messages of one maildir folder (cur/ and new/) in UID order where known."""
    keywords = _read_keywords(path / "dovecot-keywords")
    order = _read_uidlist(path / "dovecot-uidlist")
    files: list[tuple[tuple[int, int, str], Path, str]] = []
    for sub in ("new", "cur"):
        folder = path / sub
        if not folder.is_dir():
            continue
        for entry in folder.iterdir():
            if entry.name.startswith(".") or not entry.is_file():
                continue
            base, info = split_name(entry.name)
            uid = order.get(base)
            key = (0, uid, "") if uid is not None else (1, _time_of(base), entry.name)
            files.append((key, entry, info if sub == "cur" else ""))
    files.sort(key=lambda item: item[0])
    for _key, entry, info in files:
        stat = entry.stat()
        flags = {LETTER_FLAGS[c] for c in info if c in LETTER_FLAGS}
        flags.update(keywords[c] for c in info if c in keywords)
        yield MaildirMessage(
            entry.read_bytes(),
            datetime.fromtimestamp(int(stat.st_mtime), timezone.utc),
            frozenset(flags),
        )


def split_name(name: str) -> tuple[str, str]:
    """(base name, flag letters) of a maildir file name."""
    for sep in INFO_SEPARATORS:
        base, found, info = name.partition(sep)
        if found:
            return base, info
    return name, ""


def _time_of(base: str) -> int:
    match = re.match(r"(\d+)", base)
    return int(match.group(1)) if match else 0


def _read_keywords(path: Path) -> dict[str, str]:
    keywords: dict[str, str] = {}
    if not path.is_file():
        return keywords
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        index, _, keyword = line.partition(" ")
        if index.isdigit() and int(index) < len(KEYWORD_LETTERS) and keyword:
            keywords[KEYWORD_LETTERS[int(index)]] = keyword
    return keywords


def _read_uidlist(path: Path) -> dict[str, int]:
    """Base name → UID from a Dovecot uidlist (v3: ``<uid> [ext...] :<base>``; v1: ``<uid> <base>``)."""
    order: dict[str, int] = {}
    if not path.is_file():
        return order
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    for line in lines[1:]:
        uid, _, rest = line.partition(" ")
        if not uid.isdigit():
            continue
        base = rest.partition(":")[2] if ":" in rest else rest.strip()
        if base:
            order[base] = int(uid)
    return order
