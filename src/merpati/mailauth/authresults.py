"""Authentication-Results (RFC 8601): build our field, and remove forged ones on receipt.

Building: one ``resinfo`` per method result, each on its own folded line::

    Authentication-Results: mx.b.test;
    	spf=pass smtp.mailfrom=alice@a.test;
    	dkim=pass header.d=a.test header.s=sel header.i=@a.test header.b="Ab/9xY+z";
    	dmarc=pass (p=reject dis=none) header.from=a.test

Every value that is not a plain token is written as a quoted-string, comments are reduced to
printable ASCII with ``()\\`` escaped, and CR/LF never reach the output (header injection).
``header.b`` carries the first 8 characters of the signature, more when needed to tell two
signatures of the message apart (RFC 6008 §4).

Removing (RFC 8601 §5): any Authentication-Results field whose authserv-id equals ours (case
insensitive, after CFWS, quoted or not) arriving from outside is removed before we add ours;
every other byte of the message stays as it was.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from .dkim import DkimResult
from .dmarc import DmarcResult
from .spf import SpfResult

__all__ = ["authentication_results", "authserv_id_of", "remove_authentication_results"]

_TOKEN = re.compile(r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+\Z")  # RFC 2045 token (no tspecials)
_LOCAL_AT_DOMAIN = re.compile(r"[!#$%&'*+\-/=?^_`{|}~.0-9A-Za-z]*@[A-Za-z0-9](?:[A-Za-z0-9.\-]*[A-Za-z0-9])?\Z")
_HOSTNAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.\-_]*[A-Za-z0-9])?\Z")
_FIELD_NAME = b"authentication-results"
_MAX_COMMENT = 120


def _value(text: str) -> str:
    """A property value: token, local@domain, or a quoted-string."""
    text = "".join(c for c in text if 0x20 <= ord(c) < 0x7F)
    if text and (_TOKEN.match(text) or _LOCAL_AT_DOMAIN.match(text)):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _comment(text: str) -> str:
    text = "".join(c for c in text if 0x20 <= ord(c) < 0x7F)[:_MAX_COMMENT]
    if not text:
        return ""
    return " (" + re.sub(r"([()\\])", r"\\\1", text) + ")"


def _spf_resinfo(spf: SpfResult) -> str:
    prop = "smtp.helo" if spf.identity == "helo" else "smtp.mailfrom"
    identity = spf.sender.rpartition("@")[2] if spf.identity == "helo" else spf.sender
    note = spf.problem if spf.result in ("temperror", "permerror") else ""
    return f"spf={spf.result}{_comment(note)} {prop}={_value(identity)}"


def _b_prefixes(results: Sequence[DkimResult]) -> list[str]:
    """RFC 6008: at least 8 characters, more until the prefixes are distinct."""
    prefixes = []
    for r in results:
        n = min(8, len(r.signature_b))
        while n < len(r.signature_b) and any(
            o is not r and o.signature_b[:n] == r.signature_b[:n] and o.signature_b != r.signature_b for o in results
        ):
            n += 1
        prefixes.append(r.signature_b[:n])
    return prefixes


def _dkim_resinfo(result: DkimResult, b: str) -> str:
    note = result.problem if result.result != "pass" else ""
    if result.testing:
        note = (note + "; " if note else "") + "key in test mode"
    parts = [f"dkim={result.result}{_comment(note)}"]
    if result.domain:
        parts.append(f"header.d={_value(result.domain)}")
    if result.selector:
        parts.append(f"header.s={_value(result.selector)}")
    if result.identity:
        parts.append(f"header.i={_value(result.identity)}")
    if result.algorithm:
        parts.append(f"header.a={_value(result.algorithm)}")
    if b:
        parts.append(f"header.b={_value(b)}")
    return " ".join(parts)


def _dmarc_resinfo(result: DmarcResult) -> str:
    details = []
    if result.record is not None:
        details.append(f"p={result.record.p}")
        if result.record.sp:
            details.append(f"sp={result.record.sp}")
        if result.record.pct != 100:
            details.append(f"pct={result.record.pct}")
        details.append(f"dis={result.disposition}")
    elif result.problem and result.result != "none":
        details.append(result.problem)
    comment = _comment(" ".join(details))
    return f"dmarc={result.result}{comment} header.from={_value(result.from_domain)}"


def authentication_results(
    authserv_id: str,
    *,
    spf: SpfResult | Sequence[SpfResult] | None = None,
    dkim: Sequence[DkimResult] | None = None,
    dmarc: DmarcResult | Sequence[DmarcResult] | None = None,
    extra: Sequence[str] = (),
) -> bytes:
    """The whole field, ``Authentication-Results: ...\\r\\n``. ``dkim=[]`` (an unsigned
    message) gives ``dkim=none``; ``None`` leaves the method out. ``extra`` resinfo strings
    (e.g. ``iprev=pass policy.iprev=192.0.2.1``) are appended as given (sanitised)."""
    if not _HOSTNAME.match(authserv_id) or len(authserv_id) > 255:
        raise ValueError("authserv-id must be a host name")
    infos: list[str] = []
    if spf is not None:
        for item in [spf] if isinstance(spf, SpfResult) else spf:
            infos.append(_spf_resinfo(item))
    if dkim is not None:
        if not dkim:
            infos.append("dkim=none")
        for result, b in zip(dkim, _b_prefixes(dkim)):
            infos.append(_dkim_resinfo(result, b))
    if dmarc is not None:
        for item in [dmarc] if isinstance(dmarc, DmarcResult) else dmarc:
            infos.append(_dmarc_resinfo(item))
    for info in extra:
        infos.append("".join(c for c in info if 0x20 <= ord(c) < 0x7F))
    body = ";\r\n\t".join(infos) if infos else "none"
    return f"Authentication-Results: {authserv_id};\r\n\t{body}\r\n".encode("ascii")


def _skip_cfws(value: bytes, pos: int) -> int:
    """Skip whitespace and (nested) comments; bounded by the value's length."""
    depth = 0
    while pos < len(value):
        c = value[pos : pos + 1]
        if depth:
            if c == b"\\":
                pos += 2
                continue
            depth += c == b"("
            depth -= c == b")"
        elif c == b"(":
            depth = 1
        elif c not in (b" ", b"\t", b"\r", b"\n"):
            return pos
        pos += 1
    return pos


def authserv_id_of(value: bytes) -> str | None:
    """The authserv-id of an Authentication-Results field value (lower-case), or None."""
    pos = _skip_cfws(value, 0)
    if value[pos : pos + 1] == b'"':
        m = re.compile(rb'"((?:[^"\\]|\\.)*)"', re.S).match(value, pos)
        if m is None:
            return None
        raw = re.sub(rb"\\(.)", rb"\1", m.group(1))
    else:
        m = re.compile(rb"[^\s;()\"]+").match(value, pos)
        if m is None:
            return None
        raw = m.group(0)
    try:
        return raw.decode("utf-8").strip().lower()
    except UnicodeDecodeError:
        return None


_LINE = re.compile(rb"[^\n]*\n|[^\n]+")


def remove_authentication_results(message: bytes, authserv_id: str) -> bytes:
    """``message`` without the header fields ``Authentication-Results`` carrying
    ``authserv_id``; the body and all other bytes are untouched."""
    ours = authserv_id.strip().lower()
    out: list[bytes] = []
    field: list[bytes] = []
    pos = 0
    removed = False

    def flush() -> None:
        nonlocal removed
        if not field:
            return
        raw = b"".join(field)
        name, colon, value = raw.partition(b":")
        if colon and name.rstrip(b" \t").lower() == _FIELD_NAME and authserv_id_of(value) == ours:
            removed = True
        else:
            out.append(raw)
        field.clear()

    for m in _LINE.finditer(message):
        line = m.group(0)
        if line in (b"\r\n", b"\n"):  # end of the header block
            break
        if line[:1] in (b" ", b"\t") and field:
            field.append(line)
        else:
            flush()
            field.append(line)
        pos = m.end()
    else:
        pos = len(message)
    flush()
    if not removed:
        return message
    return b"".join(out) + message[pos:]
