"""Peer programs the interop tests drive. Missing ones FAIL (never skip) and say how to fix it."""

from __future__ import annotations

import os
import shutil

import pytest

# Debian puts smtp-source in /usr/sbin, which is not on every user's PATH.
EXTRA_DIRS = ("/usr/sbin", "/usr/local/sbin", "/sbin")


def find_tool(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for d in EXTRA_DIRS:
        candidate = os.path.join(d, name)
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def require_tool(name: str, package: str | None = None) -> str:
    path = find_tool(name)
    if path is None:
        pytest.fail(
            f"{name} is not installed (Debian package {package or name}); "
            f"run `make test-deps` (as root) to install the interop peers. "
            f"Interop tests never skip.",
            pytrace=False,
        )
    return path
