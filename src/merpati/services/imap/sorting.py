"""SORT orderings and THREAD algorithms (RFC 5256), over stored parses; no recursion.

* Base subject: RFC 5256 §2.1 (decoded, whitespace collapsed, ``Re:``/``Fwd:``/``[blob]``
  leaders, ``(fwd)`` trailers and ``[Fwd: ...]`` wrappers removed, case-folded).
* Sent date: the Date header, or the internal date when it is missing or unparseable.
* Ties are broken by sequence number (UID order, the same order).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from typing import Any

from merpati.mime.text import decode_words
from merpati.storage.models import MessageMeta
from merpati.wire.imap import commands as c

_WS = re.compile(r"\s+")
_TRAILER = re.compile(r"\s*\(fwd\)\s*$", re.I)
_BLOB = r"\[[^\[\]]*\]\s*"
_LEADER = re.compile(r"^\s*(?:" + _BLOB + r")*(?:re|fwd?)\s*(?:" + _BLOB + r")?:\s*", re.I)
_BLOB_LEAD = re.compile(r"^\s*" + _BLOB)
_FWD_WRAP = re.compile(r"^\[fwd:\s*(.*)\]$", re.I | re.S)
_MSGID = re.compile(r"<([^<>\s]+)>")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def base_subject(raw: str | None) -> tuple[str, bool]:
    """(base subject, whether leaders/trailers were removed: "is a reply or forward")."""
    text = _WS.sub(" ", decode_words(raw or "")).strip()
    changed = False
    while True:
        while True:
            new = _TRAILER.sub("", text)
            if new == text:
                break
            text, changed = new.strip(), True
        while True:
            m = _LEADER.match(text)
            if m:
                text, changed = text[m.end():], True
                continue
            m = _BLOB_LEAD.match(text)
            if m and text[m.end():].strip():
                text = text[m.end():]
                continue
            break
        m = _FWD_WRAP.match(text)
        if m:
            text, changed = m.group(1).strip(), True
            continue
        break
    return text.strip().casefold(), changed


def sent_date(meta: MessageMeta, parsed: Any) -> datetime:
    d = parsed.date if parsed is not None else None
    if d is None:
        return meta.internaldate
    if d.tzinfo is None:
        d = d.replace(tzinfo=timezone.utc)
    return d


def _first_mailbox(parsed: Any, field: str) -> str:
    if parsed is None:
        return ""
    addrs = parsed.addresses(field)
    if not addrs:
        return ""
    return addrs[0][1].rsplit("@", 1)[0].casefold()


def _display(parsed: Any, field: str) -> str:
    if parsed is None:
        return ""
    addrs = parsed.addresses(field)
    if not addrs:
        return ""
    name, spec = addrs[0]
    return (name or spec).casefold()


_KEYS: dict[str, Callable[[MessageMeta, Any], Any]] = {
    "ARRIVAL": lambda m, p: (m.internaldate - _EPOCH).total_seconds(),
    "DATE": lambda m, p: (sent_date(m, p) - _EPOCH).total_seconds(),
    "SIZE": lambda m, p: m.size,
    "SUBJECT": lambda m, p: base_subject(p.subject if p is not None else None)[0],
    "FROM": lambda m, p: _first_mailbox(p, "from"),
    "TO": lambda m, p: _first_mailbox(p, "to"),
    "CC": lambda m, p: _first_mailbox(p, "cc"),
    "DISPLAYFROM": lambda m, p: _display(p, "from"),
    "DISPLAYTO": lambda m, p: _display(p, "to"),
}


def needs_parse(criteria: Iterable[c.SortCriterion]) -> bool:
    return any(k.key not in ("ARRIVAL", "SIZE") for k in criteria)


def sort_messages(metas: list[MessageMeta], parsed: dict[int, Any], criteria: tuple[c.SortCriterion, ...],
                  *, seq_of: Callable[[int], int | None]) -> list[MessageMeta]:
    out = sorted(metas, key=lambda m: m.uid)  # the final tie-break: sequence order
    for crit in reversed(criteria):
        fn = _KEYS.get(crit.key)
        if fn is None:
            raise ValueError(f"unsupported sort key {crit.key}")
        out.sort(key=lambda m, fn=fn: fn(m, parsed.get(m.uid)), reverse=crit.reverse)
    return out


# -- THREAD -------------------------------------------------------------------------------------
class Node:
    __slots__ = ("uid", "children", "parent", "date", "meta")

    def __init__(self, uid: int | None = None, date: float = 0.0) -> None:
        self.uid = uid
        self.children: list[Node] = []
        self.parent: Node | None = None
        self.date = date


def thread_orderedsubject(metas: list[MessageMeta], parsed: dict[int, Any]) -> list[Node]:
    """RFC 5256 ORDEREDSUBJECT: group by base subject, each group sorted by sent date; the
    first message is the parent of the others; groups ordered by their first message."""
    groups: dict[str, list[tuple[float, int]]] = {}
    for m in metas:
        p = parsed.get(m.uid)
        subj = base_subject(p.subject if p is not None else None)[0]
        groups.setdefault(subj, []).append(((sent_date(m, p) - _EPOCH).total_seconds(), m.uid))
    roots = []
    for items in groups.values():
        items.sort()
        root = Node(items[0][1], items[0][0])
        root.children = [Node(u, d) for d, u in items[1:]]
        roots.append(root)
    roots.sort(key=lambda n: (n.date, n.uid))
    return roots


def _refs(parsed: Any) -> list[str]:
    if parsed is None:
        return []
    refs = [x for v in parsed.header_fields("references") for x in _MSGID.findall(v)]
    if not refs:
        irt = parsed.header_fields("in-reply-to")
        if irt:
            found = _MSGID.findall(irt[0])
            refs = found[:1]
    return refs[-200:]


def _is_ancestor(a: Node, b: Node) -> bool:
    """Whether ``a`` is ``b`` or above it."""
    cur: Node | None = b
    while cur is not None:
        if cur is a:
            return True
        cur = cur.parent
    return False


def _link(parent: Node, child: Node) -> None:
    if child.parent is not None:
        child.parent.children.remove(child)
    child.parent = parent
    parent.children.append(child)


def thread_references(metas: list[MessageMeta], parsed: dict[int, Any]) -> list[Node]:
    """RFC 5256 REFERENCES (the JWZ algorithm)."""
    table: dict[str, Node] = {}
    subjects: dict[int, tuple[str, bool]] = {}
    for m in metas:
        p = parsed.get(m.uid)
        subjects[m.uid] = base_subject(p.subject if p is not None else None)
        mid = (p.message_id or "").strip() if p is not None else ""
        found = _MSGID.findall(mid)
        key = found[0] if found else ""
        if not key or (key in table and table[key].uid is not None):
            key = f"\x00{m.uid}"
        node = table.get(key)
        if node is None:
            node = table[key] = Node()
        node.uid = m.uid
        node.date = (sent_date(m, p) - _EPOCH).total_seconds()
        prev: Node | None = None
        for ref in _refs(p):
            cur = table.get(ref)
            if cur is None:
                cur = table[ref] = Node()
            if prev is not None and cur.parent is None and not _is_ancestor(cur, prev):
                _link(prev, cur)
            prev = cur
        if node.parent is not None:
            node.parent.children.remove(node)
            node.parent = None
        if prev is not None and prev is not node and not _is_ancestor(node, prev):
            _link(prev, node)
    roots = [n for n in table.values() if n.parent is None]
    roots = _prune(roots)
    roots = _gather_subjects(roots, subjects)
    _sort_tree(roots)
    return roots


def _prune(roots: list[Node]) -> list[Node]:
    """Drop empty dummies; promote the children of dummies (at the root only when single)."""
    # post-order without recursion
    order: list[Node] = []
    stack = list(roots)
    while stack:
        n = stack.pop()
        order.append(n)
        stack.extend(n.children)
    for n in reversed(order):  # children before parents
        new_children: list[Node] = []
        for ch in n.children:
            if ch.uid is None:
                for g in ch.children:
                    g.parent = n
                new_children.extend(ch.children)
            else:
                new_children.append(ch)
        n.children = new_children
    out: list[Node] = []
    for r in roots:
        if r.uid is None:
            if not r.children:
                continue
            if len(r.children) == 1:
                only = r.children[0]
                only.parent = None
                out.append(only)
                continue
        out.append(r)
    return out


def _subject_of(n: Node, subjects: dict[int, tuple[str, bool]]) -> tuple[str, bool]:
    if n.uid is not None:
        return subjects.get(n.uid, ("", False))
    first = min(n.children, key=lambda ch: (ch.date, ch.uid or 0))
    return subjects.get(first.uid or 0, ("", False))


def _gather_subjects(roots: list[Node], subjects: dict[int, tuple[str, bool]]) -> list[Node]:
    table: dict[str, Node] = {}
    for r in roots:
        subj, reply = _subject_of(r, subjects)
        if not subj:
            continue
        old = table.get(subj)
        if old is None or (r.uid is None and old.uid is not None) or (old.uid is not None and _subject_of(old, subjects)[1] and not reply):
            table[subj] = r
    out: list[Node] = []
    for r in roots:
        subj, reply = _subject_of(r, subjects)
        target = table.get(subj) if subj else None
        if target is None or target is r:
            out.append(r)
            continue
        if target.uid is None and r.uid is None:
            for ch in r.children:
                ch.parent = target
            target.children.extend(r.children)
        elif target.uid is None:
            _link(target, r)
        elif r.uid is None:
            # the non-empty one becomes a child of the empty one: r replaces target at the root
            _link(r, target)
            table[subj] = r
            idx = next((i for i, x in enumerate(out) if x is target), None)
            if idx is not None:
                out[idx] = r
            else:
                out.append(r)
        elif not _subject_of(target, subjects)[1] and reply:
            _link(target, r)
        else:
            dummy = Node()
            idx = next((i for i, x in enumerate(out) if x is target), None)
            _link(dummy, target)
            _link(dummy, r)
            table[subj] = dummy
            if idx is not None:
                out[idx] = dummy
            else:
                out.append(dummy)
    return out


def _sort_tree(roots: list[Node]) -> None:
    order: list[Node] = []
    stack = list(roots)
    while stack:
        n = stack.pop()
        order.append(n)
        stack.extend(n.children)
    for n in reversed(order):
        n.children.sort(key=lambda x: (x.date, x.uid or 0))
        if n.uid is None and n.children:
            n.date = n.children[0].date
    roots.sort(key=lambda x: (x.date, x.uid if x.uid is not None else (x.children[0].uid or 0) if x.children else 0))


def render_threads(roots: list[Node], number: Callable[[int], int]) -> bytes:
    """``(1 2 (3)(4 5))...`` (RFC 5256 §4 thread-list), iteratively."""
    out: list[bytes] = []
    todo: list[Node | None] = list(reversed(roots))
    while todo:
        node = todo.pop()
        if node is None:
            out.append(b")")
            continue
        out.append(b"(")
        chain = []
        cur = node
        while True:
            if cur.uid is not None:
                chain.append(b"%d" % number(cur.uid))
            if len(cur.children) == 1:
                cur = cur.children[0]
                continue
            break
        out.append(b" ".join(chain))
        if cur.children:
            if chain:
                out.append(b" ")
            todo.append(None)
            todo.extend(reversed(cur.children))
        else:
            out.append(b")")
    return b"".join(out)
