"""Compile a ``storage.search`` query to one SQL boolean expression, for either backend.

The expression is evaluated per message row ``m`` (table ``messages``) with its search
document ``d`` (``search_docs``, LEFT JOINed on ``m.search_id``). Every value is a bound
parameter; only constant SQL text is produced. Every predicate yields strictly TRUE or FALSE
(never NULL), so ``NOT`` keeps IMAP's meaning. Backends subclass ``Compiler`` for
placeholders, flags and substring matching (``sqlite.search``, ``postgres.search``).

Large UID sets (more than ``INLINE_RANGES`` ranges) are not spelt out as ranges: the caller
resolves them against the mailbox's UIDs first (``expand_uid_sets``) and the compiler binds
the explicit UID list.
"""

from __future__ import annotations

import bisect
from datetime import date
from typing import Any

from merpati.storage import search as s

INLINE_RANGES = 32
_DAY_US = 86_400_000_000
_EPOCH_DAY = date(1970, 1, 1)


def day_number(d: date) -> int:
    return (d - _EPOCH_DAY).days


def large_uid_sets(query: s.Query) -> list[s.UidSet]:
    """The UidSets of ``query`` that are too large to inline."""
    out = []
    stack: list[Any] = [query]
    while stack:
        node = stack.pop()
        if isinstance(node, (s.And, s.Or)):
            stack.extend(node.items)
        elif isinstance(node, s.Not):
            stack.append(node.item)
        elif isinstance(node, s.UidSet) and len(node.ranges) > INLINE_RANGES:
            out.append(node)
    return out


def expand_uid_sets(sets: list[s.UidSet], mailbox_uids: list[int]) -> dict[int, list[int]]:
    """{id(uidset): the mailbox UIDs it contains} (``mailbox_uids`` ascending)."""
    out: dict[int, list[int]] = {}
    for us in sets:
        found: list[int] = []
        for lo, hi in us.ranges:
            i = bisect.bisect_left(mailbox_uids, lo)
            j = bisect.bisect_right(mailbox_uids, hi)
            found.extend(mailbox_uids[i:j])
        out[id(us)] = found
    return out


class Compiler:
    """Turns a query into SQL text plus ``params``. Subclasses implement the abstract hooks."""

    TRUE = "1=1"
    FALSE = "1=0"

    def __init__(self, now_us: int, expanded: dict[int, list[int]] | None = None) -> None:
        self.params: list[Any] = []
        self.now_us = now_us
        self.expanded = expanded or {}

    # -- hooks -------------------------------------------------------------------------------
    def p(self, value: Any) -> str:
        """Bind ``value``; return its placeholder."""
        raise NotImplementedError

    def uid_list(self, uids: list[int]) -> str:
        raise NotImplementedError

    def flag(self, flag: str) -> str:
        """The message has this system flag (canonical spelling)."""
        raise NotImplementedError

    def keyword(self, keyword: str) -> str:
        """The message has this keyword (ASCII lower-case given; compare case-insensitively)."""
        raise NotImplementedError

    def header(self, name: str, needle: str) -> str:
        """A top-level field ``name`` (lower case) whose folded value contains ``needle``
        (folded; may be empty: the field exists)."""
        raise NotImplementedError

    def fulltext(self, column: str, needle: str) -> str:
        """The document's ``column`` ("body" or "headers") contains ``needle`` (folded, non-empty)."""
        raise NotImplementedError

    # -- the walk ------------------------------------------------------------------------------
    def compile(self, query: s.Query) -> str:
        """SQL for a validated query (``simplify`` first, then an iterative post-order walk)."""
        query = simplify(query)
        results: dict[int, str] = {}
        stack: list[tuple[Any, bool]] = [(query, False)]
        while stack:
            node, done = stack.pop()
            if isinstance(node, (s.And, s.Or, s.Not)) and not done:
                stack.append((node, True))
                kids = node.items if not isinstance(node, s.Not) else (node.item,)
                stack.extend((k, False) for k in reversed(kids))
                continue
            if isinstance(node, s.And):
                parts = [results[id(k)] for k in node.items]
                results[id(node)] = "(" + " AND ".join(parts) + ")" if parts else self.TRUE
            elif isinstance(node, s.Or):
                parts = [results[id(k)] for k in node.items]
                results[id(node)] = "(" + " OR ".join(parts) + ")" if parts else self.FALSE
            elif isinstance(node, s.Not):
                results[id(node)] = f"(NOT {results[id(node.item)]})"
            else:
                results[id(node)] = self.leaf(node)
        return results[id(query)]

    def leaf(self, node: Any) -> str:
        if isinstance(node, s.All):
            return self.TRUE
        if isinstance(node, s.UidSet):
            return self.uid_set(node)
        if isinstance(node, s.FlagIs):
            name, system = s.canonical_flag(node.flag)
            sql = self.flag(name) if system else self.keyword(name)
            return sql if node.present else f"(NOT {sql})"
        if isinstance(node, s.InternalDate):
            return self.date_range("(m.internaldate_us + m.internaldate_tz * CAST(1000000 AS BIGINT))", node.op, node.date, _DAY_US)
        if isinstance(node, s.SaveDate):
            return self.date_range("m.savedate_us", node.op, node.date, _DAY_US)
        if isinstance(node, s.SentDate):
            return f"coalesce({self.date_range('d.sent_day', node.op, node.date, 1)}, {self.FALSE})"
        if isinstance(node, s.Age):
            limit = self.p(self.now_us - node.seconds * 1_000_000)
            return f"(m.internaldate_us <= {limit})" if node.op == s.AgeOp.OLDER else f"(m.internaldate_us > {limit})"
        if isinstance(node, s.Size):
            op = ">" if node.op == s.SizeOp.LARGER else "<"
            return f"(m.size {op} {self.p(node.size)})"
        if isinstance(node, s.ModSeq):
            return f"(m.modseq >= {self.p(min(node.min, 2**62))})"
        if isinstance(node, s.Header):
            return self.header(node.field.strip().lower(), s.fold(node.substring))
        if isinstance(node, s.Body):
            needle = s.fold(node.substring)
            return self.fulltext("body", needle) if needle else self.TRUE
        if isinstance(node, s.Text):
            needle = s.fold(node.substring)
            if not needle:
                return self.TRUE
            return f"({self.fulltext('body', needle)} OR {self.fulltext('headers', needle)})"
        raise TypeError(f"not a search key: {node!r}")  # validate() refused it already

    def uid_set(self, node: s.UidSet) -> str:
        if id(node) in self.expanded:
            uids = self.expanded[id(node)]
            return self.uid_list(uids) if uids else self.FALSE
        if not node.ranges:
            return self.FALSE
        parts = []
        for lo, hi in node.ranges:
            if lo == hi:
                parts.append(f"m.uid = {self.p(lo)}")
            else:
                parts.append(f"m.uid BETWEEN {self.p(lo)} AND {self.p(hi)}")
        return "(" + " OR ".join(parts) + ")"

    def date_range(self, expr: str, op: s.DateOp, d: date, unit: int) -> str:
        start = day_number(d) * unit
        if op == s.DateOp.BEFORE:
            return f"({expr} < {self.p(start)})"
        if op == s.DateOp.SINCE:
            return f"({expr} >= {self.p(start)})"
        if unit == 1:
            return f"({expr} = {self.p(start)})"
        return f"({expr} >= {self.p(start)} AND {expr} < {self.p(start + unit)})"


def simplify(query: s.Query) -> s.Query:
    """The same query with less nesting: NOT NOT x is x, an And inside an And (an Or inside
    an Or) is spliced into it, a one-item And/Or is its item. Nesting is what parsers choke
    on (SQLite's parser stack overflows near 48 levels). Recursive: ``validate`` bounds depth."""
    if isinstance(query, s.Not):
        inner = simplify(query.item)
        return inner.item if isinstance(inner, s.Not) else s.Not(inner)
    if isinstance(query, (s.And, s.Or)):
        kind = type(query)
        items: list[s.Query] = []
        for it in query.items:
            it = simplify(it)
            items.extend(it.items if isinstance(it, kind) else (it,))
        if len(items) == 1:
            return items[0]
        return kind(items)
    return query


SORT_EXPRESSIONS = {
    s.SortField.ARRIVAL: "m.internaldate_us",
    s.SortField.DATE: "coalesce(d.sent_us, m.internaldate_us)",
    s.SortField.SIZE: "m.size",
    s.SortField.SUBJECT: "coalesce(d.subject_key, '')",
    s.SortField.FROM: "coalesce(d.from_key, '')",
    s.SortField.TO: "coalesce(d.to_key, '')",
    s.SortField.CC: "coalesce(d.cc_key, '')",
    s.SortField.DISPLAYFROM: "coalesce(d.display_from_key, '')",
    s.SortField.DISPLAYTO: "coalesce(d.display_to_key, '')",
}
TEXT_SORT_FIELDS = frozenset(
    {s.SortField.SUBJECT, s.SortField.FROM, s.SortField.TO, s.SortField.CC, s.SortField.DISPLAYFROM,
     s.SortField.DISPLAYTO}
)


def order_by(keys: list[s.SortKey], collate: str = "") -> str:
    """ORDER BY text for SORT keys, ending with the UID (sequence order) tie-break."""
    parts = []
    for k in keys:
        field = s.SortField(k.field)
        expr = SORT_EXPRESSIONS[field]
        if collate and field in TEXT_SORT_FIELDS:
            expr += f" COLLATE {collate}"
        parts.append(expr + (" DESC" if k.reverse else ""))
    parts.append("m.uid")
    return ", ".join(parts)
