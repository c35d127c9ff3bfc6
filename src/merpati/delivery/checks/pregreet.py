"""Pre-greeting talk (SECURITY-CASES SMTP-09; Postfix postscreen's pregreet test).

A real SMTP client waits for the 220 banner; spamware often talks at once. ``net`` holds the
banner back for ``[checks] pregreet_wait`` seconds and hands what arrived meanwhile to the
connect stage. Like postscreen's ``enforce`` action, the refusal is delayed: the client may
go on, and its MAIL FROM is answered ``550 5.5.1``.
"""

from __future__ import annotations

from merpati.delivery.checks.context import CheckContext
from merpati.delivery.checks.results import Result, reject


class PregreetCheck:
    name = "pregreet"

    async def on_connect(self, ctx: CheckContext) -> Result | None:
        if ctx.pregreet:
            return reject("Protocol error: the client talked before the greeting", 550, "5.5.1")
        return None
