"""LIST/LSUB mailbox pattern matching (RFC 9051 §6.3.9) in linear time.

``*`` matches any run of characters, ``%`` any run without the hierarchy delimiter.
Backtracking matchers (fnmatch, ``re`` with ``.*``) take exponential time on patterns
such as ``*%*%*%*%*%*%x`` (Dovecot CVE-2026-33607, SECURITY-CASES IMAP-09). This is a
bit-parallel NFA simulation: one pass over the name, a few integer operations per
character, independent of how the wildcards are arranged.
"""

from __future__ import annotations

from functools import lru_cache

__all__ = ["compile_pattern", "match_mailbox_pattern"]


class _Compiled:
    __slots__ = ("accept", "lit", "pct", "star", "wild")

    def __init__(self, pattern: str, delimiter: str | None) -> None:
        # collapse wildcard runs: a run containing "*" is "*", else "%"
        toks: list[str] = []
        for ch in pattern:
            if ch in "*%":
                if toks and toks[-1] in "*%":
                    if ch == "*" or toks[-1] == "*":
                        toks[-1] = "*"
                    continue
            toks.append(ch)
        lit: dict[str, int] = {}
        star = pct = 0
        for i, t in enumerate(toks):
            bit = 1 << i
            if t == "*":
                star |= bit
            elif t == "%" and delimiter:
                pct |= bit
            elif t == "%":  # no hierarchy: % is *
                star |= bit
            else:
                lit[t] = lit.get(t, 0) | bit
        self.lit = lit
        self.star = star
        self.pct = pct
        self.wild = star | pct
        self.accept = 1 << len(toks)


@lru_cache(maxsize=256)
def compile_pattern(pattern: str, delimiter: str | None = "/") -> _Compiled:
    """Pre-compile a pattern (cached) for :func:`match_mailbox_pattern`."""
    return _Compiled(pattern, delimiter)


def match_mailbox_pattern(pattern: str, name: str, delimiter: str | None = "/") -> bool:
    """Whether ``name`` matches ``pattern`` (``*`` any, ``%`` any but ``delimiter``).

    Matching is exact (case-sensitive); the session normalises ``INBOX`` beforehand.
    O(len(name)) steps of O(len(pattern)/64) word operations.
    """
    c = compile_pattern(pattern, delimiter)
    lit, wild, star, pct = c.lit, c.wild, c.star, c.pct
    state = 1
    state |= (state & wild) << 1
    for ch in name:
        nxt = ((state & lit.get(ch, 0)) << 1) | (state & star)
        if ch != delimiter:
            nxt |= state & pct
        if not nxt:
            return False
        state = nxt | ((nxt & wild) << 1)
    return bool(state & c.accept)
