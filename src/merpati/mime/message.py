"""ParsedMessage: the once-parsed, JSON-serialisable form of a message."""

from __future__ import annotations

import json
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any

from .headers import param_get
from .imap import bodystructure_value, envelope_value
from .limits import MimeLimits
from .parser import scan
from .preview import make_preview
from .section import extract_binary, extract_section, find_part
from .text import decode_2231, decode_raw, decode_words

__all__ = ["ParsedMessage", "parse_message"]

FORMAT_VERSION = 1
# One encoder for every call: json.dumps with options builds a new JSONEncoder (and C
# encoder) each time. The parts are plain dicts/lists/str/int built by the parser, never
# cyclic, so the circular-reference bookkeeping is skipped. Same output as before.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False)


class ParsedMessage:
    """Structure of one message with byte offsets into the stored blob.

    JSON form (``to_json``), compact keys::

        {"v": 1,                     format version
         "z": size,                  len(message bytes)
         "h": [[name, value], ...],  top-level header fields, raw unfolded (latin-1 str)
         "p": [part, ...],           parts in pre-order; p[0] is the message
         "w": preview}               see merpati.mime.parser for the part keys
    """

    __slots__ = ("size", "headers", "parts", "preview", "_index", "_indexed", "_decoded")

    def __init__(self, size: int, headers: list[list[str]], parts: list[dict], preview: str) -> None:
        self.size = size
        self.headers = headers
        self.parts = parts
        self.preview = preview
        self._index: dict[str, list[str]] = {}
        self._indexed: list[list[str]] | None = None  # the headers list _index was built from
        self._decoded: dict[str, Any] = {}  # header()/date values, valid while _index is

    # -- serialisation -------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"v": FORMAT_VERSION, "z": self.size, "h": self.headers, "p": self.parts, "w": self.preview}

    def to_json(self) -> str:
        return _ENCODER.encode(self.to_dict())

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ParsedMessage:
        if d.get("v") != FORMAT_VERSION:
            raise ValueError(f"unsupported ParsedMessage format {d.get('v')!r}")
        return cls(d["z"], d["h"], d["p"], d["w"])

    @classmethod
    def from_json(cls, s: str | bytes) -> ParsedMessage:
        return cls.from_dict(json.loads(s))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ParsedMessage) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"<ParsedMessage size={self.size} parts={len(self.parts)}>"

    # -- headers ---------------------------------------------------------------------
    def _fields(self) -> dict[str, list[str]]:
        """Lower-case field name → raw values in order, built once on first use: delivery,
        the search document and the checks ask for a dozen fields of each message."""
        if self._indexed is not self.headers:
            index: dict[str, list[str]] = {}
            for k, v in self.headers:
                index.setdefault(k.lower(), []).append(v)
            self._index, self._indexed, self._decoded = index, self.headers, {}
        return self._index

    def header_fields(self, name: str) -> list[str]:
        """Raw (unfolded, undecoded; latin-1 per byte) values of top-level fields."""
        return list(self._fields().get(name.lower(), ()))

    def header(self, name: str) -> str | None:
        """First field ``name`` decoded (RFC 2047, UTF-8 raw), or None."""
        vals = self._fields().get(name.lower())
        if not vals:
            return None
        key = "h:" + vals[0]
        found = self._decoded.get(key)
        if found is None:
            found = self._decoded[key] = decode_words(vals[0])
        return found  # type: ignore[no-any-return]

    @property
    def received_count(self) -> int:
        return len(self._fields().get("received", ()))

    @property
    def subject(self) -> str | None:
        return self.header("subject")

    @property
    def message_id(self) -> str | None:
        v = self.header_fields("message-id")
        return decode_raw(v[0]).strip() if v else None

    @property
    def in_reply_to(self) -> str | None:
        v = self.header_fields("in-reply-to")
        return decode_raw(v[0]).strip() if v else None

    @property
    def references(self) -> list[str]:
        return [x for v in self.header_fields("references") for x in decode_raw(v).split()]

    @property
    def date(self) -> datetime | None:
        v = self._fields().get("date")
        if not v:
            return None
        key = "d:" + v[0]
        if key in self._decoded:
            return self._decoded[key]  # type: ignore[no-any-return]
        try:
            found = parsedate_to_datetime(decode_raw(v[0]).strip())
        except (TypeError, ValueError, IndexError, OverflowError):
            found = None
        self._decoded[key] = found
        return found

    @property
    def from_(self) -> str | None:
        return self.header("from")

    @property
    def to(self) -> str | None:
        return self.header("to")

    @property
    def cc(self) -> str | None:
        return self.header("cc")

    @property
    def bcc(self) -> str | None:
        return self.header("bcc")

    def addresses(self, field: str) -> list[tuple[str, str]]:
        """Decoded ``(display name, addr-spec)`` of from/sender/reply-to/to/cc/bcc
        as in the ENVELOPE (groups flattened)."""
        slot = {"from": 2, "sender": 3, "reply-to": 4, "to": 5, "cc": 6, "bcc": 7}[field.lower()]
        out = []
        for name, _adl, mbox, host in self.parts[0]["v"][slot] or ():
            if host is None:
                continue
            out.append((decode_words(name) if name else "", decode_raw(f"{mbox}@{host}")))
        return out

    # -- structure -------------------------------------------------------------------
    def envelope(self) -> list:
        return envelope_value(self.parts[0]["v"])

    def bodystructure(self, extended: bool = True) -> list:
        return bodystructure_value(self.parts, extended)

    def section(self, data: bytes, spec: str, partial: tuple[int, int | None] | None = None) -> bytes | None:
        """BODY[spec] (optionally ``<start.length>`` in spec or ``partial``)."""
        return extract_section(self.parts, data, spec, partial)

    def binary(self, data: bytes, part: str) -> bytes | None:
        return extract_binary(self.parts, data, part)

    def part_exists(self, part: str) -> bool:
        try:
            nums = [int(x) for x in part.split(".")] if part else []
        except ValueError:
            return False
        return all(x > 0 for x in nums) and find_part(self.parts, nums) is not None

    def filenames(self) -> list[str]:
        """Decoded attachment file names (disposition filename or Content-Type name)."""
        out = []
        for p in self.parts:
            found = param_get((p.get("s") or [None, None])[1], "filename") or param_get(p.get("p"), "name")
            if found is not None:
                out.append(decode_2231(found[0]) if found[1] else decode_words(found[0]))
        return out


def parse_message(data: bytes, *, limits: MimeLimits = MimeLimits()) -> ParsedMessage:
    """Parse ``data`` once.  Raises MimeLimitError for bombs, nothing else."""
    data = bytes(data)
    parts, headers = scan(data, limits)
    return ParsedMessage(len(data), headers, parts, make_preview(parts, data, limits))
