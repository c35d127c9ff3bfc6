"""Helpers shared by the mime tests (imported via pytest's rootdir-less sys.path)."""

from __future__ import annotations

import re
import sys
import sysconfig
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
CRAFTED = DATA / "crafted"
FIXTURES = DATA / "dovecot_fixtures.json"

_CRLF = re.compile(rb"\r\n|\r(?!\n)|\n")


def crlf(data: bytes) -> bytes:
    """Normalise line ends as imaplib's APPEND does (what Dovecot stored)."""
    return _CRLF.sub(b"\r\n", data)


def corpus_dir() -> Path:
    """CPython's email test corpus (test/test_email/data), located at run time."""
    candidates = [Path(sysconfig.get_path("stdlib")) / "test" / "test_email" / "data"]
    try:
        import test.test_email as te  # noqa: PLC0415

        candidates.insert(0, Path(te.__file__).resolve().parent / "data")
    except Exception:  # the test package may be absent
        pass
    for base in (sys.base_prefix, sys.prefix):
        candidates.append(Path(base) / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}"
                          / "test" / "test_email" / "data")
    for c in candidates:
        if c.is_dir() and any(c.glob("msg_*.txt")):
            return c
    raise RuntimeError(
        "CPython's email test corpus (test/test_email/data/msg_*.txt) was not found; tried "
        + ", ".join(map(str, candidates))
        + ". Install the Python 'test' package (e.g. Debian libpython3.11-testsuite)."
    )


def corpus_files() -> list[Path]:
    return sorted(corpus_dir().glob("msg_*.txt"))


def parse_imap(s: bytes):
    """Parse an IMAP value (NIL, number, quoted, literal, list) to nested Python."""
    pos = 0
    n = len(s)
    stack: list[list] = [[]]
    while pos < n:
        c = s[pos:pos + 1]
        if c in (b" ", b"\r", b"\n"):
            pos += 1
        elif c == b"(":
            stack.append([])
            pos += 1
        elif c == b")":
            lst = stack.pop()
            stack[-1].append(lst)
            pos += 1
        elif c == b'"':
            out = bytearray()
            pos += 1
            while s[pos:pos + 1] != b'"':
                if s[pos:pos + 1] == b"\\":
                    pos += 1
                out += s[pos:pos + 1]
                pos += 1
            pos += 1
            stack[-1].append(bytes(out))
        elif c == b"{":
            end = s.index(b"}", pos)
            length = int(s[pos + 1:end])
            start = end + 3  # "}\r\n"
            stack[-1].append(s[start:start + length])
            pos = start + length
        else:
            m = re.compile(rb"[^ ()\r\n]+").match(s, pos)
            tok = m[0]
            pos = m.end()
            if tok.upper() == b"NIL":
                stack[-1].append(None)
            elif tok.isdigit():
                stack[-1].append(int(tok))
            else:
                stack[-1].append(tok)
    assert len(stack) == 1 and len(stack[0]) == 1, stack
    return stack[0][0]
