"""Text preview: the first ~200 characters of the first text/plain part (or
text/html with tags stripped) that is not an attachment, decoded and with
whitespace collapsed.  Only ``limits.preview_input`` encoded bytes are read."""

from __future__ import annotations

import html
import re

from .headers import param_get
from .limits import MimeLimits
from .text import decode_2231, decode_charset, decode_cte

__all__ = ["make_preview"]

_DROP_BLOCKS = re.compile(r"<(script|style|head|title)\b.*?(?:</\1\s*>|$)", re.I | re.S)
_COMMENT = re.compile(r"<!--.*?(?:-->|$)", re.S)
_TAG = re.compile(r"<[^>]*(?:>|$)")


def _pick(parts: list[dict]) -> dict | None:
    html_part = None
    for p in parts:
        if p.get("k") or p["t"][0].lower() != "text":
            continue
        disp = p.get("s")
        if disp is not None and disp[0].lower() == "attachment":
            continue
        sub = p["t"][1].lower()
        if sub == "plain":
            return p
        if sub == "html" and html_part is None:
            html_part = p
    return html_part


def make_preview(parts: list[dict], data: bytes, limits: MimeLimits) -> str:
    p = _pick(parts)
    if p is None:
        return ""
    raw = data[p["b"]:min(p["e"], p["b"] + limits.preview_input)]
    body = decode_cte(raw, p.get("x"))
    if body is None:
        return ""
    cs = param_get(p.get("p"), "charset")
    charset = None if cs is None else (decode_2231(cs[0]) if cs[1] else cs[0])
    text = decode_charset(body, charset)
    if p["t"][1].lower() == "html":
        text = _COMMENT.sub(" ", text)
        text = _DROP_BLOCKS.sub(" ", text)
        text = html.unescape(_TAG.sub(" ", text))
    return _collapse(text, limits.preview_chars)


def _collapse(text: str, chars: int) -> str:
    """``" ".join(text.split())[:chars]`` without splitting all of ``text``.

    Collapsing a prefix of ``text`` gives a prefix of collapsing all of it (a cut inside
    a word leaves a prefix of that word), so once a prefix yields ``chars`` characters
    those are the answer. Why: the input is up to 4 KiB for a 200-character preview.
    """
    size = max(4 * chars, 64)
    while size < len(text):
        out = " ".join(text[:size].split())
        if len(out) >= chars:
            return out[:chars]
        size *= 4
    return " ".join(text.split())[:chars]
