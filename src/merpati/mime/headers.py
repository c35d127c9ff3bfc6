"""Header blocks: splitting into fields, and the MIME fields of RFC 2045,
2183 (Content-Disposition), 3282 (Content-Language) and 2231 (parameters).

All values are raw strings (one char per byte, see :mod:`.text`).
"""

from __future__ import annotations

import re

from .limits import MimeLimitError, MimeLimits

__all__ = ["split_fields", "parse_content_type", "parse_params", "parse_disposition",
           "parse_language", "param_get", "raw_field_lines"]

_WSP = b" \t"


def split_fields(block: bytes, limits: MimeLimits) -> list[list[str]]:
    """Split a header block into ``[name, value]`` pairs.

    RFC 5322 §2.2.3: a line starting with WSP continues the previous field;
    the value is unfolded by removing CR and LF (the folding WSP stays, a
    folding TAB becomes SP as in Dovecot), and leading WSP after the colon is
    dropped.  Lines without a colon are not
    fields and are skipped (they remain in the raw bytes for BODY[HEADER]).
    Raises MimeLimitError for one field over ``limits.max_header_field``.
    """
    max_field = limits.max_header_field
    fields: list[list[str]] = []
    name: str | None = None
    value = ""
    chunks: list[str] | None = None  # only for folded fields
    size = 0
    # Why str and replace: one latin-1 decode of the whole block instead of two per
    # field, and dropping the CR of every CRLF up front is exactly "strip one trailing
    # CR per line" (a lone CR at the very end is the last line's trailing CR).
    text = block.decode("latin-1").replace("\r\n", "\n")
    if text[-1:] == "\r":
        text = text[:-1]
    for line in text.split("\n"):
        first = line[:1]
        if first == " " or first == "\t":
            if name is not None:
                # unfolding keeps the folding WSP; a TAB becomes SP (Dovecot
                # MESSAGE_HEADER_PARSER_FLAG_CLEAN_ONELINE)
                if chunks is None:
                    chunks = [value]
                chunks.append(" " + line[1:] if first == "\t" else line)
                size += len(line) + 2
                if size > max_field:
                    raise MimeLimitError("header field too long")
            continue
        if name is not None:
            fields.append([name, (value if chunks is None else "".join(chunks)).lstrip(" \t")])
            name = None
        colon = line.find(":")
        if colon < 0:
            continue
        size = len(line) + 2
        if size > max_field:
            raise MimeLimitError("header field too long")
        name = line[:colon].rstrip(" \t")
        value = line[colon + 1:]
        chunks = None
    if name is not None:
        fields.append([name, (value if chunks is None else "".join(chunks)).lstrip(" \t")])
    return fields


_LINE = re.compile(rb"[^\n]*\n|[^\n]+")


def raw_field_lines(block: bytes) -> list[tuple[bytes, bytes]]:
    """``(lower-case name, raw bytes incl. folding and line ends)`` per field,
    for BODY[HEADER.FIELDS ...]; stops at the blank line."""
    out: list[tuple[bytes, bytes]] = []
    for m in _LINE.finditer(block):
        line = m[0]
        if line[:1] in (b" ", b"\t"):
            if out:
                out[-1] = (out[-1][0], out[-1][1] + line)
            continue
        if line in (b"\n", b"\r\n"):
            break
        colon = line.find(b":")
        # a non-field line still swallows its continuation lines
        name = line[:colon].rstrip(_WSP).lower() if colon >= 0 else b"\x00"
        out.append((name, line))
    return out


# RFC 2045 §5.1: type "/" subtype *(";" parameter); tspecials excluded from tokens.
_CTYPE = re.compile(r'[ \t\r\n]*([^ \t\r\n/;()<>@,:\\"\[\]?=]+)[ \t\r\n]*(?:/[ \t\r\n]*([^ \t\r\n;()<>@,:\\"\[\]?=]*))?')
_PARAM = re.compile(r';[ \t\r\n]*([^ \t\r\n=;"]+)[ \t\r\n]*=[ \t\r\n]*(?:"((?:[^"\\]|\\.)*)"?|([^;]*))', re.S)
_QUOTED_PAIR = re.compile(r"\\(.)", re.S)
_CONT = re.compile(r"^(.+?)\*(?:(\d{1,3})(\*?))?$")


def parse_content_type(value: str, limits: MimeLimits) -> tuple[str, str, list[list[str]]] | None:
    """``(type, subtype, params)`` with case preserved; None if unparseable."""
    m = _CTYPE.match(value)
    if m is None or not m[2]:
        return None  # RFC 2045 §5.2: invalid → the default (Dovecot differs)
    return m[1], m[2], parse_params(value, m.end(), limits)


def parse_params(value: str, pos: int, limits: MimeLimits) -> list[list[str]]:
    """Parameters after ``pos`` as ``[name, value]``, at most ``limits.max_params``
    (the rest is dropped), RFC 2231 continuations merged as Dovecot does:
    ``name*0*=a; name*1=b`` → ``["name*", "ab"]`` (charset left for the client)."""
    params: list[list[str]] = []
    conts: dict[str, list] = {}
    n = 0
    for m in _PARAM.finditer(value, pos):
        n += 1
        if n > limits.max_params:
            break
        key = m[1]
        if m[2] is not None:
            val = _QUOTED_PAIR.sub(r"\1", m[2]) if "\\" in m[2] else m[2]
        else:
            val = m[3].rstrip(" \t\r\n")
        c = _CONT.match(key)
        if c is None:
            params.append([key, val])
            continue
        base = c[1]
        ent = conts.get(base.lower())
        if ent is None:
            ent = conts[base.lower()] = [len(params), base, {}]
        if c[2] is None:  # name*=charset'lang'value: one extended segment
            ent[2].setdefault(-1, (True, val))
        else:
            ent[2].setdefault(int(c[2]), (bool(c[3]), val))
    # Dovecot's rfc2231_parse order: plain parameters first, then the RFC 2231
    # ones sorted by name, continuations merged.
    merged = []
    for _, base, segs in sorted(conts.values(), key=lambda e: e[1].lower()):
        first_ext = segs[min(segs)][0]
        merged.append([base + "*" if first_ext else base, "".join(v for _, (_, v) in sorted(segs.items()))])
    return params + merged


def parse_disposition(value: str, limits: MimeLimits) -> list | None:
    m = _CTYPE.match(value)
    if m is None:
        return None
    return [m[1], parse_params(value, m.end(), limits) or None]


_LANG = re.compile(r"[^ \t\r\n,()]+")


def parse_language(value: str, limits: MimeLimits) -> list[str] | None:
    langs = _LANG.findall(value)[: limits.max_params]
    return langs or None


def param_get(params: list[list[str]] | None, name: str) -> tuple[str, bool] | None:
    """Find a parameter by case-insensitive name: ``(value, is_rfc2231_extended)``."""
    if not params:
        return None
    name = name.lower()
    for k, v in params:
        kl = k.lower()
        if kl == name:
            return v, False
        if kl == name + "*":
            return v, True
    return None
