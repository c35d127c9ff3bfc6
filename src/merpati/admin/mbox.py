"""mboxrd reading and writing, lossless for the bytes of every message.

Layout written (one message)::

    From <sender> <asctime UTC>\\n     the From_ line: envelope sender and internal date
    <message bytes, mboxrd-quoted>       every line matching ^>*From  gets one more ">"
    \\n                                   exactly one LF, always

Reading reverses it: a line starting with ``From `` opens a message; ``^>+From `` lines lose
one ``>``; the single line ending that the writer appended (the From_ line's own ending, LF,
or CRLF for a CRLF-style file) is removed from the end. So messages that end without a newline,
use CRLF or bare LF, or carry 8-bit bytes come back byte for byte. A foreign mbox written as
mboxo (no ``>From`` quoting) loses one ``>`` on lines that started with ``>From `` — the usual
mbox ambiguity. Flags are not written (that would alter the bytes); when reading, the
``Status:``/``X-Status:`` headers that mutt/Dovecot/Thunderbird write are turned into flags.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import BinaryIO

_QUOTE = re.compile(rb"^(>*From )", re.MULTILINE)
_UNQUOTE = re.compile(rb"^>(>*From )", re.MULTILINE)
_RETURN_PATH = re.compile(rb"^Return-Path:[ \t]*<?([^\s<>]+)>?[ \t]*\r?$", re.IGNORECASE | re.MULTILINE)
# mutt/Dovecot mbox flag headers: Status: R (read), O (old, no flag); X-Status: A F T D.
_STATUS_FLAGS = {
    b"status": {"R": "\\Seen"},
    b"x-status": {"A": "\\Answered", "F": "\\Flagged", "T": "\\Draft", "D": "\\Deleted"},
}
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass(frozen=True, slots=True)
class MboxMessage:
    data: bytes
    internaldate: datetime | None  # None when the From_ line had no readable date
    flags: frozenset[str]


def quote(data: bytes) -> bytes:
    return _QUOTE.sub(rb">\1", data)


def unquote(data: bytes) -> bytes:
    return _UNQUOTE.sub(rb"\1", data)


def from_line(data: bytes, internaldate: datetime) -> bytes:
    """``From sender date\\n``; the sender is the Return-Path address or MAILER-DAEMON."""
    sender = b"MAILER-DAEMON"
    head = header_block(data)
    match = _RETURN_PATH.search(head)
    if match and match.group(1) and all(33 <= b < 127 for b in match.group(1)):
        sender = match.group(1)
    return b"From " + sender + b" " + asctime(internaldate).encode("ascii") + b"\n"


def asctime(when: datetime) -> str:
    """``Mon Jan  1 00:00:00 2024`` in UTC, independent of the locale."""
    t = when.astimezone(timezone.utc)
    return f"{_DAYS[t.weekday()]} {_MONTHS[t.month - 1]} {t.day:2d} {t:%H:%M:%S} {t.year}"


def write_message(out: BinaryIO, data: bytes, internaldate: datetime) -> None:
    out.write(from_line(data, internaldate))
    out.write(quote(data))
    out.write(b"\n")


def read_mbox(source: BinaryIO) -> Iterator[MboxMessage]:
    """Yield every message of an mbox file in order (streaming: one message in memory)."""
    header: bytes | None = None
    lines: list[bytes] = []
    for line in source:
        if line.startswith(b"From "):
            if header is not None:
                yield _finish(header, lines)
            elif any(x.strip() for x in lines):
                raise ValueError("not an mbox file: the first line is not a From_ line")
            header, lines = line, []
        else:
            lines.append(line)
    if header is not None:
        yield _finish(header, lines)
    elif any(x.strip() for x in lines):
        raise ValueError("not an mbox file: the first line is not a From_ line")


def _finish(header: bytes, lines: list[bytes]) -> MboxMessage:
    data = b"".join(lines)
    ending = b"\r\n" if header.endswith(b"\r\n") else b"\n"
    if data.endswith(ending):
        data = data[: -len(ending)]
    data = unquote(data)
    return MboxMessage(data, parse_from_date(header), status_flags(data))


def parse_from_date(header: bytes) -> datetime | None:
    """The asctime date of a From_ line (UTC unless a numeric zone follows); None if unreadable."""
    words = header.decode("latin-1").split()
    for start in range(2, max(2, len(words) - 4)):
        try:
            when = datetime.strptime(" ".join(words[start : start + 5]), "%a %b %d %H:%M:%S %Y")
        except ValueError:
            continue
        zone = timezone.utc
        rest = words[start + 5 : start + 6]
        if rest and re.fullmatch(r"[+-]\d{4}", rest[0]):
            zone = datetime.strptime(rest[0], "%z").tzinfo or timezone.utc
        return when.replace(tzinfo=zone)
    return None


def header_block(data: bytes) -> bytes:
    """The header section (up to the first empty line), for cheap header lookups."""
    ends = [(i + len(sep)) for sep in (b"\r\n\r\n", b"\n\n") if (i := data.find(sep)) >= 0]
    return data[: min(ends)] if ends else data


def header_date(data: bytes) -> datetime | None:
    """The Date: header as an aware datetime, or None."""
    for line in header_block(data).splitlines():
        if line[:5].lower() == b"date:":
            try:
                when = parsedate_to_datetime(line[5:].decode("latin-1").strip())
            except (TypeError, ValueError):
                return None
            return when if when.tzinfo else when.replace(tzinfo=timezone.utc)
    return None


def status_flags(data: bytes) -> frozenset[str]:
    """Flags from ``Status:`` (R, O) and ``X-Status:`` (A, F, T, D) headers."""
    flags: set[str] = set()
    for line in header_block(data).splitlines():
        name, sep, value = line.partition(b":")
        if not sep:
            continue
        letters = _STATUS_FLAGS.get(name.strip().lower())
        if letters:
            flags.update(letters[c] for c in value.decode("latin-1").strip() if c in letters)
    return frozenset(flags)
