"""RFC 5256 THREAD algorithms as pure functions of per-message rows.

``ThreadRow`` carries what threading needs of one message (the store's ``thread_data``
reads them from the search index): its UID, sent date (the Date: header's instant, or the
INTERNALDATE when there is none, §2.2), base subject key, whether the subject was a reply or
forward, its normalised Message-ID and references. The result is a forest of ``ThreadNode``
(``uid`` None for a dummy, which REFERENCES leaves only at the top level); ``format_threads``
renders it as RFC 5256 §4 ``thread-list`` text, e.g. ``(2)(3 6 (4 23)(44 7 96))``.

UIDs order messages as sequence numbers do, so "by sequence number" tie-breaks use the UID;
the session maps UIDs to sequence numbers for a non-UID THREAD. Everything here is iterative
(no recursion): a thread may be as deep as the mailbox is large.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

__all__ = ["ThreadRow", "ThreadNode", "orderedsubject", "references", "format_threads", "ALGORITHMS"]


@dataclass(frozen=True, slots=True)
class ThreadRow:
    uid: int
    sent: int  # microseconds since the epoch: Date: header, else INTERNALDATE
    subject: str  # base subject, folded for comparison ("" when empty)
    reply: bool = False
    message_id: str | None = None
    refs: tuple[str, ...] = ()


@dataclass(eq=False, slots=True)
class ThreadNode:
    uid: int | None  # None: a dummy (REFERENCES, top level only)
    children: list[ThreadNode] = field(default_factory=list)

    def __eq__(self, other: object) -> bool:  # structural, iterative
        if not isinstance(other, ThreadNode):
            return NotImplemented
        stack = [(self, other)]
        while stack:
            a, b = stack.pop()
            if a.uid != b.uid or len(a.children) != len(b.children):
                return False
            stack.extend(zip(a.children, b.children))
        return True

    def __repr__(self) -> str:
        return f"ThreadNode({self.uid!r}, {len(self.children)} children)"


# -- ORDEREDSUBJECT (§2.2 / §3) -----------------------------------------------------------------


def orderedsubject(rows: Iterable[ThreadRow]) -> list[ThreadNode]:
    """Group by base subject; in each group the earliest message (sent date, then UID) is the
    root and the others are its children in that order; threads ordered by their root."""
    groups: dict[str, list[ThreadRow]] = {}
    for r in rows:
        groups.setdefault(r.subject, []).append(r)
    threads = []
    for members in groups.values():
        members.sort(key=lambda r: (r.sent, r.uid))
        first = members[0]
        threads.append(((first.sent, first.uid), ThreadNode(first.uid, [ThreadNode(r.uid) for r in members[1:]])))
    threads.sort(key=lambda t: t[0])
    return [node for _, node in threads]


# -- REFERENCES (§2.3) -----------------------------------------------------------------------------


class _C:
    """A container: a message (``row``) or a dummy placeholder for a referenced id."""

    __slots__ = ("row", "parent", "children")

    def __init__(self, row: ThreadRow | None = None) -> None:
        self.row = row
        self.parent: _C | None = None
        self.children: list[_C] = []


def _is_ancestor(a: _C, b: _C) -> bool:
    """True when ``a`` is ``b`` or an ancestor of it."""
    node: _C | None = b
    while node is not None:
        if node is a:
            return True
        node = node.parent
    return False


def _link(parent: _C, child: _C) -> None:
    child.parent = parent
    parent.children.append(child)


def _unlink(child: _C) -> None:
    assert child.parent is not None
    child.parent.children.remove(child)
    child.parent = None


def references(rows: Iterable[ThreadRow]) -> list[ThreadNode]:
    """RFC 5256 §2.3 REFERENCES threading of the given messages."""
    table: dict[object, _C] = {}
    containers: list[_C] = []
    for row in sorted(rows, key=lambda r: r.uid):
        # A missing or duplicate Message-ID: the message gets a unique one of its own.
        key: object = row.message_id
        if key is None or (key in table and table[key].row is not None):
            key = ("uid", row.uid)
        c = table.get(key)
        if c is None:
            c = table[key] = _C()
            containers.append(c)
        c.row = row
        # (1)(A) link the references in order, never changing an existing parent or making a loop.
        prev: _C | None = None
        for ref in row.refs:
            rc = table.get(ref)
            if rc is None:
                rc = table[ref] = _C()
                containers.append(rc)
            if prev is not None and rc.parent is None and not _is_ancestor(rc, prev):
                _link(prev, rc)
            prev = rc
        # (1)(B) the last reference is the parent of this message (break any previous link).
        if c.parent is not None:
            _unlink(c)
        if prev is not None and not _is_ancestor(c, prev):
            _link(prev, c)
    # (2) the root set.
    roots = [c for c in containers if c.parent is None]
    # (3) prune dummies.
    roots = _prune(roots)
    # (4) sort the root set by sent date (a dummy: by its earliest child).
    for c in roots:
        if c.row is None:
            c.children.sort(key=_date_key)
    roots.sort(key=_date_key)
    # (5) gather messages with the same base subject.
    roots = _group_subjects(roots)
    # (6) sort every set of siblings, the deepest first.
    _sort_all(roots)
    return _to_nodes(roots)


def _prune(roots: list[_C]) -> list[_C]:
    """§2.3 step 3: drop childless dummies; splice a dummy's children into its place, except
    at the top level when it has more than one child. Bottom-up (post-order), iteratively."""
    top = _C()  # a stand-in root so every real root has a parent while pruning
    top.children = roots
    for c in roots:
        c.parent = top
    order: list[_C] = []
    stack = [top]
    while stack:
        node = stack.pop()
        order.append(node)
        stack.extend(node.children)
    for node in reversed(order):  # children before parents
        new: list[_C] = []
        for child in node.children:
            if child.row is None and (node is not top or len(child.children) <= 1):
                for grandchild in child.children:
                    grandchild.parent = node
                new.extend(child.children)
            else:
                new.append(child)
        node.children = new
    for c in top.children:
        c.parent = None
    return top.children


def _date_key(c: _C) -> tuple[int, int]:
    if c.row is None:
        c = c.children[0]  # dummies only exist with children (a top-level dummy has 2+)
    assert c.row is not None
    return (c.row.sent, c.row.uid)


def _subject_of(c: _C) -> tuple[str, bool]:
    row = c.row if c.row is not None else c.children[0].row
    assert row is not None
    return row.subject, row.reply


def _group_subjects(roots: list[_C]) -> list[_C]:
    """§2.3 step 5: merge top-level threads whose base subjects are equal."""
    table: dict[str, _C] = {}
    for c in roots:  # (B) the subject table
        subject, reply = _subject_of(c)
        if not subject:
            continue
        old = table.get(subject)
        if old is None:
            table[subject] = c
        elif old.row is not None and (c.row is None or (_subject_of(old)[1] and not reply)):
            table[subject] = c
    removed: set[int] = set()
    out = list(roots)
    for c in roots:  # (C) merge
        if id(c) in removed:
            continue
        subject, reply = _subject_of(c)
        if not subject:
            continue
        t = table[subject]
        if t is c:
            continue
        if t.row is None and c.row is None:
            for child in c.children:
                _link(t, child)
            removed.add(id(c))
        elif t.row is None or (reply and not _subject_of(t)[1]):
            _link(t, c)
            removed.add(id(c))
        else:
            dummy = _C()
            out[out.index(t)] = dummy
            _link(dummy, t)
            _link(dummy, c)
            table[subject] = dummy
            removed.add(id(c))
    return [c for c in out if id(c) not in removed]


def _sort_all(roots: list[_C]) -> None:
    order: list[_C] = []
    stack = list(roots)
    while stack:
        node = stack.pop()
        order.append(node)
        stack.extend(node.children)
    for node in reversed(order):  # grandchildren before children
        node.children.sort(key=_date_key)
    roots.sort(key=_date_key)


def _to_nodes(roots: list[_C]) -> list[ThreadNode]:
    out = [ThreadNode(c.row.uid if c.row else None) for c in roots]
    stack = list(zip(roots, out))
    while stack:
        c, node = stack.pop()
        for child in c.children:
            n = ThreadNode(child.row.uid if child.row else None)
            node.children.append(n)
            stack.append((child, n))
    return out


ALGORITHMS = {"ORDEREDSUBJECT": orderedsubject, "REFERENCES": references}


# -- RFC 5256 §4 thread-list ------------------------------------------------------------------------


def format_threads(threads: Sequence[ThreadNode], number: dict[int, int] | None = None) -> str:
    """The ``thread-list`` text of a forest: ``(1 2 (3)(4 5))``. ``number`` maps UIDs to the
    numbers to print (sequence numbers for a non-UID THREAD); UIDs are printed without it.

    thread-list = "(" (thread-members / thread-nested) ")"; thread-members = nz-number
    *(SP nz-number) [SP thread-nested]; thread-nested = 2*thread-list. A chain of only
    children prints flat; two or more children print as nested lists; a dummy prints nothing.
    """
    out: list[str] = []
    # Work items: a node to open as a thread-list, or a literal string to emit.
    stack: list[ThreadNode | str] = [t for t in reversed(threads)]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            out.append(item)
            continue
        out.append("(")
        node = item
        words: list[str] = []
        while True:
            if node.uid is not None:
                words.append(str(number[node.uid] if number is not None else node.uid))
            if len(node.children) == 1:
                node = node.children[0]
                continue
            break
        out.append(" ".join(words))
        if len(node.children) > 1:
            if words:
                out.append(" ")
            stack.append(")")
            stack.extend(reversed(node.children))
        else:
            out.append(")")
    return "".join(out)
