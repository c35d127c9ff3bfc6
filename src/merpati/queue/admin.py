"""Queue operations for the admin CLI that need the queue's own logic (a bounce composes DSNs)."""

from __future__ import annotations

import time

from merpati.queue import dsn
from merpati.storage.api import NotFound
from merpati.storage.queue_api import QueueStore, RecipientState

BOUNCE_STATUS = "5.0.0"
BOUNCE_TEXT = "550 5.0.0 delivery cancelled by the administrator"


async def bounce(queue: QueueStore, queue_id: str, *, hostname: str, now: float | None = None) -> int:
    """Fail every pending recipient of the message now, with one DSN to its sender."""
    when = time.time() if now is None else now
    message = await queue.get(queue_id)
    if message is None:
        raise NotFound(f"no queued message {queue_id!r}")
    data = await queue.read_data(queue_id)
    entries = [
        dsn.DsnEntry(r, dsn.FAILED, BOUNCE_STATUS, BOUNCE_TEXT, None, diagnostic_type="x-merpati")
        for r in message.recipients
        if r.state is RecipientState.QUEUED
    ]
    note = dsn.compose(message=message, data=data, entries=entries, hostname=hostname, now=when)
    return await queue.fail_pending(
        queue_id, text=BOUNCE_TEXT, status=BOUNCE_STATUS, notifications=[note] if note else [], now=when
    )
