"""Evaluating SEARCH keys (RFC 9051 §6.4.4) over one mailbox.

Keys about metadata (flags, dates, sizes, UIDs, sequence numbers, MODSEQ) are decided from one
``list_messages`` read; only the messages that pass them are loaded, in chunks, for header,
date and text keys (from the stored parse; BODY/TEXT decode the text parts' transfer
encoding and charset: substring semantics over decoded text, case-insensitive).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from typing import Any

from merpati.mime.headers import param_get
from merpati.mime.text import decode_charset, decode_cte, decode_raw, decode_words
from merpati.storage.models import MessageMeta
from merpati.wire.imap import commands as c

_FLAG_KEYS: dict[str, tuple[str, bool]] = {
    "ANSWERED": ("\\Answered", True), "DELETED": ("\\Deleted", True), "DRAFT": ("\\Draft", True),
    "FLAGGED": ("\\Flagged", True), "SEEN": ("\\Seen", True),
    "UNANSWERED": ("\\Answered", False), "UNDELETED": ("\\Deleted", False), "UNDRAFT": ("\\Draft", False),
    "UNFLAGGED": ("\\Flagged", False), "UNSEEN": ("\\Seen", False),
}
CHUNK = 200


class Msg:
    """One candidate message: metadata, and (lazily filled) the parse and the bytes."""

    __slots__ = ("meta", "parsed", "data", "_text", "_headers")

    def __init__(self, meta: MessageMeta) -> None:
        self.meta = meta
        self.parsed: Any = None
        self.data: bytes | None = None
        self._text: str | None = None
        self._headers: str | None = None

    def body_text(self) -> str:
        if self._text is None:
            self._text = _decoded_text(self.parsed, self.data or b"")
        return self._text

    def header_text(self) -> str:
        if self._headers is None:
            hs = self.parsed.headers if self.parsed is not None else []
            self._headers = "\n".join(f"{k}: {decode_words(v)}" for k, v in hs)
        return self._headers


def _decoded_text(parsed: Any, data: bytes) -> str:
    if parsed is None:
        return ""
    out = []
    for p in parsed.parts:
        if p.get("k") or p["t"][0].lower() != "text":
            continue
        body = decode_cte(data[p["b"]:p["e"]], p.get("x"))
        if body is None:
            body = data[p["b"]:p["e"]]
        charset = param_get(p.get("p"), "charset")
        out.append(decode_charset(body, charset[0] if charset else None))
    return "\n".join(out)


class Needs:
    __slots__ = ("parsed", "data")

    def __init__(self) -> None:
        self.parsed = False
        self.data = False


Pred = Callable[[Msg], bool]


class Compiler:
    """Compiles a search key into a predicate; ``resolve_set(seqset, uid)`` maps sets to UIDs."""

    def __init__(self, *, resolve_set: Callable[[Any, bool], set[int]], recent: set[int], now: datetime | None = None) -> None:
        self._resolve = resolve_set
        self._recent = recent
        self._now = now or datetime.now(timezone.utc)
        self.needs = Needs()
        self.uses_modseq = False

    def meta_only(self, key: Any) -> bool:
        if isinstance(key, (c.SearchText, c.SearchHeader)):
            return False
        if isinstance(key, c.SearchDate):
            return key.field != "SENT"
        if isinstance(key, c.SearchNot):
            return self.meta_only(key.key)
        if isinstance(key, c.SearchOr):
            return self.meta_only(key.left) and self.meta_only(key.right)
        if isinstance(key, c.SearchAnd):
            return all(self.meta_only(k) for k in key.keys)
        return True

    def compile(self, key: Any) -> Pred:
        if isinstance(key, c.SearchAnd):
            preds = [self.compile(k) for k in key.keys]
            if len(preds) == 1:
                return preds[0]
            return lambda m: all(p(m) for p in preds)
        if isinstance(key, c.SearchOr):
            left, right = self.compile(key.left), self.compile(key.right)
            return lambda m: left(m) or right(m)
        if isinstance(key, c.SearchNot):
            inner = self.compile(key.key)
            return lambda m: not inner(m)
        if isinstance(key, c.SearchSimple):
            return self._simple(key.name)
        if isinstance(key, (c.SearchSeq, c.SearchUid)):
            uids = self._resolve(key.set, isinstance(key, c.SearchUid))
            return lambda m: m.meta.uid in uids
        if isinstance(key, c.SearchKeyword):
            kw, present = key.keyword.lower(), key.present
            return lambda m: any(f.lower() == kw for f in m.meta.flags) == present
        if isinstance(key, c.SearchSize):
            n = key.size
            return (lambda m: m.meta.size > n) if key.op == "LARGER" else (lambda m: m.meta.size < n)
        if isinstance(key, c.SearchModseq):
            self.uses_modseq = True
            n = key.modseq
            return lambda m: m.meta.modseq >= n
        if isinstance(key, c.SearchAge):
            limit = self._now - timedelta(seconds=key.seconds)
            if key.op == "OLDER":
                return lambda m: m.meta.internaldate <= limit
            return lambda m: m.meta.internaldate >= limit
        if isinstance(key, c.SearchDate):
            return self._date(key)
        if isinstance(key, c.SearchHeader):
            self.needs.parsed = True
            return self._header(key.field, key.value)
        if isinstance(key, c.SearchText):
            return self._text(key)
        raise ValueError(f"unknown search key {key!r}")

    def _simple(self, name: str) -> Pred:
        if name in ("ALL", "SAVEDATESUPPORTED"):
            return lambda m: True
        if name in _FLAG_KEYS:
            flag, present = _FLAG_KEYS[name]
            return lambda m: (flag in m.meta.flags) == present
        recent = self._recent
        if name == "RECENT":
            return lambda m: m.meta.uid in recent
        if name == "OLD":
            return lambda m: m.meta.uid not in recent
        if name == "NEW":
            return lambda m: m.meta.uid in recent and "\\Seen" not in m.meta.flags
        raise ValueError(f"unknown search key {name}")

    def _date(self, key: c.SearchDate) -> Pred:
        day = key.date
        if key.field == "SENT":
            self.needs.parsed = True

            def get(m: Msg) -> date:
                sent = m.parsed.date if m.parsed is not None else None
                return (sent or m.meta.internaldate).date()
        elif key.field == "SAVED":
            def get(m: Msg) -> date:
                return m.meta.savedate.date()
        else:
            def get(m: Msg) -> date:
                return m.meta.internaldate.date()
        if key.op == "BEFORE":
            return lambda m: get(m) < day
        if key.op == "ON":
            return lambda m: get(m) == day
        return lambda m: get(m) >= day

    def _header(self, field: str, value: str) -> Pred:
        name = field.lower()
        needle = value.casefold()

        def pred(m: Msg) -> bool:
            if m.parsed is None:
                return False
            fields = m.parsed.header_fields(name)
            if not fields:
                return False
            if not needle:
                return True
            return any(needle in decode_words(v).casefold() for v in fields)
        return pred

    def _text(self, key: c.SearchText) -> Pred:
        needle = key.value.casefold()
        field = key.field
        self.needs.parsed = True
        if field in ("FROM", "TO", "CC", "BCC", "SUBJECT"):
            return self._header(field, key.value) if needle else (lambda m: True)
        self.needs.data = True
        if field == "BODY":
            return lambda m: needle in m.body_text().casefold()
        return lambda m: needle in m.header_text().casefold() or needle in m.body_text().casefold()


async def evaluate(store: Any, mailbox_id: int, metas: list[MessageMeta], key: c.SearchAnd, compiler: Compiler) -> list[MessageMeta]:
    """The metas that match ``key``, in UID order."""
    cheap = [k for k in key.keys if compiler.meta_only(k)]
    rest = [k for k in key.keys if not compiler.meta_only(k)]
    msgs = [Msg(m) for m in metas]
    if cheap:
        pred = compiler.compile(c.SearchAnd(tuple(cheap)))
        msgs = [m for m in msgs if pred(m)]
    if rest and msgs:
        pred = compiler.compile(c.SearchAnd(tuple(rest)))
        out = []
        for i in range(0, len(msgs), CHUNK):
            chunk = msgs[i:i + CHUNK]
            uids = [m.meta.uid for m in chunk]
            parsed = await store.get_parsed_many(mailbox_id, uids) if compiler.needs.parsed else {}
            data = await store.read_messages(mailbox_id, uids) if compiler.needs.data else {}
            for m in chunk:
                m.parsed = parsed.get(m.meta.uid)
                m.data = data.get(m.meta.uid)
                if pred(m):
                    out.append(m)
                m.data = None
        msgs = out
    return [m.meta for m in msgs]


__all__ = ["Compiler", "Msg", "evaluate", "decode_raw"]
