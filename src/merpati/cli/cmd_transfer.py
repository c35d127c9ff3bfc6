"""`merpati export` and `merpati import`: mbox (mboxrd) and maildir, see docs/cli.md."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from merpati.cli.common import run_admin

if TYPE_CHECKING:
    from merpati.admin.service import AdminService
    from merpati.admin.transfer import TransferResult

FORMATS = ("mbox", "maildir")


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("export", parents=[common], help="write a user's mail to mbox or maildir")
    p.add_argument("address")
    p.add_argument("out", metavar="OUT", help="a new file (mbox) or a new or empty folder")
    p.add_argument("--format", choices=FORMATS, default="mbox", help="default: mbox")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--mailbox", metavar="NAME", help="the mailbox to export (default: INBOX)")
    which.add_argument("--all", action="store_true", help="every mailbox: a folder of .mbox files or a Maildir++ tree")
    p.set_defaults(handler=lambda args: run_admin(args, export))

    p = sub.add_parser("import", parents=[common], help="read mbox or maildir mail into a user's mailboxes")
    p.add_argument("address")
    p.add_argument("source", metavar="IN", help="an mbox file, a folder of .mbox files, or a maildir")
    p.add_argument("--format", choices=FORMATS, help="default: detected (a file is mbox, a folder with cur/ maildir)")
    p.add_argument("--mailbox", metavar="NAME", help="put everything in this mailbox (created if missing)")
    p.set_defaults(handler=lambda args: run_admin(args, import_))


async def export(admin: AdminService, args: argparse.Namespace) -> int:
    from merpati.admin.transfer import Format

    mailboxes = None if args.all else [args.mailbox or "INBOX"]
    result = await admin.export_mail(args.address, Path(args.out), fmt=Format(args.format), mailboxes=mailboxes)
    print(f"exported {result.messages} message(s) from {_boxes(result)} to {args.out}")
    return 0


async def import_(admin: AdminService, args: argparse.Namespace) -> int:
    from merpati.admin.transfer import Format

    fmt = Format(args.format) if args.format else None
    result = await admin.import_mail(args.address, Path(args.source), fmt=fmt, mailbox=args.mailbox)
    for line in result.skipped:
        print(f"merpati: warning: skipped {line}", file=sys.stderr)
    print(f"imported {result.messages} message(s) into {_boxes(result)}")
    if result.skipped:
        print(f"merpati: error: {len(result.skipped)} message(s) were not imported", file=sys.stderr)
        return 1
    return 0


def _boxes(result: TransferResult) -> str:
    return ", ".join(result.mailboxes) or "no mailbox"
