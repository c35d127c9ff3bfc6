"""Backend-neutral rules shared by every store: name normalisation, validation, flags, dates.

Both backends call these pure functions so that their semantics stay identical; the
conformance suite (tests/storage/test_conformance.py) checks the result.

* Domains are lower-cased. An address keeps its local part as given, its domain lower-cased;
  lookups use ``address_key`` (the whole address lower-cased), unique per store.
* Text that reaches the database must be valid UTF-8 without control characters (NUL cannot
  be stored in PostgreSQL ``text`` at all); creating something with such a name raises
  ``InvalidInput``, looking it up simply finds nothing (``lookup_key`` returns None).
* Flags are a set of strings. System flags compare case-insensitively and are stored in their
  canonical spelling (``\\seen`` → ``\\Seen``); ``\\Recent`` is session state and is dropped.
* Dates are stored as (microseconds since the epoch, UTC offset in seconds) so that both
  backends give back the same aware datetime, in the zone it was given in.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from typing import Any

from merpati.storage.api import InvalidInput
from merpati.storage.models import INBOX, FlagMode, MessageEnvelope

_SYSTEM_FLAGS = {f.lower(): f for f in ("\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft")}
_DROPPED_FLAGS = frozenset({"\\recent"})
SEEN = "\\Seen"

# Longest text kept in the search columns (the full parse is stored beside them).
_SEARCH_COLUMN_MAX = 998
_PREVIEW_MAX = 256
# Largest number of UIDs carried by one event (PostgreSQL NOTIFY payloads stay < 8000 bytes).
MAX_UIDS_PER_EVENT = 500


def _has_bad_chars(text: str) -> bool:
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates (e.g. from surrogateescape)
        return True
    return False


def check_text(text: str, what: str) -> str:
    """Return ``text`` if it is storable (non-empty, UTF-8, no control characters)."""
    if not isinstance(text, str) or not text or _has_bad_chars(text):
        raise InvalidInput(f"invalid {what}: {text!r}")
    return text


def normalize_domain(name: str) -> str:
    name = check_text(name, "domain").strip().lower()
    if not name or "@" in name or " " in name:
        raise InvalidInput(f"invalid domain: {name!r}")
    return name


def split_address(address: str, *, allow_empty_local: bool = False) -> tuple[str, str]:
    """Split "local@domain" into (local as given, lower-cased domain). InvalidInput if malformed."""
    check_text(address, "address")
    local, sep, domain = address.rpartition("@")
    if not sep or (not local and not allow_empty_local):
        raise InvalidInput(f"invalid address: {address!r}")
    return local, normalize_domain(domain)


def normalize_address(address: str) -> tuple[str, str, str]:
    """(stored address, lookup key, domain) for an account address."""
    local, domain = split_address(address)
    stored = f"{local}@{domain}"
    return stored, stored.lower(), domain


def normalize_alias_source(source: str) -> tuple[str, str, str]:
    """(stored source, lookup key, domain); "@domain" is the catch-all."""
    local, domain = split_address(source, allow_empty_local=True)
    stored = f"{local}@{domain}"
    return stored, stored.lower(), domain


def lookup_key(address: str) -> str | None:
    """The lookup key of an address or alias source, or None when it cannot name anything."""
    try:
        local, domain = split_address(address, allow_empty_local=True)
    except InvalidInput:
        return None
    return f"{local}@{domain}".lower()


def lookup_domain(name: str) -> str | None:
    try:
        return normalize_domain(name)
    except InvalidInput:
        return None


def normalize_targets(targets: Iterable[str]) -> list[tuple[str, str]]:
    """Alias targets in order, de-duplicated case-insensitively: [(target, key)]."""
    if isinstance(targets, str):
        raise InvalidInput("alias targets must be a sequence of addresses, not a string")
    out: dict[str, str] = {}
    for t in targets:
        t = check_text(t, "alias target").strip()
        if not t:
            raise InvalidInput("empty alias target")
        out.setdefault(t.lower(), t)
    return [(t, k) for k, t in out.items()]


# Longest mailbox name the store holds, in UTF-8 bytes (Dovecot's limit is near this too).
MAX_MAILBOX_NAME_BYTES = 1024


def normalize_mailbox_name(name: str) -> str:
    """INBOX is case-insensitive (and so is the INBOX/ prefix); other names are kept as given."""
    check_text(name, "mailbox name")
    if len(name) > MAX_MAILBOX_NAME_BYTES or len(name.encode("utf-8")) > MAX_MAILBOX_NAME_BYTES:
        raise InvalidInput(f"mailbox name longer than {MAX_MAILBOX_NAME_BYTES} bytes")
    if name.upper() == INBOX:
        return INBOX
    if name[:6].upper() == INBOX + "/":
        return INBOX + name[5:]
    return name


def new_mailbox_name(name: str) -> str:
    """A name for a mailbox to create or rename to: normalised, with no empty hierarchy level
    ("/a", "a//b" and "a/" are InvalidInput: IMAP's trailing-delimiter CREATE is the caller's)."""
    name = normalize_mailbox_name(name)
    if any(part == "" for part in name.split("/")):
        raise InvalidInput(f"mailbox name with an empty hierarchy level: {name!r}")
    return name


def superiors(name: str) -> list[str]:
    """The superior names of ``name``, outermost first: "a/b/c" → ["a", "a/b"]."""
    parts = name.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


def lookup_mailbox_name(name: str) -> str | None:
    try:
        return normalize_mailbox_name(name)
    except InvalidInput:
        return None


# -- flags ---------------------------------------------------------------------------------


def normalize_flags(flags: Iterable[str]) -> frozenset[str]:
    if isinstance(flags, str):
        raise InvalidInput("flags must be a set of strings, not a string")
    out: set[str] = set()
    for f in flags:
        if not isinstance(f, str) or not f or " " in f or _has_bad_chars(f):
            raise InvalidInput(f"invalid flag: {f!r}")
        low = f.lower()
        if low in _DROPPED_FLAGS:
            continue
        out.add(_SYSTEM_FLAGS.get(low, f))
    return frozenset(out)


def apply_flags(current: frozenset[str], flags: frozenset[str], mode: FlagMode) -> frozenset[str]:
    if mode is FlagMode.REPLACE:
        return flags
    if mode is FlagMode.ADD:
        return current | flags
    if mode is FlagMode.REMOVE:
        return current - flags
    raise InvalidInput(f"unknown flag mode {mode!r}")


def flags_sorted(flags: frozenset[str]) -> list[str]:
    return sorted(flags)


# -- dates ---------------------------------------------------------------------------------

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def dt_to_parts(dt: datetime) -> tuple[int, int]:
    """(microseconds since the epoch, UTC offset in seconds) of an aware datetime."""
    if not isinstance(dt, datetime) or dt.tzinfo is None or dt.utcoffset() is None:
        raise InvalidInput(f"datetime must be timezone-aware: {dt!r}")
    offset = dt.utcoffset()
    assert offset is not None
    delta = dt - _EPOCH
    us = (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds
    return us, int(offset.total_seconds())


_ZONES: dict[int, timezone] = {0: timezone.utc}
_DATES: dict[tuple[int, int], datetime] = {}  # (us, offset) -> datetime; datetimes are immutable
_MAX_DATES = 20_000


def parts_to_dt(us: int, offset_s: int) -> datetime:
    # Called twice for every message row a listing reads (internal date, save date), and the
    # same rows are listed again and again (SELECT, FETCH, STORE, SEARCH of one mailbox): the
    # conversion was ~6% of the IMAP server's time, a dictionary hit costs a tenth of it.
    key = (us, offset_s)
    dt = _DATES.get(key)
    if dt is None:
        dt = _EPOCH + timedelta(microseconds=us)
        if offset_s:
            tz = _ZONES.get(offset_s)
            if tz is None:
                tz = timezone(timedelta(seconds=offset_s))
                if len(_ZONES) < 256:
                    _ZONES[offset_s] = tz
            dt = dt.astimezone(tz)
        if len(_DATES) >= _MAX_DATES:
            _DATES.clear()
        _DATES[key] = dt
    return dt


def now_parts() -> tuple[int, int]:
    return dt_to_parts(datetime.now(timezone.utc))


def uidvalidity_floor() -> int:
    """The lowest acceptable next UIDVALIDITY: the current time in seconds (fits 32 bits until 2106).

    Stores allocate ``max(previous + 1, uidvalidity_floor())`` from a counter row, so two
    mailboxes never share one and a mailbox re-created with the same name gets a new one.
    """
    return int(time.time()) & 0xFFFFFFFF or 1


# -- parsed message search columns ------------------------------------------------------------


def _clean(value: Any, limit: int) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        value = value.isoformat()
    elif isinstance(value, (list, tuple)):
        value = ", ".join(str(v) for v in value)
    elif not isinstance(value, str):
        value = str(value)
    value = value.encode("utf-8", "replace").decode("utf-8").replace("\x00", "\ufffd")
    return value[:limit]


def search_columns(parsed: Any) -> tuple[str | None, str | None, str | None, str | None, str | None]:
    """(subject, message_id, from, date, preview) from whatever the parsed message offers."""
    def get(*names: str) -> Any:
        for n in names:
            v = getattr(parsed, n, None)
            if callable(v):
                continue
            if v is not None:
                return v
        return None

    return (
        _clean(get("subject"), _SEARCH_COLUMN_MAX),
        _clean(get("message_id"), _SEARCH_COLUMN_MAX),
        _clean(get("from_", "from_addr", "sender"), _SEARCH_COLUMN_MAX),
        _clean(get("date"), _SEARCH_COLUMN_MAX),
        _clean(get("preview"), _PREVIEW_MAX),
    )


def parsed_to_text(parsed: Any) -> str:
    text = parsed.to_json()
    if not isinstance(text, str):
        raise InvalidInput("ParsedMessage.to_json() must return str")
    if "\x00" in text or _has_bad_chars_strict(text):
        # PostgreSQL text holds neither NUL nor lone surrogates: re-escape (same JSON value).
        import json

        text = json.dumps(json.loads(text), ensure_ascii=True)
    return text


def _has_bad_chars_strict(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def split_uids(uids: list[int]) -> list[tuple[int, ...]]:
    """Chunks of at most MAX_UIDS_PER_EVENT UIDs, so one event stays small."""
    return [tuple(uids[i : i + MAX_UIDS_PER_EVENT]) for i in range(0, len(uids), MAX_UIDS_PER_EVENT)] or [()]


def clean_uids(uids: Iterable[int]) -> list[int]:
    out = set()
    for u in uids:
        if isinstance(u, bool) or not isinstance(u, int):
            raise InvalidInput(f"invalid UID {u!r}")
        if 1 <= u <= 0xFFFFFFFF:
            out.add(u)
    return sorted(out)


def clean_modseq(value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInput(f"invalid MODSEQ {value!r}")
    return min(value, 2**62)


def clean_limit(value: int | None, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**62:
        raise InvalidInput(f"invalid {what} {value!r}")
    return value


def default_parsed_type() -> Any:
    """merpati.mime.ParsedMessage, imported on first use (stores accept another via parsed_type)."""
    from merpati.mime import ParsedMessage  # type: ignore[attr-defined]

    return ParsedMessage


@dataclass(frozen=True, slots=True)
class PreparedDelivery:
    """A Delivery checked and converted on the caller's side, ready for any backend."""

    account_id: int
    mailbox: str
    data: bytes
    parsed: str
    search: tuple[str | None, str | None, str | None, str | None, str | None]
    flags: frozenset[str]
    internaldate_us: int
    internaldate_tz: int
    envelope: str | None = None  # MessageEnvelope.to_json(), or None
    doc: Any = None  # search_doc.SearchDoc for the search index; None: indexed on first search


def search_doc(data: bytes, parsed: Any) -> Any:
    """The message's search document (storage.search_doc), or None when building it failed:
    indexing must never cost a delivery; the search methods index such messages later."""
    from merpati.storage.search_doc import build_search_doc

    try:
        return build_search_doc(data, parsed)
    except Exception:  # pragma: no cover - a bug in the indexer, not in the message
        import logging

        logging.getLogger(__name__).exception("search indexing failed; the message is indexed on first search")
        return None


def envelope_to_text(envelope: Any) -> str | None:
    """The stored form of a Delivery's envelope (ASCII JSON: storable in any text column)."""
    if envelope is None:
        return None
    if not isinstance(envelope, MessageEnvelope):
        raise InvalidInput(f"Delivery.envelope must be a MessageEnvelope or None, not {type(envelope).__name__}")
    try:
        return envelope.to_json()
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"invalid envelope: {exc}") from exc


def envelope_from_text(text: str | None) -> MessageEnvelope | None:
    return None if text is None else MessageEnvelope.from_json(text)


def prepare_deliveries(deliveries: Iterable[Any]) -> list[PreparedDelivery]:
    out = []
    for d in deliveries:
        if isinstance(d.account_id, bool) or not isinstance(d.account_id, int):
            raise InvalidInput(f"invalid account id {d.account_id!r}")
        if not isinstance(d.data, (bytes, bytearray, memoryview)):
            raise InvalidInput("Delivery.data must be bytes")
        us, tz = dt_to_parts(d.internaldate)
        out.append(
            PreparedDelivery(
                account_id=d.account_id,
                mailbox=d.mailbox if isinstance(d.mailbox, str) and d.mailbox else INBOX,
                data=bytes(d.data),
                parsed=parsed_to_text(d.parsed),
                search=search_columns(d.parsed),
                flags=normalize_flags(d.flags),
                internaldate_us=us,
                internaldate_tz=tz,
                envelope=envelope_to_text(getattr(d, "envelope", None)),
                doc=search_doc(d.data, d.parsed),
            )
        )
    return out


def prepare_appends(messages: Iterable[Any]) -> list[PreparedDelivery]:
    """AppendMessages checked and converted like deliveries (account and mailbox come from the
    target mailbox id inside the unit of work: account_id 0 and mailbox "" here)."""
    out = []
    for m in messages:
        if not isinstance(m.data, (bytes, bytearray, memoryview)):
            raise InvalidInput("AppendMessage.data must be bytes")
        us, tz = dt_to_parts(m.internaldate)
        out.append(
            PreparedDelivery(
                account_id=0,
                mailbox="",
                data=bytes(m.data),
                parsed=parsed_to_text(m.parsed),
                search=search_columns(m.parsed),
                flags=normalize_flags(m.flags),
                internaldate_us=us,
                internaldate_tz=tz,
                doc=search_doc(m.data, m.parsed),
            )
        )
    return out
