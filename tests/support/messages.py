"""Building test messages and checking what Merpati stored.

A stored message is the original bytes with three trace fields prepended, in any order:
``Return-Path: <sender>``, ``Delivered-To: rcpt`` and ``Received: ...`` (possibly folded),
followed by the fields of the checks (``Authentication-Results``, ``X-Spam-Status``,
``Merpati-Verdict``; see docs/checks.md). ``split_trace`` takes them apart so a test can
compare the rest byte for byte.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

TRACE_NAMES = {b"return-path", b"delivered-to", b"received"}
CHECK_NAMES = {b"authentication-results", b"x-spam-status", b"merpati-verdict"}  # after the trace
_FIELD = re.compile(rb"([A-Za-z][A-Za-z0-9-]*):[^\r\n]*\r\n(?:[ \t][^\r\n]*\r\n)*")


@dataclass(frozen=True)
class Stored:
    trace: dict[str, bytes]  # lower-case name -> unfolded value (without the name and colon)
    order: tuple[str, ...]
    original: bytes
    checks: dict[str, bytes] | None = None  # the check fields after the trace, same form

    @property
    def return_path(self) -> str:
        return self.trace["return-path"].decode("utf-8").strip()

    @property
    def delivered_to(self) -> str:
        return self.trace["delivered-to"].decode("utf-8").strip()

    @property
    def received(self) -> str:
        return self.trace["received"].decode("utf-8", "replace")


def split_trace(stored: bytes) -> Stored:
    """Peel the three trace fields off the top; each must appear exactly once."""
    pos = 0
    trace: dict[str, bytes] = {}
    order: list[str] = []
    while len(order) < 3:
        m = _FIELD.match(stored, pos)
        if not m or m.group(1).lower() not in TRACE_NAMES:
            break
        name = m.group(1).lower().decode()
        if name in trace:
            raise AssertionError(f"trace field {name} appears twice at the top: {stored[:600]!r}")
        raw = m.group(0)
        value = raw[len(m.group(1)) + 1 :]
        trace[name] = re.sub(rb"\r\n(?=[ \t])", b"", value).rstrip(b"\r\n")
        order.append(name)
        pos = m.end()
    missing = {n.decode() for n in TRACE_NAMES} - set(trace)
    if missing:
        raise AssertionError(
            f"stored message lacks trace field(s) {sorted(missing)} at the top: {stored[:600]!r}"
        )
    checks: dict[str, bytes] = {}
    while True:
        m = _FIELD.match(stored, pos)
        if not m or m.group(1).lower() not in CHECK_NAMES or m.group(1).lower().decode() in checks:
            break
        value = m.group(0)[len(m.group(1)) + 1 :]
        checks[m.group(1).lower().decode()] = re.sub(rb"\r\n(?=[ \t])", b"", value).rstrip(b"\r\n")
        pos = m.end()
    return Stored(trace=trace, order=tuple(order), original=stored[pos:], checks=checks)


def assert_delivered(stored: bytes, original: bytes, *, sender: str, recipients: set[str] | str) -> Stored:
    """The stored message is ``original`` byte-exact after the three trace fields."""
    parts = split_trace(stored)
    if parts.original != original:
        raise AssertionError(
            "stored bytes differ from what was sent (after the trace fields):\n"
            f"  sent   {len(original)} bytes: {original[:300]!r}...\n"
            f"  stored {len(parts.original)} bytes: {parts.original[:300]!r}..."
        )
    assert parts.return_path == f"<{sender}>", parts.return_path
    wanted = {recipients} if isinstance(recipients, str) else set(recipients)
    got = parts.delivered_to.strip("<>").lower()
    assert got in {r.lower() for r in wanted}, f"Delivered-To {parts.delivered_to!r} not in {wanted}"
    assert re.match(r"\s*from\s", parts.received), parts.received
    return parts


def token() -> str:
    return secrets.token_hex(8)


def make_message(
    *,
    sender: str,
    to: str,
    subject: str = "test",
    body: bytes | None = None,
    tok: str | None = None,
    extra_headers: bytes = b"",
) -> bytes:
    """A CRLF message ending in CRLF (so smtplib sends it unchanged), with a unique Message-ID,
    and a body line that starts with a dot (dot-stuffing must come back unstuffed)."""
    tok = tok or token()
    if body is None:
        body = (
            f"Hello, this is message {tok}.\r\n"
            ".a line starting with a dot\r\n"
            "..two dots\r\n"
            "\r\n"
            f"END-{tok}\r\n"
        ).encode()
    head = (
        f"From: <{sender}>\r\n"
        f"To: <{to}>\r\n"
        f"Subject: {subject}\r\n"
        f"Message-ID: <{tok}@client.test>\r\n"
        "Date: Thu, 27 Nov 2025 10:00:00 +0000\r\n"
        "MIME-Version: 1.0\r\n"
    ).encode("utf-8") + extra_headers
    return head + b"\r\n" + body
