"""Cross-check against answers recorded from real Dovecot 2.3
(tools/gen_dovecot_fixtures.py); no Dovecot needed at test time."""

from __future__ import annotations

import hashlib
import json

import pytest
from mime_testutil import CRAFTED, FIXTURES, corpus_dir, crlf, parse_imap

from merpati.mime import parse_message, render_imap

FIX = json.loads(FIXTURES.read_text())["messages"]

# Deliberate deviations from Dovecot 2.3, documented in merpati/mime/imap.py and
# address.py: (message, item) pairs where our answer differs on purpose.
KNOWN_DIFFERENCES: dict[tuple[str, str], str] = {
    ("corpus/msg_14.txt", "bodystructure"): "Content-Type 'text' without subtype: RFC 2045 default "
    "text/plain; Dovecot writes (\"\" \"\" NIL ...)",
    ("corpus/msg_14.txt", "body"): "same",
    ("crafted/garbage_headers.eml", "envelope"): "garbage address lists and trailing-whitespace "
    "trimming of Subject differ; both are valid ENVELOPE syntax",
}
KNOWN_SECTION_DIFFERENCES: dict[tuple[str, str], str] = {
    ("corpus/msg_38.txt", "1"): "Dovecot's multipart body keeps the CRLF its last child's empty "
    "header gave to the boundary (2 bytes longer)",
}


def _load(name: str) -> bytes:
    kind, fname = name.split("/", 1)
    path = (corpus_dir() if kind == "corpus" else CRAFTED) / fname
    return crlf(path.read_bytes())


def _ours_and_dovecots(name: str, item: str) -> tuple[object, object]:
    rec = FIX[name]
    data = _load(name)
    assert hashlib.sha256(data).hexdigest() == rec["sha256"], "corpus file changed"
    pm = parse_message(data)
    ours = {"bodystructure": pm.bodystructure, "body": lambda: pm.bodystructure(False),
            "envelope": pm.envelope}[item]()
    return ours, parse_imap(rec[item].encode("latin-1"))


CASES = [(n, i) for n in sorted(FIX) for i in ("bodystructure", "body", "envelope")]


@pytest.mark.parametrize(("name", "item"), [c for c in CASES if c not in KNOWN_DIFFERENCES])
def test_structure_matches_dovecot(name: str, item: str) -> None:
    ours, expected = _ours_and_dovecots(name, item)
    assert ours == expected, render_imap(ours)
    assert parse_imap(render_imap(ours)) == ours


@pytest.mark.parametrize(("name", "item"), sorted(KNOWN_DIFFERENCES))
def test_deliberate_differences_from_dovecot_stay_valid(name: str, item: str) -> None:
    """Where we differ on purpose (reasons in KNOWN_DIFFERENCES), the answer is still valid IMAP."""
    ours, expected = _ours_and_dovecots(name, item)
    assert ours != expected, f"now equal to Dovecot: drop it from KNOWN_DIFFERENCES ({KNOWN_DIFFERENCES[(name, item)]})"
    assert parse_imap(render_imap(ours)) == ours


@pytest.mark.parametrize("name", sorted(FIX))
def test_sections_match_dovecot(name: str) -> None:
    rec = FIX[name]
    data = _load(name)
    pm = parse_message(data)
    bad = {}
    for spec, exp in rec["sections"].items():
        if (name, spec) in KNOWN_SECTION_DIFFERENCES:
            continue
        got = pm.section(data, spec)
        if exp is None or exp[0] == 0:
            ok = not got
        else:
            ok = got is not None and [len(got), hashlib.sha256(got).hexdigest()] == exp
        if not ok:
            bad[spec] = (exp, None if got is None else got[:120])
    assert not bad
