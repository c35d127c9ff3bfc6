"""From results to a verdict a person can read: the decision and the headers that explain it.

Every delivered message gets, after our ``Received:`` field:

* the headers checks asked for (``Authentication-Results:`` first), then
* ``X-Spam-Status: Yes|No, score=S required=J tests=a,b`` (SpamAssassin's shape, which mail
  clients and filters already understand), then
* ``Merpati-Verdict: inbox|junk; score=S; junk-at=J; reject-at=R`` followed by one item per
  contributing check: ``name=+2.50 (why)``, ``name=quarantine (why)`` or
  ``name=skipped (why)``, folded one per line.

The Bayesian trainer reads the first ``Merpati-Verdict`` back (``read_verdict``) to tell the
user's corrections (a message we filed in the inbox moved into Junk, or the reverse) from our
own filing.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from merpati.delivery.checks.results import Action, Result, reject

HEADER = "Merpati-Verdict"
SKIPPED = "skipped"
_PARENS = str.maketrans({"(": "[", ")": "]", ";": ",", "\\": "/"})


@dataclass(frozen=True, slots=True)
class Decided:
    verdict: str  # "inbox" | "junk"
    score: float
    accepted: bool  # a check (or a trusted client) vouched for it


def decide(results: Sequence[Result], policy, *, accepted: bool = False) -> Decided:  # type: ignore[no-untyped-def]
    score = round(sum(r.score for r in results), 2)
    if accepted or any(r.action is Action.ACCEPT for r in results):
        return Decided("inbox", score, True)
    junk = score >= policy.junk_score or any(r.action is Action.QUARANTINE for r in results)
    return Decided("junk" if junk else "inbox", score, False)


def spam_refusal(score: float, policy) -> Result:  # type: ignore[no-untyped-def]
    return reject(f"Message rejected as spam (score {score:.2f}, limit {policy.reject_score:.2f})", 550, "5.7.1")


def _ascii(text: str) -> str:
    return text.encode("ascii", "replace").decode("ascii").translate(_PARENS)


def _contributions(results: Sequence[Result]) -> list[str]:
    order: list[str] = []
    groups: dict[str, list[Result]] = {}
    for r in results:
        relevant = r.score != 0 or r.action in (Action.QUARANTINE, Action.ACCEPT) or r.reason.startswith(SKIPPED)
        if not relevant:
            continue
        if r.check not in groups:
            groups[r.check] = []
            order.append(r.check)
        groups[r.check].append(r)
    items = []
    for name in order:
        rs = groups[name]
        skipped = [r for r in rs if r.reason.startswith(SKIPPED)]
        reasons = [_unskip(r.reason) if r in skipped else r.reason for r in rs if r.reason]
        why = _ascii("; ".join(dict.fromkeys(reasons)))[:400].strip()
        label = _ascii(name) or "check"
        score = sum(r.score for r in rs)
        if skipped and score == 0:
            value = SKIPPED
        elif any(r.action is Action.ACCEPT for r in rs):
            value = "accept"
        elif any(r.action is Action.QUARANTINE for r in rs) and score == 0:
            value = "quarantine"
        else:
            value = f"{score:+.2f}"
        items.append(f"{label}={value}" + (f" ({why})" if why else ""))
    return items


def _unskip(reason: str) -> str:
    rest = reason[len(SKIPPED):].strip()
    return rest[1:-1] if rest.startswith("(") and rest.endswith(")") else rest


def render(decided: Decided, results: Sequence[Result], policy) -> bytes:  # type: ignore[no-untyped-def]
    lines: list[str] = []
    extra = [h for r in results for h in r.headers]
    extra.sort(key=lambda h: h[0].lower() != "authentication-results")  # stable: A-R first
    for name, value in extra:
        value = _ascii_header(value)
        if len(name) + len(value) > 76:
            value = value.replace("; ", ";\r\n\t")  # fold at the resinfo/item boundaries
        lines.append(f"{name}: {value}")
    items = _contributions(results)
    spam = "Yes" if decided.verdict == "junk" else "No"
    tests = ",".join(dict.fromkeys(i.split("=", 1)[0] for i in items)) or "none"
    lines.append(f"X-Spam-Status: {spam}, score={decided.score:.2f} required={policy.junk_score:.2f} tests={tests}")
    head = (
        f"{HEADER}: {decided.verdict}; score={decided.score:.2f}; "
        f"junk-at={policy.junk_score:.2f}; reject-at={policy.reject_score:.2f}"
    )
    if decided.accepted:
        head += "; accepted"
    lines.append(";\r\n\t".join([head, *items]))
    return ("\r\n".join(lines) + "\r\n").encode("ascii")


def _ascii_header(value: str) -> str:
    # Values from checks are one sanitised line; keep them ASCII (a header must not need SMTPUTF8).
    return value.encode("ascii", "replace").decode("ascii")


_VERDICT = re.compile(rb"(?im)^merpati-verdict:[ \t]*(inbox|junk)\b")
_HEADER_END = re.compile(rb"\r?\n\r?\n")


def read_verdict(message: bytes) -> str | None:
    """The verdict ("inbox" or "junk") of the first Merpati-Verdict header in the message head."""
    end = _HEADER_END.search(message)
    head = message[: end.start()] if end else message[:65536]
    m = _VERDICT.search(head)
    return m.group(1).decode("ascii").lower() if m else None
