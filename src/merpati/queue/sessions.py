"""Idle outbound SMTP sessions kept a moment for the next message to the same host.

Theory of operation
-------------------
Postfix's connection cache (``smtp_connection_cache_on_demand``): when a transaction ends
cleanly, the session is parked instead of QUIT, keyed by (MX host name, address, port). The
next attempt to that destination takes it and sends MAIL at once: no connect, greeting, EHLO,
STARTTLS or AUTH again, and no QUIT/close for the previous message. A parked session is closed
(QUIT) after ``idle`` seconds unused, after ``lifetime`` seconds since it was opened, or after
``max_messages`` transactions; at most ``max_idle`` sessions are parked at once.

A parked connection may have been closed by the server meanwhile (its idle timeout, a restart):
``take`` skips sessions whose socket is closed or holds unread bytes (a ``421``), and the
runner opens a fresh connection when a reused one fails before the message was sent. Only a
session at a transaction boundary is parked (``SmtpSession.reusable``).
"""

from __future__ import annotations

import asyncio
import logging

from merpati.queue.client import SmtpSession

log = logging.getLogger("merpati.queue")

Key = tuple[str, str, int]  # (server name, address, port)


class SessionCache:
    def __init__(self, *, idle: float = 2.0, lifetime: float = 300.0, max_messages: int = 1000, max_idle: int = 100) -> None:
        self.idle = idle
        self.lifetime = lifetime
        self.max_messages = max_messages
        self.max_idle = max_idle
        self._parked: dict[Key, list[tuple[float, SmtpSession]]] = {}
        self._count = 0
        self._closing: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.TimerHandle | None = None
        self.stats = {"reused": 0, "parked": 0}

    @property
    def enabled(self) -> bool:
        return self.idle > 0

    def take(self, key: Key) -> SmtpSession | None:
        """The most recently parked live session to ``key``, or None."""
        stack = self._parked.get(key)
        if not stack:
            return None
        now = asyncio.get_running_loop().time()
        found = None
        while stack:
            parked_at, session = stack.pop()
            self._count -= 1
            if session.reusable and now - parked_at < self.idle:
                found = session
                break
            self._close(session)
        if not stack:
            del self._parked[key]
        if found is not None:
            self.stats["reused"] += 1
        return found

    def park(self, key: Key, session: SmtpSession) -> None:
        """Keep ``session`` for the next message to ``key``, or close it (QUIT) if it cannot be kept."""
        now = asyncio.get_running_loop().time()
        if (
            not self.enabled
            or not session.reusable
            or session.messages >= self.max_messages
            or now - session.opened_at >= self.lifetime
            or self._count >= self.max_idle
        ):
            self._close(session)
            return
        self._parked.setdefault(key, []).append((now, session))
        self._count += 1
        self.stats["parked"] += 1
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().call_later(self.idle, self._sweep)

    def _sweep(self) -> None:
        self._sweeper = None
        now = asyncio.get_running_loop().time()
        for key in list(self._parked):
            keep = []
            for parked_at, session in self._parked[key]:
                if now - parked_at >= self.idle or not session.reusable:
                    self._count -= 1
                    self._close(session)
                else:
                    keep.append((parked_at, session))
            if keep:
                self._parked[key] = keep
            else:
                del self._parked[key]
        if self._count > 0:
            self._sweeper = asyncio.get_running_loop().call_later(self.idle / 2, self._sweep)

    def _close(self, session: SmtpSession) -> None:
        task = asyncio.get_running_loop().create_task(session.quit())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def close_all(self) -> None:
        """QUIT every parked session and wait for those being closed."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for stack in self._parked.values():
            for _, session in stack:
                self._close(session)
        self._parked.clear()
        self._count = 0
        if self._closing:
            await asyncio.gather(*list(self._closing), return_exceptions=True)


__all__ = ["Key", "SessionCache"]
