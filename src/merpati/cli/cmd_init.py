"""`merpati init`: write a config file, a self-signed certificate and an empty store."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
from pathlib import Path

from merpati.cli.common import UserError, config_path, open_configured_store
from merpati.config import load_config

DB_NAME = "merpati.db"


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("init", parents=[common], help="write a config file and create the store")
    p.add_argument("--data-dir", metavar="DIR", help="data folder (default: the config file's folder)")
    p.add_argument("--hostname", metavar="NAME", default="localhost", help="this host's name (default: localhost)")
    p.add_argument("--domain", metavar="DOMAIN", help="a mail domain to add")
    p.add_argument("--demo-user", metavar="ADDRESS", help="create this user with a random password and print it")
    p.add_argument("--storage-url", metavar="URL", help="store URL (default: sqlite:///<data_dir>/merpati.db)")
    p.add_argument("--tls-cert", metavar="FILE", help="existing PEM certificate (default: generate one)")
    p.add_argument("--tls-key", metavar="FILE", help="its PEM private key")
    p.add_argument("--force", action="store_true", help="overwrite an existing config file")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from merpati.admin.certs import generate_self_signed

    path = Path(os.path.abspath(config_path(args)))
    if path.exists() and not args.force:
        raise UserError(f"{path} exists already (use --force to overwrite it)")
    if bool(args.tls_cert) != bool(args.tls_key):
        raise UserError("give both --tls-cert and --tls-key, or neither")
    from merpati.admin.service import normalize_address, normalize_domain

    # Check the names before anything is written.
    args.hostname = normalize_domain(args.hostname)
    args.domain = normalize_domain(args.domain) if args.domain else None
    args.demo_user = normalize_address(args.demo_user) if args.demo_user else None
    base = path.parent
    data_dir = Path(os.path.abspath(args.data_dir)) if args.data_dir else base
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)

    if args.tls_cert:
        cert, key = Path(os.path.abspath(args.tls_cert)), Path(os.path.abspath(args.tls_key))
        for f in (cert, key):
            if not f.is_file():
                raise UserError(f"{f}: no such file")
    else:
        cert, key = data_dir / "tls" / "cert.pem", data_dir / "tls" / "key.pem"
        if cert.is_file() and key.is_file():
            print(f"keeping the existing certificate {cert}")
        else:
            generate_self_signed(cert, key, args.hostname)
            print(f"wrote a self-signed certificate for {args.hostname}: {cert}")

    # Absolute paths throughout: "sqlite:///x" reads as absolute to some and as relative to
    # others, while "sqlite:////abs/x" means the same to every reader.
    storage_url = args.storage_url or f"sqlite:///{data_dir / DB_NAME}"
    text = render_config(
        hostname=args.hostname, data_dir=str(data_dir), storage_url=storage_url, cert=str(cert), key=str(key)
    )
    # The config appears only once the store is ready: a failed init leaves no half-set-up file.
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    try:
        config = load_config(tmp)  # what we wrote must load (same folder, so same path resolution)
        status = asyncio.run(_prepare_store(config.storage_url, args))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    print(f"wrote {path}")
    return status


async def _prepare_store(url: str, args: argparse.Namespace) -> int:
    from merpati.admin.service import AdminService

    store = await open_configured_store(url)  # creates the database and applies the migrations
    try:
        admin = AdminService(store)
        demo = args.demo_user
        domains = [d for d in (args.domain, demo and demo.rpartition("@")[2]) if d]
        for domain in domains:
            if not await store.has_domain(domain):
                await admin.add_domain(domain)
                print(f"added domain {domain}")
        if demo:
            password = secrets.token_urlsafe(12)
            if await store.get_account(demo) is None:
                await admin.add_user(demo, password)
            else:
                await admin.set_password(demo, password)
            print(f"demo user: {demo} password: {password}")
    finally:
        await store.close()
    return 0


def _q(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a valid TOML basic string


def render_config(*, hostname: str, data_dir: str, storage_url: str, cert: str, key: str) -> str:
    """The config file text (the loader resolves relative paths against the file's folder)."""
    return f"""\
# Merpati configuration, written by `merpati init`. Relative paths would resolve against this
# file's folder.
# Domains, users and aliases live in the store: manage them with `merpati domain|user|alias`.

hostname = {_q(hostname)}
data_dir = {_q(data_dir)}

[listen]
# Each a list of "host:port"; an empty list disables that listener. High ports on localhost, so
# no root is needed; a production server listens on 25, 587, 465, 143, 993, 110 and 995.
smtp = ["127.0.0.1:2525"]          # MX
submission = ["127.0.0.1:5870"]    # STARTTLS, then AUTH
submissions = ["127.0.0.1:4650"]   # implicit TLS
imap = ["127.0.0.1:1430"]
imaps = ["127.0.0.1:9930"]
pop3 = ["127.0.0.1:1100"]
pop3s = ["127.0.0.1:9950"]

[storage]
url = {_q(storage_url)}

[tls]
cert = {_q(cert)}
key = {_q(key)}

[auth]
loopback_is_secure = true

[limits]
message_size = 52428800
"""
