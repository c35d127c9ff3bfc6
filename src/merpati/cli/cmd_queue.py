"""`merpati queue list|show ID|retry [ID|--all]|delete ID|bounce ID`: the outbound queue."""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from merpati.cli.common import UserError, print_table, run_admin

if TYPE_CHECKING:
    from merpati.admin.service import AdminService


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("queue", help="inspect and manage the outbound queue")
    g = p.add_subparsers(dest="action", metavar="ACTION", required=True)

    def command(name: str, help: str, call) -> argparse.ArgumentParser:  # noqa: ANN001
        cp = g.add_parser(name, parents=[common], help=help)
        cp.set_defaults(handler=lambda args: run_admin(args, call))
        return cp

    command("list", "list queued messages", queue_list)
    command("show", "show one message: recipients, attempts, errors, headers", queue_show).add_argument("id")
    retry = command("retry", "deliver now instead of waiting for the schedule", queue_retry)
    retry.add_argument("id", nargs="?")
    retry.add_argument("--all", action="store_true", help="every queued message")
    command("delete", "remove a message from the queue without notifying anyone", queue_delete).add_argument("id")
    command("bounce", "give up on a message now and send its sender a bounce", queue_bounce).add_argument("id")


def _queue(admin: AdminService):  # noqa: ANN202
    queue = getattr(admin.store, "queue", None)
    if queue is None:
        raise UserError("this store has no outbound queue")
    return queue


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    try:
        return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    except (OverflowError, ValueError, OSError):  # a corrupt row's time
        return "?"


def _age(ts: float) -> str:
    seconds = max(0, int(time.time() - ts))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


async def queue_list(admin: AdminService, args: argparse.Namespace) -> int:
    rows = await _queue(admin).list()
    if not rows:
        print("the queue is empty")
        return 0
    print_table(
        ("ID", "AGE", "SIZE", "SENDER", "PENDING", "NEXT ATTEMPT (UTC)", "DOMAINS", "LAST ERROR"),
        [
            (
                r.queue_id, _age(r.created), r.size, f"<{r.sender}>", r.pending,
                "QUARANTINED" if r.quarantined else _when(r.next_attempt),
                ",".join(r.domains), (r.last_text or "")[:70],
            )
            for r in rows
        ],
        sys.stdout,
    )
    return 0


async def queue_show(admin: AdminService, args: argparse.Namespace) -> int:
    queue = _queue(admin)
    msg = await queue.get(args.id)
    if msg is None:
        raise UserError(f"no queued message {args.id}")
    print(f"id:        {msg.queue_id}")
    print(f"kind:      {msg.kind.value}")
    print(f"sender:    <{msg.sender}>")
    if msg.origin:
        print(f"submitted: by {msg.origin}")
    print(f"queued:    {_when(msg.created)} UTC ({_age(msg.created)} ago)")
    print(f"size:      {msg.size}")
    if msg.envid or msg.ret:
        print(f"dsn:       envid={msg.envid or '-'} ret={msg.ret or '-'}")
    if any(item.quarantined for item in msg.items):
        print("status:    QUARANTINED as a corrupt entry: not delivered; fix or `merpati queue delete` it")
    for item in msg.items:
        if item.quarantined:
            print(f"domain {item.domain}: {item.attempts} attempt(s), quarantined (never attempted again)")
            continue
        lease = f", leased by {item.lease_owner} until {_when(item.lease_until)}" if item.lease_owner else ""
        print(f"domain {item.domain}: {item.attempts} attempt(s), next {_when(item.next_attempt)} UTC{lease}")
    for r in msg.recipients:
        last = f" — {r.last_text}" if r.last_text else ""
        where = f" (at {r.remote})" if r.remote else ""
        print(f"  <{r.address}> {r.state.value}{where}{last}")
    data = await queue.read_data(msg.queue_id)
    end = data.find(b"\r\n\r\n")
    print()
    print(data[: end if end >= 0 else 8192].decode("utf-8", "replace"))
    return 0


async def queue_retry(admin: AdminService, args: argparse.Namespace) -> int:
    if bool(args.id) == bool(args.all):
        raise UserError("give a queue ID or --all")
    count = await _queue(admin).retry(None if args.all else args.id, now=time.time())
    print(f"{count} delivery item(s) due now")
    return 0


async def queue_delete(admin: AdminService, args: argparse.Namespace) -> int:
    await _queue(admin).delete(args.id)
    print(f"deleted {args.id}")
    return 0


async def queue_bounce(admin: AdminService, args: argparse.Namespace) -> int:
    from merpati.queue.admin import bounce

    count = await bounce(_queue(admin), args.id, hostname=admin.hostname)
    print(f"bounced {args.id}: {count} recipient(s) failed, sender notified")
    return 0
