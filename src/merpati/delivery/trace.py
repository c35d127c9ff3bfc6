"""Trace header fields added at delivery: Return-Path, Delivered-To and Received.

Nothing a client sent may inject a header line: every client-supplied value (HELO name,
addresses, reverse DNS names) passes through ``neuter`` before it is written (Postfix runs
``printable()`` then ``neuter()`` for the same reason; the Exim 2003 bare-LF hostname incident
shows why).
"""

from __future__ import annotations

import itertools
import os
import time
from datetime import datetime, timezone

from merpati.delivery.envelope import ClientInfo

DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
NEUTER = str.maketrans({c: "?" for c in ' <>()\\";@'})
MAX_FIELD = 200


def printable(text: str, *, allow_utf8: bool = False) -> str:
    text = text[:MAX_FIELD]
    if text.isascii() and text.isprintable() and " " not in text:
        return text
    out = []
    for ch in text[:MAX_FIELD]:
        code = ord(ch)
        if 0x21 <= code <= 0x7E or (allow_utf8 and code > 0x9F and ch.isprintable()):
            out.append(ch)
        else:
            out.append("?")
    return "".join(out)


def neuter(text: str) -> str:
    return printable(text).translate(NEUTER)


def safe_address(address: str, *, allow_utf8: bool) -> str:
    return printable(address, allow_utf8=allow_utf8).replace("<", "?").replace(">", "?")


class QueueIds:
    """Postfix-like ids: time in microseconds, then a per-process counter; unique per node.

    (os.urandom costs ~70 µs a call on this kind of machine: too much once per message.)
    """

    def __init__(self) -> None:
        self._counter = itertools.count()
        self._salt = os.getpid() & 0xFFF

    def next(self) -> str:
        return f"{time.time_ns() // 1000:X}{self._salt:03X}{next(self._counter) & 0xFFFF:04X}"


def protocol_name(client: ClientInfo, *, smtputf8: bool) -> str:
    """RFC 3848 / RFC 6531 'with' keywords."""
    base = "UTF8SMTP" if smtputf8 else ("ESMTP" if client.esmtp else "SMTP")
    if client.esmtp or smtputf8:
        base += "S" if client.tls else ""
        base += "A" if client.authenticated_as else ""
    return base


def received(
    *,
    client: ClientInfo,
    hostname: str,
    queue_id: str,
    recipient: str | None,
    smtputf8: bool,
    when: datetime,
) -> bytes:
    helo = neuter(client.helo) or "unknown"
    rdns = neuter(client.reverse_name) if client.reverse_name else "unknown"
    ip = client.ip if ":" not in client.ip else f"IPv6:{client.ip}"
    lines = [
        f"Received: from {helo} ({rdns} [{neuter(ip)}])",
        f"\tby {neuter(hostname)} (Merpati) with {protocol_name(client, smtputf8=smtputf8)} id {queue_id}",
    ]
    if recipient is not None:
        lines.append(f"\tfor <{safe_address(recipient, allow_utf8=smtputf8)}>; {rfc5322_date(when)}")
    else:
        lines[-1] += ";"
        lines.append(f"\t{rfc5322_date(when)}")
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


def return_path(sender: str, *, smtputf8: bool) -> bytes:
    return f"Return-Path: <{safe_address(sender, allow_utf8=smtputf8)}>\r\n".encode("utf-8")


def delivered_to(address: str) -> bytes:
    return f"Delivered-To: {safe_address(address, allow_utf8=True)}\r\n".encode("utf-8")


def rfc5322_date(when: datetime) -> str:
    """RFC 5322 §3.3 date-time, independent of the locale (strftime's %a/%b are not)."""
    offset = when.utcoffset()
    minutes = int(offset.total_seconds()) // 60 if offset is not None else 0
    sign = "+" if minutes >= 0 else "-"
    minutes = abs(minutes)
    return (
        f"{DAYS[when.weekday()]}, {when.day:02d} {MONTHS[when.month - 1]} {when.year:04d} "
        f"{when.hour:02d}:{when.minute:02d}:{when.second:02d} {sign}{minutes // 60:02d}{minutes % 60:02d}"
    )


def now() -> datetime:
    return datetime.now(timezone.utc).astimezone()
