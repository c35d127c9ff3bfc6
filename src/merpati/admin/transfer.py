"""Export an account's mail to mbox/maildir and import it back (see mbox.py and maildir.py).

Export reads one message at a time from the store, so memory stays flat. Import parses every
message with ``merpati.mime.parse_message`` and delivers them in batches with
``MailStore.deliver`` (each batch atomic and durable); a message the parser refuses (a MIME
bomb) is skipped and reported, the others go in. File I/O here is blocking; callers that run
inside the daemon should hand it to a thread.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from merpati.admin import maildir, mbox
from merpati.admin.errors import ConflictError, InvalidInput, NotFoundError
from merpati.mime import MimeLimitError, parse_message
from merpati.storage.api import MailStore
from merpati.storage.models import INBOX, Account, Delivery, Mailbox

BATCH_MESSAGES = 200
BATCH_BYTES = 16 * 1024 * 1024
MBOX_SUFFIX = ".mbox"


class Format(str, enum.Enum):
    MBOX = "mbox"
    MAILDIR = "maildir"


@dataclass(frozen=True, slots=True)
class Incoming:
    data: bytes
    internaldate: datetime | None
    flags: frozenset[str]


@dataclass(slots=True)
class TransferResult:
    messages: int = 0
    mailboxes: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # one line per message not imported


# -- export ---------------------------------------------------------------------------------


async def export_mail(
    store: MailStore,
    account: Account,
    out: Path,
    *,
    fmt: Format,
    mailboxes: Sequence[str] | None,
    hostname: str,
) -> TransferResult:
    if out.exists() and not (out.is_dir() and not any(out.iterdir())):
        raise ConflictError(f"{out} exists already (give a new path or an empty folder)")
    every = await store.list_mailboxes(account.id)
    if mailboxes is None:
        chosen = sorted(every, key=lambda m: (m.name != INBOX, m.name))
    else:
        chosen = []
        for name in mailboxes:
            found = await store.get_mailbox(account.id, name)
            if found is None:
                raise NotFoundError(f"{account.address} has no mailbox {name!r}")
            chosen.append(found)
    result = TransferResult()
    whole_tree = mailboxes is None
    if whole_tree:
        out.mkdir(parents=True, exist_ok=True)
    for box in chosen:
        if fmt is Format.MBOX:
            target = out / (_mbox_filename(box.name)) if whole_tree else out
            result.messages += await _export_mbox(store, box, target)
        else:
            target = out / maildir.folder_dirname(box.name) if whole_tree else out
            result.messages += await _export_maildir(store, box, target, hostname)
        result.mailboxes.append(box.name)
    return result


async def _export_mbox(store: MailStore, box: Mailbox, target: Path) -> int:
    target.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with open(target, "xb") as f:
        for meta in await store.list_messages(box.id):
            mbox.write_message(f, await store.read_message(box.id, meta.uid), meta.internaldate)
            count += 1
    return count


async def _export_maildir(store: MailStore, box: Mailbox, target: Path, hostname: str) -> int:
    writer = maildir.FolderWriter(target, hostname)
    count = 0
    for meta in await store.list_messages(box.id):
        writer.add(meta.uid, await store.read_message(box.id, meta.uid), meta.internaldate, meta.flags)
        count += 1
    status = await store.mailbox_status(box.id)
    writer.close(box.uidvalidity, status.mailbox.uidnext)
    return count


def _mbox_filename(name: str) -> str:
    return (maildir.folder_dirname(name)[1:] or INBOX) + MBOX_SUFFIX


def _mailbox_from_mbox_filename(filename: str) -> str:
    stem = filename[: -len(MBOX_SUFFIX)]
    return INBOX if stem.upper() == INBOX else maildir.mailbox_from_dirname("." + stem)


# -- import ---------------------------------------------------------------------------------


def detect_format(source: Path) -> Format:
    if source.is_file():
        return Format.MBOX
    if source.is_dir():
        if maildir.is_maildir(source) or any(
            p.name.startswith(".") and maildir.is_maildir(p) for p in source.iterdir()
        ):
            return Format.MAILDIR
        if any(p.name.endswith(MBOX_SUFFIX) for p in source.iterdir()):
            return Format.MBOX
        raise InvalidInput(f"{source}: neither a maildir nor a folder of .mbox files")
    raise NotFoundError(f"{source}: no such file or folder")


def import_sources(source: Path, fmt: Format, mailbox: str | None) -> list[tuple[str, Iterable[Incoming]]]:
    """(mailbox name, messages) pairs found at ``source``; ``mailbox`` forces one target."""
    if not source.exists():
        raise NotFoundError(f"{source}: no such file or folder")
    if fmt is Format.MBOX:
        if source.is_file():
            return [(mailbox or INBOX, _mbox_messages(source))]
        if mailbox is not None:
            raise InvalidInput(f"{source} is a folder; --mailbox needs one mbox file")
        files = sorted(p for p in source.iterdir() if p.name.endswith(MBOX_SUFFIX) and p.is_file())
        if not files:
            raise InvalidInput(f"{source}: no .mbox files in this folder")
        return [(_mailbox_from_mbox_filename(p.name), _mbox_messages(p)) for p in files]
    if not source.is_dir():
        raise InvalidInput(f"{source} is not a maildir folder")
    if mailbox is not None:
        if not maildir.is_maildir(source):
            raise InvalidInput(f"{source} is not a maildir (no cur/ or new/)")
        return [(mailbox, _maildir_messages(source))]
    pairs: list[tuple[str, Iterable[Incoming]]] = []
    if maildir.is_maildir(source):
        pairs.append((INBOX, _maildir_messages(source)))
    for sub in sorted(source.iterdir()):
        if sub.name.startswith(".") and sub.name not in (".", "..") and sub.is_dir() and maildir.is_maildir(sub):
            pairs.append((maildir.mailbox_from_dirname(sub.name), _maildir_messages(sub)))
    if not pairs:
        raise InvalidInput(f"{source} is not a maildir (no cur/ or new/)")
    return pairs


def _mbox_messages(path: Path) -> Iterator[Incoming]:
    with open(path, "rb") as f:
        try:
            for msg in mbox.read_mbox(f):
                yield Incoming(msg.data, msg.internaldate or mbox.header_date(msg.data), msg.flags)
        except ValueError as exc:
            raise InvalidInput(f"{path}: {exc}") from None


def _maildir_messages(path: Path) -> Iterator[Incoming]:
    for msg in maildir.read_folder(path):
        yield Incoming(msg.data, msg.internaldate, msg.flags)


async def import_mail(
    store: MailStore,
    account: Account,
    source: Path,
    *,
    fmt: Format | None,
    mailbox: str | None,
) -> TransferResult:
    fmt = fmt or detect_format(source)
    result = TransferResult()
    for name, messages in import_sources(source, fmt, mailbox):
        box = await _ensure_mailbox(store, account, name)
        result.mailboxes.append(box.name)
        await _import_into(store, account, box.name, messages, result)
    return result


async def _ensure_mailbox(store: MailStore, account: Account, name: str) -> Mailbox:
    if not name or name.startswith("/") or name.endswith("/") or "//" in name:
        raise InvalidInput(f"invalid mailbox name: {name!r}")
    box = await store.get_mailbox(account.id, name)
    return box if box is not None else await store.create_mailbox(account.id, name)


async def _import_into(
    store: MailStore, account: Account, mailbox: str, messages: Iterable[Incoming], result: TransferResult
) -> None:
    batch: list[Delivery] = []
    size = 0
    for index, msg in enumerate(messages, start=1):
        try:
            parsed = parse_message(msg.data)
        except MimeLimitError as exc:
            result.skipped.append(f"{mailbox} message {index}: {exc}")
            continue
        when = msg.internaldate or datetime.now(timezone.utc)
        batch.append(Delivery(account.id, msg.data, parsed, when, mailbox=mailbox, flags=msg.flags))
        size += len(msg.data)
        if len(batch) >= BATCH_MESSAGES or size >= BATCH_BYTES:
            result.messages += len(await store.deliver(batch))
            batch, size = [], 0
    if batch:
        result.messages += len(await store.deliver(batch))

