"""Wiring of the imap part (filled in by its issue)."""

from __future__ import annotations

from merpati.assembly.context import AppContext, Stoppable

LISTENERS: tuple[str, ...] = ()


async def start(ctx: AppContext) -> list[Stoppable]:
    return []
