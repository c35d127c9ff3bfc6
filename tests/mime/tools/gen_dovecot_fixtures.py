"""Record Dovecot's ENVELOPE / BODY / BODYSTRUCTURE / BODY[section] answers for
the CPython corpus and tests/mime/data/crafted/*.eml into
tests/mime/data/dovecot_fixtures.json, so the tests need no Dovecot.

Usage (as root; see /work/shared/reference/README.md):
    D=$(mktemp -d); ../shared/reference/dovecot.sh start $D --listen 127.0.0.57 \
        --imap-port 11143 --pop3-port 11110 --users 2
    .venv/bin/python tests/mime/tools/gen_dovecot_fixtures.py 127.0.0.57 11143
    ../shared/reference/dovecot.sh stop $D

Messages are stored with CRLF line ends (imaplib's APPEND converts), so the
tests compare against ``crlf(message)``.  Section answers are kept as
(length, sha256) to keep the file small.
"""

from __future__ import annotations

import hashlib
import imaplib
import json
import re
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from mime_testutil import CRAFTED, FIXTURES, corpus_files, crlf  # noqa: E402

from merpati.mime import parse_message  # noqa: E402


def raw_item(m: imaplib.IMAP4, item: str) -> bytes:
    typ, d = m.fetch("*", f"({item})")
    assert typ == "OK", d
    buf = b""
    for x in d:
        buf += x[0] + b"\r\n" + x[1] if isinstance(x, tuple) else x
    mm = re.match(rb"^\d+ \((.*)\)$", buf, re.S)
    assert mm, buf
    return mm[1]


def strip_name(resp: bytes, name: bytes) -> bytes:
    assert resp.upper().startswith(name.upper() + b" "), (resp[:60], name)
    return resp[len(name) + 1:]


def section_specs(data: bytes) -> list[str]:
    pm = parse_message(data)
    specs = ["HEADER", "TEXT", "HEADER.FIELDS (SUBJECT FROM X-NONE)", "HEADER.FIELDS.NOT (SUBJECT RECEIVED)"]
    # enumerate part numbers breadth-first from our own tree (Dovecot is the oracle)
    todo = [("", 0)]
    while todo and len(specs) < 60:
        prefix, idx = todo.pop(0)
        p = pm.parts[idx]
        kids = p.get("c", []) if p.get("k") == 1 else [idx]
        for i, c in enumerate(kids[:8], 1):
            num = f"{prefix}{i}"
            specs += [num, f"{num}.MIME"]
            cp = pm.parts[c]
            if cp.get("k") == 2:
                specs += [f"{num}.HEADER", f"{num}.TEXT"]
                todo.append((num + ".", cp["c"][0]))
            elif cp.get("k") == 1:
                todo.append((num + ".", c))
        if not prefix:
            specs.append(f"{len(kids) + 1}")
    return specs


def main() -> None:
    host, port = sys.argv[1], int(sys.argv[2])
    m = imaplib.IMAP4(host, port)
    m.login("user2", "pass")
    m.select("INBOX")
    sources = [("corpus/" + p.name, p.read_bytes()) for p in corpus_files()]
    sources += [("crafted/" + p.name, p.read_bytes()) for p in sorted(CRAFTED.glob("*.eml"))]
    out = {"dovecot": subprocess.run(["dovecot", "--version"], capture_output=True, text=True).stdout.strip(),
           "messages": {}}
    for name, raw in sources:
        data = crlf(raw)
        if b"\0" in data:
            continue
        typ, d = m.append("INBOX", None, None, data)
        assert typ == "OK", (name, d)
        rec = {"sha256": hashlib.sha256(data).hexdigest()}
        for item in ("BODYSTRUCTURE", "BODY", "ENVELOPE"):
            rec[item.lower()] = strip_name(raw_item(m, item), item.encode()).decode("latin-1")
        secs = {}
        for spec in section_specs(data):
            resp = raw_item(m, f"BODY.PEEK[{spec}]")
            mm = re.match(rb"^BODY\[[^\]]*\] (NIL|\{(\d+)\}\r\n|\"(.*?)\")", resp, re.S)
            assert mm, resp[:80]
            if mm[2] is not None:
                body = resp[mm.end():mm.end() + int(mm[2])]
            elif mm[3] is not None:
                body = mm[3]
            else:
                body = None
            secs[spec] = None if body is None else [len(body), hashlib.sha256(body).hexdigest()]
        rec["sections"] = secs
        out["messages"][name] = rec
        m.store("*", "+FLAGS", "\\Deleted")
        m.expunge()
    m.logout()
    FIXTURES.write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
    print(f"wrote {len(out['messages'])} messages to {FIXTURES}")


if __name__ == "__main__":
    main()
