"""Running the external SMTP clients (swaks, curl, smtp-source) without ever leaving loopback."""

from __future__ import annotations

import os
import subprocess

from support.tools import require_tool

PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "ftp_proxy", "no_proxy")


def clean_env() -> dict[str, str]:
    """No proxy settings: every client must talk straight to the loopback server."""
    return {k: v for k, v in os.environ.items() if k.lower() not in PROXY_VARS}


def run_client(tool: str, args: list[str], *, package: str | None = None, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    exe = require_tool(tool, package)
    proc = subprocess.run([exe, *args], capture_output=True, env=clean_env(), timeout=timeout, **kw)
    return proc


def describe(proc: subprocess.CompletedProcess) -> str:
    out = proc.stdout.decode("utf-8", "replace") if isinstance(proc.stdout, bytes) else proc.stdout
    err = proc.stderr.decode("utf-8", "replace") if isinstance(proc.stderr, bytes) else proc.stderr
    return f"exit {proc.returncode}\n--- stdout ---\n{out[-4000:]}\n--- stderr ---\n{err[-4000:]}"
