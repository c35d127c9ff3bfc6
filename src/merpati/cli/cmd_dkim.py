"""`merpati dkim generate DOMAIN` (store a signing key, print its TXT record) and
`merpati dns DOMAIN` (every record to publish: MX, SPF, DKIM, DMARC, client autoconfig)."""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING

from merpati.cli.common import UserError, run_admin

if TYPE_CHECKING:
    from merpati.admin.service import AdminService
    from merpati.storage.queue_api import DkimKey

ALGORITHMS = {"rsa": "rsa-sha256", "ed25519": "ed25519-sha256"}


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("dkim", help="DKIM signing keys")
    g = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    gen = g.add_parser("generate", parents=[common], help="create and store a signing key; print its DNS record")
    gen.add_argument("domain")
    gen.add_argument("--algorithm", choices=sorted(ALGORITHMS), default="rsa")
    gen.add_argument("--selector", default="", help="default: merpati + the current year and month")
    gen.set_defaults(handler=lambda args: run_admin(args, dkim_generate))
    lst = g.add_parser("list", parents=[common], help="list the stored keys")
    lst.add_argument("domain", nargs="?")
    lst.set_defaults(handler=lambda args: run_admin(args, dkim_list))
    dns = sub.add_parser("dns", parents=[common], help="print every DNS record a domain should publish")
    dns.add_argument("domain")
    dns.set_defaults(handler=lambda args: run_admin(args, dns_records))


def txt_strings(value: str) -> str:
    """A TXT value as quoted 255-octet strings (RFC 1035 §3.3.14), for a zone file."""
    return " ".join(f'"{value[i:i + 255]}"' for i in range(0, len(value), 255))


def dkim_record(key: DkimKey) -> str:
    kind = "ed25519" if key.algorithm.startswith("ed25519") else "rsa"
    value = f"v=DKIM1; k={kind}; p={key.public_key}"
    return f"{key.selector}._domainkey.{key.domain}. 3600 IN TXT ( {txt_strings(value)} )"


async def _our_domain(admin: AdminService, domain: str) -> str:
    domain = domain.strip().lower().rstrip(".")
    if not await admin.store.has_domain(domain):
        raise UserError(f"{domain} is not one of our domains (merpati domain add {domain})")
    return domain


async def dkim_generate(admin: AdminService, args: argparse.Namespace) -> int:
    from merpati.mailauth import generate_key
    from merpati.storage.queue_api import DkimKey

    domain = await _our_domain(admin, args.domain)
    selector = (args.selector or time.strftime("merpati%Y%m")).lower()
    if not selector.replace("-", "").isalnum() or len(selector) > 63:
        raise UserError("the selector must be letters, digits and hyphens")
    pem, txt = generate_key(args.algorithm)
    public = txt.rsplit("p=", 1)[1]
    key = DkimKey(domain, selector, ALGORITHMS[args.algorithm], pem.decode("ascii"), public, created=time.time())
    await admin.store.queue.add_dkim_key(key)  # type: ignore[attr-defined]
    print(f"; DKIM key {selector} for {domain} ({key.algorithm}); publish:")
    print(dkim_record(key))
    return 0


async def dkim_list(admin: AdminService, args: argparse.Namespace) -> int:
    keys = await admin.store.queue.list_dkim_keys(args.domain)  # type: ignore[attr-defined]
    for key in keys:
        print(f"{key.domain}\t{key.selector}\t{key.algorithm}\t{'active' if key.active else 'inactive'}")
    return 0


async def dns_records(admin: AdminService, args: argparse.Namespace) -> int:
    domain = await _our_domain(admin, args.domain)
    host = admin.hostname.rstrip(".")
    print(f"; DNS records for {domain} (mail host {host})")
    print(f"{domain}. 3600 IN MX 10 {host}.")
    print(f"{domain}. 3600 IN TXT {txt_strings('v=spf1 mx -all')}")
    keys = [k for k in await admin.store.queue.list_dkim_keys(domain) if k.active]  # type: ignore[attr-defined]
    if keys:
        for key in keys:
            print(dkim_record(key))
    else:
        print(f"; no DKIM key yet: merpati dkim generate {domain}")
    print(f"_dmarc.{domain}. 3600 IN TXT {txt_strings(f'v=DMARC1; p=quarantine; rua=mailto:postmaster@{domain}')}")
    print("; client configuration (RFC 6186, RFC 8314)")
    for service, port in (("submissions", 465), ("submission", 587), ("imaps", 993), ("imap", 143),
                          ("pop3s", 995), ("pop3", 110)):
        print(f"_{service}._tcp.{domain}. 3600 IN SRV 0 1 {port} {host}.")
    print(f"autoconfig.{domain}. 3600 IN CNAME {host}.")
    print(f"autodiscover.{domain}. 3600 IN CNAME {host}.")
    return 0
