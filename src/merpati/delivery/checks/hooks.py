"""Site hooks: a Python module with async functions for any stage, named in ``[checks] hooks``.

    # /etc/merpati/hooks.py
    from merpati.delivery.checks import add_score, reject

    async def on_rcpt(ctx):
        if ctx.recipient.startswith("old-list@"):
            return reject("This list has moved to new-list@example.org", 550, "5.1.6")

The value is a dotted module name (importable by the server) or the path of a ``.py`` file.
Functions: ``on_connect``, ``on_helo``, ``on_mail``, ``on_rcpt``, ``on_data``, each
``async def f(ctx) -> Result | list[Result] | None`` (``ctx``: ``CheckContext``). Optional
module attributes: ``NAME`` (shown in Merpati-Verdict; default "hook") and ``TIMEOUT``
(seconds per call, default 30). A hook that raises or times out gets the failure policy, like
an engine that is down. The module is loaded once per server instance, under a private name.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import itertools
from pathlib import Path
from types import ModuleType

from merpati.delivery.checks.context import METHODS

DEFAULT_TIMEOUT = 30.0
_counter = itertools.count(1)  # unique private module names; no state beyond naming


class HookError(ValueError):
    pass


def load_module(spec: str) -> ModuleType:
    text = spec.strip()
    if text.endswith(".py") or "/" in text:
        path = Path(text).expanduser()
        if not path.is_file():
            raise HookError(f"hooks module {text!r} does not exist")
        name = f"merpati_site_hooks_{next(_counter)}"
        module_spec = importlib.util.spec_from_file_location(name, path)
        if module_spec is None or module_spec.loader is None:
            raise HookError(f"cannot load hooks module {text!r}")
        module = importlib.util.module_from_spec(module_spec)
        try:
            module_spec.loader.exec_module(module)
        except Exception as exc:
            raise HookError(f"hooks module {text!r} failed to load: {type(exc).__name__}: {exc}") from exc
        return module
    try:
        return importlib.import_module(text)
    except Exception as exc:
        raise HookError(f"hooks module {text!r} cannot be imported: {type(exc).__name__}: {exc}") from exc


class HookCheck:
    """The stage functions of a hooks module as a check."""

    def __init__(self, module: ModuleType) -> None:
        self.name = str(getattr(module, "NAME", "hook"))[:40] or "hook"
        self.timeout_seconds = float(getattr(module, "TIMEOUT", DEFAULT_TIMEOUT))
        found = 0
        for method in METHODS.values():
            fn = getattr(module, method, None)
            if fn is None:
                continue
            if not inspect.iscoroutinefunction(fn):
                raise HookError(f"hooks: {method} must be an async function")
            setattr(self, method, fn)
            found += 1
        if not found:
            raise HookError(f"hooks module defines none of {', '.join(METHODS.values())}")


def load_hooks(spec: str) -> HookCheck:
    return HookCheck(load_module(spec))
