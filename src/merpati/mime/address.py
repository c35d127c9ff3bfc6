"""RFC 5322 §3.4 address lists, parsed leniently into IMAP ENVELOPE addresses.

Each address is ``[name, adl, mailbox, host]`` (raw strings or None), as in
RFC 3501 §7.4.2 / RFC 9051 §7.5.2.  Groups become ``[None, None, name, None]``
… ``[None, None, None, None]``.  Like Dovecot: a comment is the display name
when there is no phrase, the source route is kept as ``adl``, and a missing
local part or domain is filled with ``MISSING_MAILBOX`` / ``MISSING_DOMAIN``
(a NIL host would mean group syntax).  Never raises; at most ``max_addresses``
addresses per header (Postfix ``header_address_token_limit``), the rest is
dropped and the tokenizer stops there, so the cost is bounded.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

__all__ = ["parse_addresses", "MISSING_MAILBOX", "MISSING_DOMAIN"]

MISSING_MAILBOX = "MISSING_MAILBOX"
MISSING_DOMAIN = "MISSING_DOMAIN"

_TOKEN = re.compile(
    r'(?P<ws>[ \t\r\n]+)'
    r'|(?P<qs>"(?:[^"\\]|\\.)*"?)'
    r'|(?P<dl>\[[^\]]*\]?)'
    r'|(?P<sp>[<>,:;@.()])'
    r'|(?P<at>[^ \t\r\n"\[<>,:;@.()]+)',
    re.S,
)
_PARENS = re.compile(r"[()\\]")
_QUOTED_PAIR = re.compile(r"\\(.)", re.S)

# token kinds
_ATOM, _QS, _SPECIAL, _COMMENT, _DLIT = range(5)


def _tokens(raw: str) -> Iterator[tuple[int, str, bool]]:
    """Yield ``(kind, text, preceded_by_whitespace)``; comments are one token."""
    pos, n, ws = 0, len(raw), False
    while pos < n:
        m = _TOKEN.match(raw, pos)
        if m is None:  # pragma: no cover - the alternatives cover every char
            pos += 1
            continue
        kind = m.lastgroup
        if kind == "ws":
            ws, pos = True, m.end()
            continue
        text = m[0]
        if text == "(":
            depth, start, j = 1, m.end(), m.end()
            while depth and j < n:
                p = _PARENS.search(raw, j)
                if p is None:
                    j = n
                    break
                j = p.end()
                c = p[0]
                if c == "\\":
                    j += 1
                else:
                    depth += 1 if c == "(" else -1
            yield _COMMENT, raw[start:j - 1 if depth == 0 else j], ws
            pos, ws = min(j, n), True
            continue
        if kind == "qs":
            body = text[1:-1] if len(text) > 1 and text.endswith('"') else text[1:]
            yield _QS, _QUOTED_PAIR.sub(r"\1", body) if "\\" in body else body, ws
        elif kind == "sp":
            if text != ")":
                yield _SPECIAL, text, ws
        elif kind == "dl":
            yield _DLIT, text, ws
        else:
            yield _ATOM, text, ws
        ws, pos = False, m.end()


def _phrase(toks: list[tuple[int, str, bool]]) -> str | None:
    out: list[str] = []
    for kind, text, ws in toks:
        if kind == _COMMENT:
            continue
        if ws and out:
            out.append(" ")
        out.append(text)
    return "".join(out).strip(" \t") or None


def _address(toks: list[tuple[int, str, bool]]) -> list | None:
    """One mailbox: ``[phrase] "<" [route ":"] local "@" domain ">"`` or addr-spec."""
    comment = next((t for k, t, _ in toks if k == _COMMENT), None)
    if not any(k != _COMMENT for k, _, _ in toks):
        return None
    lt = next((i for i, t in enumerate(toks) if t[0] == _SPECIAL and t[1] == "<"), -1)
    if lt >= 0:
        name = _phrase(toks[:lt])
        spec = []
        for t in toks[lt + 1:]:
            if t[0] == _SPECIAL and t[1] == ">":
                break
            spec.append(t)
    else:
        name, spec = None, toks
    spec = [t for t in spec if t[0] != _COMMENT]
    adl = None
    if spec and spec[0][1] == "@" and spec[0][0] == _SPECIAL:
        colon = next((i for i, t in enumerate(spec) if t[0] == _SPECIAL and t[1] == ":"), -1)
        if colon >= 0:
            adl = "".join(t[1] for t in spec[:colon]) or None
            spec = spec[colon + 1:]
    at = -1
    for i in range(len(spec) - 1, -1, -1):
        if spec[i][0] == _SPECIAL and spec[i][1] == "@":
            at = i
            break
    local_toks, host_toks = (spec[:at], spec[at + 1:]) if at >= 0 else (spec, [])
    local = "".join(t[1] for t in local_toks) or MISSING_MAILBOX
    host = "".join(t[1] for t in host_toks) or MISSING_DOMAIN
    if name is None and comment:
        name = comment.strip(" \t") or None
    return [name, adl, local, host]


_WSP_RUN = re.compile(r"[ \t]+")
_ATEXT = r'[^<>()\s@",:;\\\[\]]+'
_SIMPLE = re.compile(
    r'[ \t]*(?:(?:"((?:[^"\\\r\n]|\\.)*)"|([^",<>()\[\]:;@\\]*?))[ \t]*<(' + _ATEXT + r')@(' + _ATEXT
    + r')>|(' + _ATEXT + r')@(' + _ATEXT + r'))[ \t]*(?:,|$)'
)


def _simple(raw: str, max_addresses: int) -> list[list] | None:
    """Fast path for the usual ``[name] <a@b>, c@d`` lists; None if anything
    else (comments, groups, routes, folding, oddities) appears."""
    out: list[list] = []
    pos, n = 0, len(raw)
    while pos < n and len(out) < max_addresses:
        m = _SIMPLE.match(raw, pos)
        if m is None or m.end() == pos:
            return None
        if m[3] is not None:
            if m[1] is not None:
                name = _QUOTED_PAIR.sub(r"\1", m[1]) if "\\" in m[1] else m[1]
                name = name.strip(" \t") or None
            else:
                name = _WSP_RUN.sub(" ", m[2]).strip(" \t") or None
            out.append([name, None, m[3], m[4]])
        else:
            out.append([None, None, m[5], m[6]])
        pos = m.end()
    return out


def parse_addresses(raw: str, max_addresses: int = 10_240) -> list[list]:
    fast = _simple(raw, max_addresses)
    return fast if fast is not None else _slow(raw, max_addresses)


def _slow(raw: str, max_addresses: int) -> list[list]:
    """The token parser (RFC 5322 §3.4 with groups, routes, comments)."""
    out: list[list] = []
    item: list[tuple[int, str, bool]] = []
    in_angle = in_group = False
    count = 0

    def finish() -> None:
        nonlocal count
        if item:
            a = _address(item)
            if a is not None:
                out.append(a)
                count += 1
            item.clear()

    for tok in _tokens(raw):
        if count >= max_addresses:
            break
        kind, text = tok[0], tok[1]
        if kind == _SPECIAL and not in_angle:
            if text == ",":
                finish()
                continue
            if text == ":" and not in_group and not any(t[1] == "@" for t in item):
                out.append([None, None, _phrase(item) or "", None])
                item.clear()
                in_group = True
                continue
            if text == ";" and in_group:
                finish()
                out.append([None, None, None, None])
                in_group = False
                continue
            if text == "<":
                in_angle = True
        elif kind == _SPECIAL and text == ">":
            in_angle = False
        item.append(tok)
    else:
        finish()
    if in_group:
        out.append([None, None, None, None])
    return out
