"""Helpers shared by the storage tests and the durability child process.

``parse(data)`` is ``merpati.mime.parse_message`` once that exists; until then a tiny
stand-in with the same ``to_json``/``from_json`` contract. ``PARSED_TYPE`` is what the store
must use to rebuild stored parses (None: the store's default, merpati.mime.ParsedMessage).
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta, timezone
from typing import Any


class StandInParsed:
    """Just enough of ParsedMessage for the storage contract: to_json/from_json + properties."""

    def __init__(self, fields: dict[str, Any]) -> None:
        self.fields = fields

    @classmethod
    def parse(cls, data: bytes) -> StandInParsed:
        head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1")
        subject = None
        for line in head.split("\r\n"):
            if line.lower().startswith("subject:"):
                subject = line[8:].strip()
        return cls({"subject": subject, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()})

    @property
    def subject(self) -> str | None:
        return self.fields["subject"]

    def to_json(self) -> str:
        return json.dumps(self.fields, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> StandInParsed:
        return cls(json.loads(text))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StandInParsed) and other.fields == self.fields


def _real_parser() -> Any:
    try:
        from merpati.mime import ParsedMessage, parse_message  # type: ignore[attr-defined]
    except ImportError:
        return None
    if not (hasattr(ParsedMessage, "from_json") and hasattr(ParsedMessage, "to_json")):
        return None
    return parse_message


_REAL = _real_parser()
parse = _REAL if _REAL is not None else StandInParsed.parse
PARSED_TYPE = None if _REAL is not None else StandInParsed
USING_REAL_MIME = _REAL is not None

T0 = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=timezone(timedelta(hours=7)))


def message(subject: str = "hello", body: bytes = b"Hi there.\r\n") -> bytes:
    return (
        b"From: Alice <alice@example.org>\r\nTo: bob@example.com\r\n"
        b"Subject: " + subject.encode() + b"\r\nMessage-ID: <" + subject.encode() + b"@example.org>\r\n"
        b"Date: Wed, 01 May 2024 12:00:00 +0700\r\n\r\n" + body
    )


def durable_message(token: str) -> bytes:
    """A message whose whole content follows from its token (sizes vary to span pages)."""
    n = int(token.rsplit("-", 1)[1])
    body = (f"{token} ".encode() * (50 + (n * 37) % 900)) + b"\r\n"
    return message(token, body)


def token_of(data: bytes) -> str:
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    for line in head.split("\r\n"):
        if line.startswith("Subject: "):
            return line[len("Subject: ") :]
    raise ValueError("no token")
