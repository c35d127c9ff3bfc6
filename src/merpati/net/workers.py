"""SMTP worker processes: more cores for the MX, supervised by the main process.

Why processes: one Python process is bound by its GIL to about one core, and the MX's work
(SMTP engine, MIME parse, trace headers) is pure Python. Postfix runs many smtpd processes for
the same reason. Each worker is ``merpati serve --smtp-worker N`` on the same config: it opens
its own store connection and binds the same SMTP addresses with SO_REUSEPORT, so the kernel
spreads connections over the main process and the workers. With SQLite a worker hands its
deliveries to the main process's writer (``storage.sqlite.write_relay``), so one group commit
serves every process; with PostgreSQL each process commits on its own connections.

Lifecycle: the supervisor restarts a worker that dies (after a pause), and on shutdown sends
SIGTERM to every worker and waits for each to finish its transactions in flight. A worker
that loses its parent gets SIGTERM from the kernel (PR_SET_PDEATHSIG), so none is orphaned.

Limits that are per process: ``max_connections`` and ``max_connections_per_ip`` apply in each
process (connections from one client may land in any of them).
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import signal
import sys
from pathlib import Path

log = logging.getLogger("merpati.workers")

RESTART_PAUSE = 1.0
PR_SET_PDEATHSIG = 1


def default_worker_count() -> int:
    return max(1, min(os.cpu_count() or 1, 8))


def die_with_parent() -> None:
    """Linux: get SIGTERM when the parent process dies (best effort elsewhere)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


class WorkerSupervisor:
    def __init__(self, config_path: Path, count: int, *, grace: float) -> None:
        self._config_path = config_path
        self._count = count
        self._grace = grace
        self._procs: dict[int, asyncio.subprocess.Process] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    async def start(self) -> None:
        for index in range(1, self._count + 1):
            self._tasks.append(asyncio.get_running_loop().create_task(self._keep(index)))

    async def _keep(self, index: int) -> None:
        while not self._stopping:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "merpati.cli.main", "-c", str(self._config_path),
                "serve", "--smtp-worker", str(index),
                stdin=asyncio.subprocess.DEVNULL,
            )
            self._procs[index] = proc
            code = await proc.wait()
            if self._stopping:
                return
            log.error("smtp worker %d exited with %s; restarting", index, code)
            await asyncio.sleep(RESTART_PAUSE)

    async def stop(self) -> None:
        self._stopping = True
        for proc in self._procs.values():
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
        waits = [asyncio.create_task(p.wait()) for p in self._procs.values()]
        if waits:
            _, late = await asyncio.wait(waits, timeout=self._grace + 5)
            for proc in self._procs.values():
                if proc.returncode is None:
                    proc.kill()
            if late:
                await asyncio.wait(late, timeout=5)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
