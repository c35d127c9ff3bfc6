"""IMAP views of a parsed message: ENVELOPE, BODY/BODYSTRUCTURE (RFC 3501
§7.4.2, RFC 9051 §7.5.2), and ``render_imap`` to IMAP syntax.

Values are nested Python: None is NIL, bytes a string, int a number, list a
parenthesised list.  Strings are the raw header bytes (IMAP sends them
undecoded).  Matches Dovecot 2.3 where the RFCs leave room:
  * text/* (or any type) with no parameters: text gets ("charset" "us-ascii"),
    other types NIL; absent Content-Transfer-Encoding is "7bit";
  * lines = number of LF in the body (Dovecot: "a\\r\\nb" is 1 line, "a" is 0);
  * a multipart with no parts gets one empty text/plain part (the grammar
    needs ``1*body``);
  * message/global is structured like message/rfc822 (RFC 9051; Dovecot 2.3
    treats it as a leaf).
"""

from __future__ import annotations

import re

__all__ = ["envelope_value", "bodystructure_value", "render_imap"]

_DEFAULT_TEXT_PARAMS = [b"charset", b"us-ascii"]


def _b(s: str | None) -> bytes | None:
    return None if s is None else s.encode("latin-1")


def _addr_list(addrs: list | None) -> list | None:
    if not addrs:
        return None
    return [[_b(x) for x in a] for a in addrs]


def envelope_value(env: list) -> list:
    return [_b(env[0]), _b(env[1])] + [_addr_list(env[i]) for i in range(2, 8)] + [_b(env[8]), _b(env[9])]


def _params(params: list | None) -> list | None:
    if not params:
        return None
    out: list = []
    for k, v in params:
        out.append(k.encode("latin-1"))
        out.append(v.encode("latin-1"))
    return out


def _ext(part: dict) -> list:
    disp = part.get("s")
    return [
        _params(part.get("p")) if part.get("k") == 1 else _b(part.get("m")),
        None if disp is None else [_b(disp[0]), _params(disp[1])],
        None if "l" not in part else [x.encode("latin-1") for x in part["l"]],
        _b(part.get("o")),
    ]


def _empty_text(extended: bool) -> list:
    v: list = [b"text", b"plain", list(_DEFAULT_TEXT_PARAMS), None, None, b"7bit", 0, 0]
    return v + [None] * 4 if extended else v


def _plain_7bit(p: dict) -> bool:
    """Dovecot writes a plain 7-bit text/plain message in the default form
    (lower case, ``("charset" "us-ascii")``): message_part_data_is_plain_7bit."""
    if p.get("k") or p["t"][0].lower() != "text" or p["t"][1].lower() != "plain":
        return False
    params = p.get("p")
    if params and (len(params) > 1 or params[0][0].lower() != "charset"
                   or params[0][1].lower() != "us-ascii"):
        return False
    if p.get("x", "7bit").lower() != "7bit":
        return False
    return not any(k in p for k in "idmslo")


def bodystructure_value(parts: list[dict], extended: bool = True) -> list:
    """Built bottom-up over the pre-ordered part list: no recursion."""
    out: list = [None] * len(parts)
    for i in range(len(parts) - 1, -1, -1):
        p = parts[i]
        kind = p.get("k", 0)
        ctype, sub = p["t"]
        if kind == 1:
            node = [out[c] for c in p.get("c", ())] or [_empty_text(extended)]
            node.append(sub.encode("latin-1"))
            if extended:
                node.extend(_ext(p))
        elif i == 0 and _plain_7bit(p):
            node = [b"text", b"plain", list(_DEFAULT_TEXT_PARAMS), None, None, b"7bit", p["e"] - p["b"], p["n"]]
            if extended:
                node += [None] * 4
        else:
            params = _params(p.get("p"))
            if ctype.lower() == "text" and not any(k.lower() == "charset" for k, _ in p.get("p", ())):
                params = (params or []) + _DEFAULT_TEXT_PARAMS
            if kind == 2:
                ctype, sub = "message", "rfc822" if sub.lower() == "rfc822" else sub
            node = [ctype.encode("latin-1"), sub.encode("latin-1"), params, _b(p.get("i")),
                    _b(p.get("d")), _b(p.get("x")) or b"7bit", p["e"] - p["b"]]
            if kind == 2:
                child = p["c"][0]
                node += [envelope_value(parts[child]["v"]), out[child], p["n"]]
            elif ctype.lower() == "text":
                node.append(p["n"])
            if extended:
                node.extend(_ext(p))
        out[i] = node
    return out[0]


_UNSAFE = re.compile(rb"[^\x20-\x7e]")
_MAX_QUOTED = 1024


def _string(s: bytes) -> bytes:
    special = s.count(b'"') + s.count(b"\\")
    if len(s) <= _MAX_QUOTED and special <= 4 and _UNSAFE.search(s) is None:
        if special:
            s = s.replace(b"\\", b"\\\\").replace(b'"', b'\\"')
        return b'"' + s + b'"'
    return b"{%d}\r\n" % len(s) + s


def render_imap(value: object) -> bytes:
    """Serialise nested values to IMAP syntax (iteratively, no recursion).

    A list whose first items are lists writes that leading run without
    separators: RFC 3501 ``body-type-mpart = 1*body SP media-subtype`` and
    ``env-from = "(" 1*address ")"``; everything else is separated by SP.
    Strings are quoted when short and printable, else literals.
    """
    out: list[bytes] = []
    stack: list[tuple[list, int, bool]] = []  # (list, next index, still in leading run of lists)
    cur: object = value
    while True:
        if cur is None:
            out.append(b"NIL")
        elif isinstance(cur, bool):
            raise TypeError("bool is not an IMAP value")
        elif isinstance(cur, int):
            out.append(b"%d" % cur)
        elif isinstance(cur, (bytes, bytearray, memoryview)):
            out.append(_string(bytes(cur)))
        elif isinstance(cur, str):
            out.append(_string(cur.encode("utf-8")))
        elif isinstance(cur, (list, tuple)):
            out.append(b"(")
            stack.append((cur, 0, True))
        else:
            raise TypeError(f"not an IMAP value: {type(cur).__name__}")
        while stack:
            lst, i, run = stack[-1]
            if i >= len(lst):
                stack.pop()
                out.append(b")")
                continue
            item = lst[i]
            is_list = isinstance(item, (list, tuple))
            if i > 0 and not (run and is_list):
                out.append(b" ")
            stack[-1] = (lst, i + 1, run and is_list)
            cur = item
            break
        else:
            return b"".join(out)
