"""`merpati domain|user|alias|mailbox ...`: thin wrappers over admin.service.AdminService."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from merpati.cli.common import AdminCall, print_table, read_password, run_admin

if TYPE_CHECKING:
    from merpati.admin.service import AdminService


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    _register_domain(sub, common)
    _register_user(sub, common)
    _register_alias(sub, common)
    _register_mailbox(sub, common)


def _group(sub: argparse._SubParsersAction, name: str, help: str) -> argparse._SubParsersAction:
    p = sub.add_parser(name, help=help)
    return p.add_subparsers(dest="action", metavar="ACTION", required=True)


def _command(
    group: argparse._SubParsersAction,
    name: str,
    common: argparse.ArgumentParser,
    help: str,
    call: AdminCall,
) -> argparse.ArgumentParser:
    p = group.add_parser(name, parents=[common], help=help)
    p.set_defaults(handler=lambda args: run_admin(args, call))
    return p


# -- domain -----------------------------------------------------------------------------------


def _register_domain(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    g = _group(sub, "domain", "manage mail domains")
    _command(g, "add", common, "add a domain", domain_add).add_argument("domain")
    _command(g, "remove", common, "remove a domain with its users and aliases", domain_remove).add_argument("domain")
    _command(g, "list", common, "list the domains", domain_list)


async def domain_add(admin: AdminService, args: argparse.Namespace) -> int:
    print(f"added domain {await admin.add_domain(args.domain)}")
    return 0


async def domain_remove(admin: AdminService, args: argparse.Namespace) -> int:
    await admin.remove_domain(args.domain)
    print(f"removed domain {args.domain.lower()}")
    return 0


async def domain_list(admin: AdminService, args: argparse.Namespace) -> int:
    for domain in await admin.list_domains():
        print(domain)
    return 0


# -- user ---------------------------------------------------------------------------------------


def _register_user(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    g = _group(sub, "user", "manage users (mail accounts)")
    for name, help, call in (("add", "add a user", user_add), ("passwd", "set a user's password", user_passwd)):
        p = _command(g, name, common, help, call)
        p.add_argument("address")
        p.add_argument(
            "--password-stdin",
            action="store_true",
            help="read the password from the first line of stdin (default on a terminal: ask twice)",
        )
    _command(g, "remove", common, "remove a user and all their mail", user_remove).add_argument("address")
    _command(g, "list", common, "list users", user_list).add_argument("domain", nargs="?")


async def user_add(admin: AdminService, args: argparse.Namespace) -> int:
    # Validate before asking for a password: a typo should not cost a prompt.
    from merpati.admin.service import normalize_address

    normalize_address(args.address)
    account = await admin.add_user(args.address, read_password(from_stdin=args.password_stdin))
    print(f"added user {account.address}")
    return 0


async def user_passwd(admin: AdminService, args: argparse.Namespace) -> int:
    account = await admin.get_user(args.address)
    await admin.set_password(account.address, read_password(from_stdin=args.password_stdin))
    print(f"changed the password of {account.address}")
    return 0


async def user_remove(admin: AdminService, args: argparse.Namespace) -> int:
    account = await admin.get_user(args.address)
    await admin.remove_user(account.address)
    print(f"removed user {account.address}")
    return 0


async def user_list(admin: AdminService, args: argparse.Namespace) -> int:
    for account in await admin.list_users(args.domain):
        print(account.address)
    return 0


# -- alias ----------------------------------------------------------------------------------------


def _register_alias(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    g = _group(sub, "alias", "manage aliases (@domain is a catch-all)")
    p = _command(g, "add", common, "add targets to an alias", alias_add)
    p.add_argument("address", help="local@domain, or @domain for a catch-all")
    p.add_argument("targets", nargs="+", metavar="TARGET", help="local or remote addresses")
    p = _command(g, "remove", common, "remove targets, or the whole alias", alias_remove)
    p.add_argument("address")
    p.add_argument("targets", nargs="*", metavar="TARGET")
    _command(g, "list", common, "list aliases", alias_list).add_argument("domain", nargs="?")


async def alias_add(admin: AdminService, args: argparse.Namespace) -> int:
    alias = await admin.add_alias(args.address, args.targets)
    print(f"{alias.source} -> {', '.join(alias.targets)}")
    return 0


async def alias_remove(admin: AdminService, args: argparse.Namespace) -> int:
    await admin.remove_alias(args.address, args.targets)
    if args.targets:
        print(f"removed {', '.join(args.targets)} from alias {args.address}")
    else:
        print(f"removed alias {args.address}")
    return 0


async def alias_list(admin: AdminService, args: argparse.Namespace) -> int:
    for alias in await admin.list_aliases(args.domain):
        print(f"{alias.source} -> {', '.join(alias.targets)}")
    return 0


# -- mailbox ----------------------------------------------------------------------------------------


def _register_mailbox(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    g = _group(sub, "mailbox", "inspect a user's mailboxes")
    _command(g, "list", common, "list mailboxes with counts and sizes", mailbox_list).add_argument("address")


async def mailbox_list(admin: AdminService, args: argparse.Namespace) -> int:
    rows = await admin.list_mailboxes(args.address)
    print_table(
        ("NAME", "MESSAGES", "UNSEEN", "SIZE"),
        [(r.name, r.messages, r.unseen, r.size) for r in rows],
        sys.stdout,
    )
    return 0
