"""BODY[section]<partial> and BINARY[part] from the stored offsets
(RFC 3501 §6.4.5, RFC 9051 §6.4.5, RFC 3516).

Part numbers are resolved as Dovecot's ``imap_msgpart_find`` does: in a
multipart, N picks the N-th part; a non-multipart has only part 1 (itself);
after a message/rfc822 part, further numbers address its embedded message.
HEADER/TEXT/HEADER.FIELDS after a part number need a message/rfc822 part.
"""

from __future__ import annotations

import re

from .headers import raw_field_lines
from .text import decode_cte

__all__ = ["find_part", "extract_section", "parse_section_spec"]

_SPEC = re.compile(
    r"^\s*((?:\d+\.)*\d+)?\.?((?:HEADER\.FIELDS(?:\.NOT)?\s*\(([^)]*)\)?)|HEADER|TEXT|MIME)?\s*"
    r"(?:<(\d+)(?:\.(\d+))?>)?\s*$",
    re.I,
)


def parse_section_spec(spec: str) -> tuple[list[int], str, list[bytes], tuple[int, int | None] | None] | None:
    """``(part numbers, subsection upper-case, field names, partial)``; None if invalid."""
    m = _SPEC.match(spec)
    if m is None:
        return None
    nums = [int(x) for x in m[1].split(".")] if m[1] else []
    if any(x == 0 for x in nums):
        return None
    sub = (m[2] or "").upper()
    names: list[bytes] = []
    if sub.startswith("HEADER.FIELDS"):
        names = [x.strip('"').lower().encode("latin-1", "replace") for x in (m[3] or "").split()]
        sub = "HEADER.FIELDS.NOT" if ".NOT" in sub else "HEADER.FIELDS"
    if sub == "MIME" and not nums:
        return None
    if m[2] and m[1] and spec.strip()[len(m[1]):len(m[1]) + 1] != ".":
        return None
    partial = None
    if m[4] is not None:
        partial = (int(m[4]), int(m[5]) if m[5] is not None else None)
    return nums, sub, names, partial


def find_part(parts: list[dict], nums: list[int]) -> int | None:
    idx = 0
    last = len(nums) - 1
    for i, num in enumerate(nums):
        p = parts[idx]
        if p.get("k") == 1:
            kids = p.get("c", ())
            if num > len(kids):
                return None
            idx = kids[num - 1]
        elif num != 1 or (i < last and p.get("k") != 2):
            return None
        p = parts[idx]
        if i < last and p.get("k") == 2:
            idx = p["c"][0]
    return idx


def _filter_fields(block: bytes, names: list[bytes], negate: bool) -> bytes:
    """Matching fields as they are, then a blank line."""
    wanted = set(names)
    keep = [raw for name, raw in raw_field_lines(block) if (name in wanted) != negate]
    # Dovecot: HEADER.FIELDS always ends with the blank line; .NOT keeps the
    # header's own ending (none when the header had no blank line).
    if not negate or block.endswith(b"\n\n") or block.endswith(b"\n\r\n") or block in (b"\n", b"\r\n"):
        keep.append(b"\r\n")
    return b"".join(keep)


def extract_section(parts: list[dict], data: bytes, spec: str,
                    partial: tuple[int, int | None] | None = None) -> bytes | None:
    parsed = parse_section_spec(spec)
    if parsed is None:
        return None
    nums, sub, names, spec_partial = parsed
    partial = partial if partial is not None else spec_partial
    if nums:
        idx = find_part(parts, nums)
        if idx is None:
            return None
        part = parts[idx]
        if sub == "MIME":
            out = data[part["h"]:part["b"]]
        elif sub == "":
            out = data[part["b"]:part["e"]]
        elif part.get("k") != 2:
            return None
        else:
            out = _message_sub(parts[part["c"][0]], data, sub, names)
    elif sub == "":
        out = data
    else:
        out = _message_sub(parts[0], data, sub, names)
    if partial is not None:
        start, length = partial
        out = out[start:] if length is None else out[start:start + length]
    return out


def _message_sub(msg: dict, data: bytes, sub: str, names: list[bytes]) -> bytes:
    if sub == "TEXT":
        return data[msg["b"]:msg["e"]]
    block = data[msg["h"]:msg["b"]]
    if sub == "HEADER":
        return block
    return _filter_fields(block, names, sub == "HEADER.FIELDS.NOT")


def extract_binary(parts: list[dict], data: bytes, part_spec: str) -> bytes | None:
    spec = part_spec.strip()
    if not spec:
        return data
    try:
        nums = [int(x) for x in spec.split(".")]
    except ValueError:
        return None
    if any(x <= 0 for x in nums):
        return None
    idx = find_part(parts, nums)
    if idx is None:
        return None
    part = parts[idx]
    body = data[part["b"]:part["e"]]
    if part.get("k"):
        return body
    return decode_cte(body, part.get("x"))
