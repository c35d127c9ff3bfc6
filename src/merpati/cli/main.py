"""The `merpati` command: argparse root, subcommand table, one-line errors, exit codes.

Exit codes: 0 success; 1 an error the user can fix (printed as one ``merpati: error: ...``
line on stderr, never a traceback); 2 a usage error; 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from merpati.cli import cmd_accounts, cmd_init, cmd_serve, cmd_transfer
from merpati.cli import cmd_dkim, cmd_queue
from merpati.cli.common import user_facing

PROG = "merpati"

# Each entry registers its subcommand(s) on the root parser; order is the --help order.
COMMANDS: tuple[Callable[[argparse._SubParsersAction, argparse.ArgumentParser], None], ...] = (
    cmd_init.register,
    cmd_serve.register,
    cmd_accounts.register,  # domain, user, alias, mailbox
    cmd_transfer.register,  # export, import
    cmd_queue.register,  # queue list/show/retry/delete/bounce
    cmd_dkim.register,  # dkim generate/list, dns
)


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (with a pointer to --help), exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{PROG}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    # -c works before or after the subcommand; the subcommand's copy must not reset the root's.
    common = Parser(add_help=False)
    common.add_argument("-c", "--config", metavar="FILE", default=argparse.SUPPRESS, help=_CONFIG_HELP)
    root = Parser(prog=PROG, description="Merpati, a self-hosted mail server.")
    root.add_argument("-c", "--config", metavar="FILE", default=None, help=_CONFIG_HELP)
    sub = root.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=Parser)
    for register in COMMANDS:
        register(sub, common)
    return root


_CONFIG_HELP = "config file (default: $MERPATI_CONFIG, else ./var/merpati.toml)"


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - user errors become one line; bugs keep their traceback
        message = user_facing(exc)
        if message is None:
            raise
        print(f"{PROG}: error: {_one_line(message)}", file=sys.stderr)
        return 1


def _one_line(text: str) -> str:
    return " ".join(text.split()) or "unknown error"


if __name__ == "__main__":
    sys.exit(main())
