"""IMAP sequence sets (RFC 9051 §9 ``sequence-set``, RFC 5182 ``$``).

Grammar::

    sequence-set    = (seq-number / seq-range) ["," sequence-set] / "$"
    seq-range       = seq-number ":" seq-number
    seq-number      = nz-number / "*"
    nz-number       = digit-nz *DIGIT      ; (0 < n < 4,294,967,296)

``*`` is stored as :data:`STAR` (``0``, which no nz-number can be) and means "the
largest number in use" once resolved against a maximum. A range is unordered
(``4:2`` is ``2:4``) and ``n:*`` with ``n`` above the maximum still contains the
maximum (RFC 9051 §6.4.8: ``UID FETCH 100:*`` in a mailbox whose largest UID is 50
returns UID 50). Iteration is bounded by the maximum, never by the numbers written.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Final

__all__ = ["MAX_NZ", "STAR", "SequenceSet", "SequenceSetError"]

STAR: Final = 0
"""The value that stands for ``*`` in :attr:`SequenceSet.ranges`."""

MAX_NZ: Final = 4_294_967_295
"""The largest nz-number (2**32 - 1)."""

DEFAULT_MAX_RANGES: Final = 16_384

_SET_RE = re.compile(rb"(?:[1-9][0-9]{0,9}|\*)(?::(?:[1-9][0-9]{0,9}|\*))?(?:,(?:[1-9][0-9]{0,9}|\*)(?::(?:[1-9][0-9]{0,9}|\*))?)*\Z")


class SequenceSetError(ValueError):
    """A sequence set that is malformed, has a number out of range or too many ranges."""


@dataclass(frozen=True, slots=True)
class SequenceSet:
    """A parsed sequence set: ``ranges`` as written, or ``saved`` for ``$`` (SEARCHRES).

    ``ranges`` holds ``(first, last)`` pairs exactly as the client wrote them (a single
    number ``n`` is ``(n, n)``; ``*`` is :data:`STAR`). A ``$`` set has ``ranges == ()``
    and ``saved == True``: the session substitutes its saved search result
    (RFC 5182 §2.1) before calling :meth:`resolve`, :meth:`contains` or :meth:`iterate`.
    """

    ranges: tuple[tuple[int, int], ...] = ()
    saved: bool = False

    # -- parsing / formatting ------------------------------------------------------------
    @classmethod
    def parse(cls, text: str | bytes, *, max_ranges: int = DEFAULT_MAX_RANGES) -> SequenceSet:
        """Parse ``text``; raise :class:`SequenceSetError` for anything invalid.

        Numbers must be nz-numbers below 2**32 (``0``, ``4294967296`` and leading zeros
        are errors); more than ``max_ranges`` comma-separated items is an error.
        """
        raw = text.encode("ascii", "replace") if isinstance(text, str) else bytes(text)
        if raw == b"$":
            return cls((), True)
        if raw.count(b",") >= max_ranges:
            raise SequenceSetError("too many ranges in sequence set")
        if _SET_RE.match(raw) is None:
            raise SequenceSetError("invalid sequence set")
        out = []
        for item in raw.split(b","):
            a, sep, b = item.partition(b":")
            first = STAR if a == b"*" else int(a)
            last = (STAR if b == b"*" else int(b)) if sep else first
            if first > MAX_NZ or last > MAX_NZ:
                raise SequenceSetError("number in sequence set out of range")
            out.append((first, last))
        return cls(tuple(out), False)

    @classmethod
    def from_numbers(cls, numbers: Iterable[int]) -> SequenceSet:
        """The shortest set of ranges covering ``numbers`` (any order, duplicates ok).

        Useful for COPYUID/APPENDUID and ESEARCH ``ALL`` responses. Numbers must be
        nz-numbers.
        """
        nums = sorted(set(numbers))
        if nums and (nums[0] < 1 or nums[-1] > MAX_NZ):
            raise SequenceSetError("number out of range")
        out: list[tuple[int, int]] = []
        for n in nums:
            if out and out[-1][1] == n - 1:
                out[-1] = (out[-1][0], n)
            else:
                out.append((n, n))
        return cls(tuple(out), False)

    def format(self) -> str:
        """The IMAP text of this set (``$`` for a saved set; ``""`` for an empty one)."""
        if self.saved:
            return "$"
        parts = []
        for a, b in self.ranges:
            sa = "*" if a == STAR else str(a)
            parts.append(sa if a == b else sa + ":" + ("*" if b == STAR else str(b)))
        return ",".join(parts)

    __str__ = format

    # -- semantics -----------------------------------------------------------------------
    @property
    def uses_star(self) -> bool:
        """True when ``*`` appears anywhere in the set."""
        return any(a == STAR or b == STAR for a, b in self.ranges)

    def resolve(self, max_value: int) -> list[tuple[int, int]]:
        """Sorted, merged, non-overlapping ``(lo, hi)`` ranges within ``1..max_value``.

        ``*`` becomes ``max_value``; a range wholly above ``max_value`` disappears (but
        ``n:*`` always keeps ``max_value``). ``[]`` when ``max_value < 1``. The result has
        at most as many ranges as the set, so its cost is bounded by the parse limit.
        """
        if self.saved:
            raise SequenceSetError("resolve the saved result ($) in the session first")
        if max_value < 1:
            return []
        spans = []
        for a, b in self.ranges:
            a = max_value if a == STAR else a
            b = max_value if b == STAR else b
            lo, hi = (a, b) if a <= b else (b, a)
            if lo > max_value:
                continue
            spans.append((lo, min(hi, max_value)))
        spans.sort()
        merged: list[tuple[int, int]] = []
        for lo, hi in spans:
            if merged and lo <= merged[-1][1] + 1:
                if hi > merged[-1][1]:
                    merged[-1] = (merged[-1][0], hi)
            else:
                merged.append((lo, hi))
        return merged

    def contains(self, n: int, max_value: int) -> bool:
        """Whether ``n`` is in the set once ``*`` means ``max_value``."""
        if self.saved:
            raise SequenceSetError("resolve the saved result ($) in the session first")
        if n < 1 or n > max_value:
            return False
        for a, b in self.ranges:
            a = max_value if a == STAR else a
            b = max_value if b == STAR else b
            if (a <= n <= b) or (b <= n <= a):
                return True
        return False

    def iterate(self, max_value: int) -> Iterator[int]:
        """Every member in ascending order, once each, never above ``max_value``."""
        for lo, hi in self.resolve(max_value):
            yield from range(lo, hi + 1)

    def count(self, max_value: int) -> int:
        """How many members :meth:`iterate` would yield (computed without iterating)."""
        return sum(hi - lo + 1 for lo, hi in self.resolve(max_value))

    def max_number(self) -> int:
        """The largest explicit number in the set (``0`` when it only holds ``*``)."""
        return max((max(a, b) for a, b in self.ranges), default=0)
