"""`merpati serve`: run the daemon until it is told to stop."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable

from merpati.cli.common import load
from merpati.core.memory import tune_malloc


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("serve", parents=[common], help="run the mail server")
    p.add_argument("--smtp-worker", type=int, default=None, help=argparse.SUPPRESS)  # started by serve itself
    p.set_defaults(handler=run)


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop when it is installed (about 2.4x on an SMTP loop here), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def run(args: argparse.Namespace) -> int:
    config = load(args)
    from merpati import app  # the composition root; only `serve` imports it

    tune_malloc()  # before any thread starts: large blocks back to the system, two arenas

    try:
        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            runner.run(app.run(config, smtp_worker=args.smtp_worker))
    except KeyboardInterrupt:
        pass  # Ctrl-C: the runner has cancelled app.run, which shuts down gracefully
    return 0
