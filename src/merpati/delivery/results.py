"""Typed outcomes of routing and delivery, mapped to SMTP replies in exactly one place."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Outcome(enum.Enum):
    ACCEPT = "accept"
    TEMPFAIL = "tempfail"
    REJECT = "reject"


@dataclass(frozen=True, slots=True)
class Verdict:
    outcome: Outcome
    code: int
    enhanced: str
    text: str

    @property
    def accepted(self) -> bool:
        return self.outcome is Outcome.ACCEPT


def accept(text: str = "Ok", code: int = 250, enhanced: str = "2.1.5") -> Verdict:
    return Verdict(Outcome.ACCEPT, code, enhanced, text)


def tempfail(text: str, code: int = 451, enhanced: str = "4.3.0") -> Verdict:
    return Verdict(Outcome.TEMPFAIL, code, enhanced, text)


def reject(text: str, code: int = 550, enhanced: str = "5.1.1") -> Verdict:
    return Verdict(Outcome.REJECT, code, enhanced, text)


USER_UNKNOWN = reject("Recipient address rejected: User unknown in virtual mailbox table")
RELAY_DENIED = reject("Relay access denied", code=554, enhanced="5.7.1")
LOOKUP_FAILED = tempfail("Temporary lookup failure")
ALIAS_LOOP = reject("Alias expansion loop", code=554, enhanced="5.4.6")
NO_FORWARDING = tempfail("Forwarding to remote addresses is not available yet", enhanced="4.4.3")
