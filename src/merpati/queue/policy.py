"""The retry schedule, expiry and delay warnings: pure functions of (attempts, times).

Nothing here reads a clock: the runner passes ``now`` (seconds since the epoch), so tests
drive the whole schedule with a fake clock.

* After the n-th failed attempt (n >= 1) the next one is ``schedule[n-1]`` seconds later;
  after the last step, the last interval repeats (Postfix doubles up to a cap; a list is
  easier to read and to configure: ``["5m", "10m", "20m", "40m", "1h20m", "2h"]``).
* ``lifetime`` counts from the time the message was queued. A temporary failure at or after
  it expires the recipients (a DSN with ``Action: failed``, RFC 3464 §2.3.3). The last
  interval is shortened so that one final attempt happens exactly at the lifetime.
* A delay warning (``Action: delayed``) is due once, after ``delay_warning`` seconds,
  for recipients still pending; 0 disables warnings.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")


def parse_duration(text: str | float | int) -> float:
    """``"30s"``, ``"5m"``, ``"1h20m"``, ``"5d"`` (or a number of seconds) → seconds.

    ValueError for anything else; ``""`` and ``"0"`` are 0.
    """
    if isinstance(text, (int, float)):
        if text < 0:
            raise ValueError("a duration cannot be negative")
        return float(text)
    value = text.strip().lower()
    if value in ("", "0"):
        return 0.0
    if re.fullmatch(r"\d+(?:\.\d+)?", value):
        return float(value)
    pos, total = 0, 0.0
    for m in _PART.finditer(value):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos != len(value) or pos == 0:
        raise ValueError(f"bad duration {text!r} (use forms like 30s, 5m, 1h20m, 5d)")
    return total


def format_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds <= 0:
        return "0s"
    out = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            out.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(out)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    schedule: tuple[float, ...] = (300.0, 600.0, 1200.0, 2400.0, 4800.0, 7200.0)
    lifetime: float = 5 * 86400.0
    delay_warning: float = 4 * 3600.0  # 0: no warnings

    def __post_init__(self) -> None:
        if not self.schedule or any(s <= 0 for s in self.schedule):
            raise ValueError("the retry schedule needs at least one positive interval")
        if self.lifetime <= 0:
            raise ValueError("the queue lifetime must be positive")

    @classmethod
    def from_strings(cls, schedule: Sequence[str], lifetime: str, delay_warning: str) -> RetryPolicy:
        return cls(
            schedule=tuple(parse_duration(s) for s in schedule),
            lifetime=parse_duration(lifetime),
            delay_warning=parse_duration(delay_warning),
        )

    def interval(self, attempts: int) -> float:
        """The wait after the ``attempts``-th failed attempt (1-based)."""
        index = min(max(attempts, 1), len(self.schedule)) - 1
        return self.schedule[index]

    def expires_at(self, created: float) -> float:
        return created + self.lifetime

    def expired(self, *, created: float, now: float) -> bool:
        return now >= self.expires_at(created)

    def next_attempt(self, *, attempts: int, created: float, now: float) -> float | None:
        """When to try again after the ``attempts``-th attempt failed temporarily at ``now``;
        None when the message has outlived its lifetime (give up: expire)."""
        deadline = self.expires_at(created)
        if now >= deadline:
            return None
        return min(now + self.interval(attempts), deadline)

    def warning_due(self, *, created: float, now: float, warned: bool) -> bool:
        """A delay warning should go out now (once per recipient)."""
        if warned or self.delay_warning <= 0:
            return False
        return now - created >= self.delay_warning and not self.expired(created=created, now=now)

    def attempt_times(self, *, created: float, failures: int) -> list[float]:
        """The times of the first ``failures + 1`` attempts when every attempt fails at once
        (what a fake clock replays; for tests and ``queue show``)."""
        times = [created]
        now = created
        for n in range(1, failures + 1):
            nxt = self.next_attempt(attempts=n, created=created, now=now)
            if nxt is None:
                break
            times.append(nxt)
            now = nxt
        return times
