"""What a check says: typed results, the only vocabulary checks (built-in or hooks) speak.

A check returns ``None`` (nothing to say), one :class:`Result`, or a sequence of them. A result
carries an action and, independently, a score contribution, a reason and headers:

* ``accept()`` — vouch for the client/message: the remaining checks of the transaction (of the
  session, when returned at connect or HELO) are skipped and the message goes to the inbox.
* ``reject(text, code=550, enhanced="5.7.1")`` — refuse now (at end of DATA for data checks).
* ``tempfail(text, code=451, enhanced="4.7.1")`` — ask the client to try again later.
* ``quarantine(reason)`` — deliver, but into the recipient's Junk mailbox.
* ``add_score(score, reason)`` — contribute to the spam score (negative is allowed).
* ``add_headers(("X-Name", "value"), ...)`` — headers to prepend to the delivered message.

Results combine: ``add_score(2.5, "bad HELO").with_headers(("X-Helo", "bad"))``.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

__all__ = [
    "Action",
    "CheckUnavailable",
    "Result",
    "accept",
    "add_headers",
    "add_score",
    "normalize",
    "quarantine",
    "reject",
    "tempfail",
]


class Action(enum.Enum):
    NONE = "none"  # no decision: score and headers only
    ACCEPT = "accept"
    QUARANTINE = "quarantine"
    TEMPFAIL = "tempfail"
    REJECT = "reject"


# Stronger actions win when several checks decide: reject > tempfail > quarantine > accept.
STRENGTH = {Action.NONE: 0, Action.ACCEPT: 1, Action.QUARANTINE: 2, Action.TEMPFAIL: 3, Action.REJECT: 4}

_HEADER_NAME = re.compile(r"^[!-9;-~]{1,76}$")  # RFC 5322 ftext, bounded
MAX_TEXT = 400
MAX_HEADERS = 20
MAX_HEADER_VALUE = 2000


class CheckUnavailable(Exception):
    """The engine behind a check could not answer (down, slow, garbage): the failure policy applies."""


@dataclass(frozen=True, slots=True)
class Result:
    action: Action = Action.NONE
    code: int | None = None
    enhanced: str | None = None
    text: str = ""
    score: float = 0.0
    reason: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    check: str = ""  # the check that produced it; filled in by the pipeline

    def with_headers(self, *headers: tuple[str, str]) -> Result:
        return replace(self, headers=self.headers + tuple(_clean_headers(headers)))

    def with_score(self, score: float, reason: str = "") -> Result:
        return replace(self, score=self.score + float(score), reason=reason or self.reason)

    @property
    def decides(self) -> bool:
        return self.action is not Action.NONE


def accept(reason: str = "accepted by policy") -> Result:
    return Result(Action.ACCEPT, reason=reason)


def reject(text: str = "Message rejected by policy", code: int = 550, enhanced: str = "5.7.1") -> Result:
    _check_code(code, 5)
    return Result(Action.REJECT, code, enhanced, text, reason=text)


def tempfail(text: str = "Try again later", code: int = 451, enhanced: str = "4.7.1") -> Result:
    _check_code(code, 4)
    return Result(Action.TEMPFAIL, code, enhanced, text, reason=text)


def quarantine(reason: str = "quarantined by policy") -> Result:
    return Result(Action.QUARANTINE, reason=reason)


def add_score(score: float, reason: str) -> Result:
    return Result(score=float(score), reason=reason)


def add_headers(*headers: tuple[str, str]) -> Result:
    return Result(headers=tuple(_clean_headers(headers)))


def _check_code(code: int, first: int) -> None:
    if not isinstance(code, int) or code // 100 != first or not 400 <= code <= 599:
        raise ValueError(f"reply code {code!r} must be {first}xx")


def _clean_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    out = []
    for name, value in headers:
        if not isinstance(name, str) or not _HEADER_NAME.match(name):
            raise ValueError(f"invalid header name {name!r}")
        out.append((name, sanitize(str(value), MAX_HEADER_VALUE)))
    return out


_UNSAFE = re.compile(r"[\x00-\x1f\x7f]+")


def sanitize(text: str, limit: int = MAX_TEXT) -> str:
    """One line of printable text: controls (CR, LF included) become spaces; cut at ``limit``."""
    text = _UNSAFE.sub(" ", text).strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."


def normalize(value: object, check: str) -> list[Result]:
    """A check's return value as a list of results tagged with the check's name."""
    if value is None:
        return []
    if isinstance(value, Result):
        items: Sequence[object] = (value,)
    elif isinstance(value, (list, tuple)):
        items = value
    else:
        raise TypeError(f"check {check!r} returned {type(value).__name__}, not a Result")
    out = []
    for item in items:
        if item is None:
            continue
        if not isinstance(item, Result):
            raise TypeError(f"check {check!r} returned {type(item).__name__}, not a Result")
        score = item.score
        if score != score or score in (float("inf"), float("-inf")):  # NaN or infinite
            raise ValueError(f"check {check!r} returned a non-finite score")
        if len(item.headers) > MAX_HEADERS:
            raise ValueError(f"check {check!r} added more than {MAX_HEADERS} headers")
        out.append(replace(item, check=item.check or check, text=sanitize(item.text), reason=sanitize(item.reason)))
    return out
