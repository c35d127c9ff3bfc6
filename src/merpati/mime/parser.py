"""The one-pass MIME structure scanner.

Theory of operation
-------------------
The message is scanned forward once.  A stack of *frames* holds the open
multiparts and their boundaries; a chain holds every open part.  A part begins
at a header start ``hs``: the next boundary line (of any open multipart) is
located first, so that the header search for the blank line cannot run past
it; the header block ``[hs, bs)`` is then split into fields.  A multipart pushes
a frame; a message/rfc822 (or message/global, RFC 9051) descends into its
embedded message at once; a leaf simply stays open.  Each boundary line found
closes every open part deeper than the multipart it belongs to at ``ds`` (the
start of the line break before ``--``, RFC 2046 §5.1.1: that CRLF belongs to
the delimiter), then opens the next sibling, or moves the multipart into its
epilogue on a close delimiter.  End of data closes everything.

Boundary matching follows RFC 2046 §5.1.1 and Dovecot: a candidate line
``--X`` matches an open boundary if X *starts with* it (trailing whitespace or
garbage allowed); of several matches the longest wins, and for equal ones the
innermost.  No recursion: nesting is an explicit stack bounded by
``max_depth``; part creation is bounded by ``max_parts``, so hostile input
stops early with MimeLimitError.  Bodies are never copied or decoded here,
except the first ~4 KiB of the preview part.

Part records are plain dicts (JSON-ready), short keys:
  h,b,e  header start, body start, body end (offsets into the message)
  k      kind: 0 leaf (omitted), 1 multipart, 2 message/rfc822|global
  c      child indices (multipart: its parts; message: [embedded message])
  t      [type, subtype] as written (defaulted when absent)
  p      params [[name, value], ...] (omitted if none)
  i,d,x,m,o   Content-ID, -Description, -Transfer-Encoding, -MD5, -Location
  s      disposition [type, params|None];  l  languages [..]
  n      line count of the body (LF count; text leaves and message parts)
  v      ENVELOPE (root and embedded messages)
"""

from __future__ import annotations

import re

from .address import parse_addresses
from .headers import parse_content_type, parse_disposition, parse_language, split_fields
from .limits import MimeLimitError, MimeLimits

__all__ = ["scan", "build_envelope"]

_HDR_END = re.compile(rb"\n\r?\n")
_CONTENT_FIELDS = {
    "content-type": "t", "content-transfer-encoding": "x", "content-id": "i",
    "content-description": "d", "content-md5": "m", "content-disposition": "s",
    "content-language": "l", "content-location": "o",
}
_ENV_FIELDS = {"date": 0, "subject": 1, "from": 2, "sender": 3, "reply-to": 4, "to": 5,
               "cc": 6, "bcc": 7, "in-reply-to": 8, "message-id": 9}
_ADDR_SLOTS = (2, 3, 4, 5, 6, 7)
_MISS_REGEX_AFTER = 64  # non-boundary "--" lines before switching to a regex scan


class _Finder:
    """Finds the next boundary line among the open frames."""

    __slots__ = ("data", "frames", "cands", "misses", "regex")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.frames: list[list] = []  # [part index, boundary, chain position, depth, digest, epilogue]
        self.cands: list[tuple[bytes, int]] = []
        self.misses = 0
        self.regex: re.Pattern[bytes] | None = None

    def changed(self) -> None:
        seen: dict[bytes, int] = {}
        for lvl in range(len(self.frames) - 1, -1, -1):
            f = self.frames[lvl]
            if not f[5] and f[1] not in seen:
                seen[f[1]] = lvl
        self.cands = sorted(seen.items(), key=lambda kv: -len(kv[0]))
        self.regex = None

    def _match(self, at: int) -> tuple[bytes, int] | None:
        data = self.data
        for b, lvl in self.cands:
            if data.startswith(b, at):
                return b, lvl
        return None

    def find(self, pos: int) -> tuple[int, int, int, bool, int] | None:
        """``(delimiter start, line end, frame level, is close, "--" position)`` or None."""
        if not self.cands:
            return None
        data = self.data
        hit = None
        if data.startswith(b"--", pos):
            hit = self._match(pos + 2)
            ds, at = pos, pos + 2
        i = pos
        while hit is None:
            if self.misses > _MISS_REGEX_AFTER:
                if self.regex is None:
                    alt = b"|".join(re.escape(b) for b, _ in self.cands)
                    self.regex = re.compile(b"\n--(?:" + alt + b")")
                m = self.regex.search(data, i)
                if m is None:
                    return None
                i = m.start()
            else:
                i = data.find(b"\n--", i)
                if i < 0:
                    return None
            hit = self._match(i + 3)
            if hit is None:
                self.misses += 1
                i += 1
                continue
            ds, at = i, i + 3
            if ds > pos and data[ds - 1] == 13:
                ds -= 1
        b, lvl = hit
        end = at + len(b)
        close = data.startswith(b"--", end)
        nl = data.find(b"\n", end)
        return ds, (len(data) if nl < 0 else nl + 1), lvl, close, at - 2


def _header_end(data: bytes, hs: int, limit: int) -> int:
    if hs >= limit:
        return limit
    if data[hs] == 10:
        return hs + 1
    if data.startswith(b"\r\n", hs) and hs + 2 <= limit:
        return hs + 2
    m = _HDR_END.search(data, hs, limit)
    return m.end() if m else limit


def _empty_body(data: bytes, part: dict, nb: tuple | None) -> tuple | None:
    """A boundary right after the header owns the CRLF before it (RFC 2046
    §5.1.1), even when that CRLF ends the header's blank line: the header then
    ends before it and the body is empty (as in Dovecot)."""
    if nb is None or nb[4] != part["b"]:
        return nb
    bs = hs = part["b"]
    if bs > part["h"] and data[bs - 1] == 10:
        hs = bs - 2 if bs - 2 >= part["h"] and data[bs - 2] == 13 else bs - 1
    part["b"] = part["e"] = hs
    return (hs,) + tuple(nb[1:])


def build_envelope(fields: list[list[str]], limits: MimeLimits) -> list:
    """ENVELOPE from header fields, stored with raw strings."""
    env: list = [None] * 10
    for name, value in fields:
        slot = _ENV_FIELDS.get(name.lower())
        if slot is None:
            continue
        if slot in _ADDR_SLOTS:
            # every occurrence adds addresses (Dovecot); bounded per slot
            have = env[slot] or []
            room = limits.max_addresses - len(have)
            if room > 0:
                have.extend(parse_addresses(value, room))
            env[slot] = have
        else:
            env[slot] = value  # the last occurrence wins (Dovecot)
    for slot in _ADDR_SLOTS:
        if not env[slot]:
            env[slot] = None
    if env[3] is None:
        env[3] = env[2]
    if env[4] is None:
        env[4] = env[2]
    return env


def _part_info(part: dict, fields: list[list[str]], digest: bool, limits: MimeLimits) -> None:
    seen: dict[str, str] = {}
    for name, value in fields:
        key = _CONTENT_FIELDS.get(name.lower())
        if key is not None and key not in seen:
            seen[key] = value
    ct = parse_content_type(seen["t"], limits) if "t" in seen else None
    if ct is None:
        part["t"] = ["message", "rfc822"] if digest else ["text", "plain"]
    else:
        part["t"] = [ct[0], ct[1]]
        if ct[2]:
            part["p"] = ct[2]
    for key in ("i", "d", "m", "o"):
        if key in seen:
            part[key] = seen[key]
    if "x" in seen:
        part["x"] = seen["x"].strip(" \t")
    if "s" in seen:
        disp = parse_disposition(seen["s"], limits)
        if disp is not None:
            part["s"] = disp
    if "l" in seen:
        langs = parse_language(seen["l"], limits)
        if langs:
            part["l"] = langs


def scan(data: bytes, limits: MimeLimits) -> tuple[list[dict], list[list[str]]]:
    """Return ``(parts, top-level header fields)``; parts[0] is the message."""
    n = len(data)
    parts: list[dict] = []
    chain: list[int] = []
    finder = _Finder(data)
    frames = finder.frames
    root_fields: list[list[str]] = []

    def begin(hs: int, parent: int, depth: int, digest: bool) -> tuple[int, int, int, bool, int] | None:
        is_message = parent < 0
        while True:
            if depth > limits.max_depth:
                raise MimeLimitError("MIME nesting too deep")
            if len(parts) >= limits.max_parts:
                raise MimeLimitError("too many MIME parts")
            nb = finder.find(hs)
            # Header search stops at the next boundary's "--" so that a blank line
            # directly before a boundary still ends the header.
            bs = _header_end(data, hs, nb[4] if nb is not None else n)
            limit = nb[0] if nb is not None else n
            if bs - hs > limits.max_header_total:
                raise MimeLimitError("header too large")
            fields = split_fields(data[hs:bs], limits)
            idx = len(parts)
            part: dict = {"h": hs, "b": bs, "e": max(limit, bs)}
            _part_info(part, fields, digest, limits)
            parts.append(part)
            chain.append(idx)
            if parent >= 0:
                parts[parent].setdefault("c", []).append(idx)
            else:
                root_fields.extend(fields)
            if is_message:
                part["v"] = build_envelope(fields, limits)
            ctype, sub = part["t"][0].lower(), part["t"][1].lower()
            if ctype == "multipart":
                part["k"] = 1
                bnd = next((v for k, v in part.get("p", ()) if k.lower() == "boundary"), "")
                if 0 < len(bnd) <= limits.max_boundary:
                    frames.append([idx, bnd.encode("latin-1"), len(chain) - 1, depth, sub == "digest", False])
                    finder.changed()
                    own = finder.find(bs)
                    if own is not None and own[2] == len(frames) - 1:
                        return own
                    nb = own  # no part of its own: ends at an outer boundary
                return _empty_body(data, part, nb)
            if ctype == "message" and sub in ("rfc822", "global"):
                # Parsed as a message whatever its Content-Transfer-Encoding (RFC
                # 2045 §6.4 forbids encoding it); Dovecot does the same.
                part["k"] = 2
                parent, hs, depth, digest, is_message = idx, bs, depth + 1, False, True
                continue
            return _empty_body(data, part, nb)

    nb = begin(0, -1, 0, False)
    while nb is not None:
        ds, le, lvl, close, _ = nb
        frame = frames[lvl]
        keep = frame[2] + 1
        for idx in chain[keep:]:
            p = parts[idx]
            p["e"] = max(ds, p["b"])
        del chain[keep:]
        if len(frames) > lvl + 1:
            del frames[lvl + 1:]
            finder.changed()
        if close:
            frame[5] = True
            finder.changed()
            nb = finder.find(le)
        else:
            nb = begin(le, frame[0], frame[3] + 1, frame[4])
    for idx in chain:
        parts[idx]["e"] = n
    for part in parts:
        k = part.get("k", 0)
        if k == 2 or (k == 0 and part["t"][0].lower() == "text"):
            part["n"] = data.count(b"\n", part["b"], part["e"])
    return parts, root_fields
