"""What the search index holds for one message, computed once at delivery (or APPEND).

``build_search_doc(data, parsed)`` turns the message bytes and its ``ParsedMessage`` into a
``SearchDoc``; the store keeps it in ``search_docs`` (sort and thread keys), ``search_headers``
(one row per top-level header field) and the full-text index (SQLite FTS5 trigram /
PostgreSQL pg_trgm), keyed by a document id that every copy of the message shares
(``messages.search_id``): COPY and MOVE never re-index.

* Body text: the decoded text of every text/* leaf (attachments included), base64 and
  quoted-printable undone, converted from its charset, HTML reduced to text; and the decoded
  header of every attached message/rfc822. At most MAX_BODY_CHARS characters in all (and at
  most MAX_ENCODED_INPUT encoded bytes read), so a huge message costs a bounded amount.
* Header text: ``name: value`` lines of the top-level fields, RFC 2047 decoded.
* Everything searchable is ``search.fold``-ed; sort keys are ``search.sort_fold``-ed.
* Message-IDs are normalised for threading (RFC 5256 §2.3): the text inside ``<>``, without
  quoting or white space, domain lower-cased; only ids with an "@" are valid.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from datetime import date, datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any

from merpati.storage.search import base_subject, fold, sort_fold

__all__ = ["SearchDoc", "build_search_doc", "normalize_msgid", "msgids", "EMPTY_DOC"]

MAX_BODY_CHARS = 1 << 20  # characters of body text indexed per message
MAX_ENCODED_INPUT = 4 << 20  # encoded bytes of text parts read per message
MAX_FIELDS = 500  # header fields indexed per message
MAX_FIELD_CHARS = 16 << 10  # characters of one header value indexed
MAX_HEADER_CHARS = 256 << 10  # characters of header text in the full-text index
MAX_KEY_CHARS = 512  # characters of a sort key
MAX_REFS = 200  # message ids kept from References
_EPOCH_DAY = date(1970, 1, 1)


@dataclass(frozen=True, slots=True)
class SearchDoc:
    headers: str  # folded "name: value\n" lines (full-text index)
    body: str  # folded decoded text (full-text index)
    fields: tuple[tuple[str, str], ...]  # (lower-case name, folded value) per top-level field
    sent_us: int | None  # Date: header as microseconds since the epoch (UTC); None: missing/bad
    sent_day: int | None  # the Date: header's own calendar date, days since 1970-01-01
    subject_key: str  # sort_fold(base subject)
    reply: bool  # the subject was a reply or forward (RFC 5256 §2.1)
    from_key: str
    to_key: str
    cc_key: str
    display_from_key: str
    display_to_key: str
    message_id: str | None  # normalised
    refs: tuple[str, ...]  # normalised References (or the first In-Reply-To id)


EMPTY_DOC = SearchDoc("", "", (), None, None, "", False, "", "", "", "", "", None, ())


def build_search_doc(data: bytes, parsed: Any = None) -> SearchDoc:
    """The search document of a message. ``parsed`` is its ``merpati.mime.ParsedMessage``
    (parsed here when None or another type). Never raises for hostile input: a message the
    MIME parser refuses gets a document with only what could be read."""
    from merpati.mime import MimeLimitError, ParsedMessage, parse_message

    data = bytes(data)
    if not isinstance(parsed, ParsedMessage):
        try:
            parsed = parse_message(data)
        except MimeLimitError:
            return EMPTY_DOC
    return _Builder(data, parsed).build()


class _Builder:
    def __init__(self, data: bytes, parsed: Any) -> None:
        self.data = data
        self.parsed = parsed

    def build(self) -> SearchDoc:
        from merpati.mime import decode_words

        p = self.parsed
        fields: list[tuple[str, str]] = []
        lines: list[str] = []
        header_chars = 0
        for name, raw in p.headers[:MAX_FIELDS]:
            value = fold(decode_words(raw[: MAX_FIELD_CHARS * 4])[:MAX_FIELD_CHARS])
            lname = name.lower()
            fields.append((lname, value))
            if header_chars < MAX_HEADER_CHARS:
                line = f"{lname}: {value}\n"
                lines.append(line)
                header_chars += len(line)
        subject, reply = base_subject(p.subject)
        env = p.parts[0].get("v") or [None] * 10
        sent_us, sent_day = _sent(p)
        return SearchDoc(
            headers="".join(lines)[:MAX_HEADER_CHARS],
            body=self._body(),
            fields=tuple(fields),
            sent_us=sent_us,
            sent_day=sent_day,
            subject_key=_key(subject),
            reply=reply,
            from_key=_key(_mailbox(env[2])),
            to_key=_key(_mailbox(env[5])),
            cc_key=_key(_mailbox(env[6])),
            display_from_key=_key(_display(env[2])),
            display_to_key=_key(_display(env[5])),
            message_id=_first_msgid(p.header_fields("message-id")),
            refs=_refs(p),
        )

    def _body(self) -> str:
        from merpati.mime.headers import param_get
        from merpati.mime.text import decode_2231, decode_charset, decode_cte

        parts = self.parsed.parts
        out: list[str] = []
        chars = 0
        budget = MAX_ENCODED_INPUT
        embedded = {p["c"][0] for p in parts if p.get("k") == 2 and p.get("c")}
        for index, p in enumerate(parts):
            if chars >= MAX_BODY_CHARS or budget <= 0:
                break
            pieces = [self._embedded_header(p)] if index in embedded else []  # an attached message's header
            if not p.get("k") and (p.get("t") or ["text"])[0].lower() == "text":
                raw = self.data[p["b"]:min(p["e"], p["b"] + budget)]
                budget -= len(raw)
                body = decode_cte(raw, p.get("x"))
                if body is None:  # unknown transfer encoding: index what is there
                    body = raw
                cs = param_get(p.get("p"), "charset")
                charset = None if cs is None else (decode_2231(cs[0]) if cs[1] else cs[0])
                decoded = decode_charset(body, charset)
                pieces.append(html_to_text(decoded) if p["t"][1].lower() == "html" else decoded)
            if not pieces:
                continue
            text = "\n".join(pieces)
            text = fold(text[: MAX_BODY_CHARS - chars])
            out.append(text)
            chars += len(text) + 1
        return "\n".join(out)[:MAX_BODY_CHARS]

    def _embedded_header(self, p: dict) -> str:
        from merpati.mime import MimeLimitError, MimeLimits, decode_words
        from merpati.mime.headers import split_fields

        block = self.data[p["h"]:min(p["b"], p["h"] + MAX_HEADER_CHARS)]
        try:
            fields = split_fields(block, MimeLimits())
        except MimeLimitError:
            return ""
        return "\n".join(f"{n}: {decode_words(v[:MAX_FIELD_CHARS])}" for n, v in fields[:MAX_FIELDS])


# -- HTML ------------------------------------------------------------------------------------------

_DROP_BLOCKS = re.compile(r"<(script|style|head|title)\b[^>]*>.*?(?:</\1\s*>|$)", re.I | re.S)
_COMMENT = re.compile(r"<!--.*?(?:-->|$)", re.S)
_TAG = re.compile(r"<[^>]*(?:>|$)")
_BLOCK_TAG = re.compile(r"<(?:br|p|div|tr|li|h[1-6]|blockquote|pre|table)\b[^>]*>", re.I)


def html_to_text(text: str) -> str:
    """Visible text of an HTML body, roughly: scripts, styles and comments dropped, block
    tags as line breaks, other tags removed, entities decoded. Linear time."""
    text = _COMMENT.sub(" ", text)
    text = _DROP_BLOCKS.sub(" ", text)
    text = _BLOCK_TAG.sub("\n", text)
    return html.unescape(_TAG.sub("", text))


# -- header values ---------------------------------------------------------------------------------


def _key(text: str | None) -> str:
    return sort_fold(text[: MAX_KEY_CHARS * 2])[:MAX_KEY_CHARS] if text else ""


def _first_address(addrs: list | None) -> list | None:
    for a in addrs or ():
        if a[3] is not None:  # host None marks a group's start or end
            return a
    return None


def _mailbox(addrs: list | None) -> str:
    """RFC 5256 FROM/TO/CC: the addr-mailbox of the first address."""
    from merpati.mime.text import decode_raw

    a = _first_address(addrs)
    return decode_raw(a[2]) if a and a[2] else ""


def _display(addrs: list | None) -> str:
    """RFC 5957 DISPLAYFROM/DISPLAYTO: the decoded display name of the first address, else
    its addr-spec."""
    from merpati.mime import decode_words
    from merpati.mime.text import decode_raw

    a = _first_address(addrs)
    if a is None:
        return ""
    if a[0]:
        name = decode_words(a[0]).strip()
        if name:
            return name
    return decode_raw(f"{a[2] or ''}@{a[3] or ''}")


def _sent(parsed: Any) -> tuple[int | None, int | None]:
    from merpati.mime.text import decode_raw

    values = parsed.header_fields("date")
    if not values:
        return None, None
    try:
        dt = parsedate_to_datetime(decode_raw(values[0]).strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None, None
    if dt is None:
        return None, None
    if dt.tzinfo is None:  # "-0000": UTC, origin's zone unknown (RFC 5322 §3.3)
        dt = dt.replace(tzinfo=timezone.utc)
    try:
        delta = dt - datetime(1970, 1, 1, tzinfo=timezone.utc)
        us = (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds
        return us, (dt.date() - _EPOCH_DAY).days
    except (OverflowError, ValueError):
        return None, None


# -- message ids (RFC 5256 §2.3) -------------------------------------------------------------------

_MSGID = re.compile(r"<([^<>]{1,998})>")


def normalize_msgid(inner: str) -> str | None:
    """The comparable form of a msg-id's text between ``<`` and ``>``, or None if invalid:
    white space and quoting removed (``"a b"@x`` is ``ab@x``), the domain lower-cased."""
    s = re.sub(r"\s+", "", inner)
    local, at, domain = s.rpartition("@")
    if not at or not local or not domain:
        return None
    if '"' in local or "\\" in local:
        local = re.sub(r'\\(.)', r"\1", local.replace('"', ""))
    return f"{local}@{domain.lower()}"


def msgids(raw: str, limit: int = MAX_REFS) -> list[str]:
    """Valid, normalised msg-ids found in a raw header value, in order."""
    from merpati.mime.text import decode_raw

    out = []
    for m in _MSGID.finditer(decode_raw(raw)):
        n = normalize_msgid(m.group(1))
        if n is not None:
            out.append(n)
            if len(out) >= limit:
                break
    return out


def _first_msgid(values: list[str]) -> str | None:
    for v in values:
        ids = msgids(v, 1)
        if ids:
            return ids[0]
    return None


def _refs(parsed: Any) -> tuple[str, ...]:
    """References ids in order (the last MAX_REFS); without any, the first In-Reply-To id."""
    refs: list[str] = []
    for v in parsed.header_fields("references"):
        refs.extend(msgids(v, 10 * MAX_REFS))
    if refs:
        return tuple(refs[-MAX_REFS:])
    first = _first_msgid(parsed.header_fields("in-reply-to"))
    return (first,) if first else ()
