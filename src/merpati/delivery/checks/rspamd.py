"""rspamd integration: each message goes to rspamd's HTTP ``/checkv2`` with the envelope.

Request (rspamd's protocol): the message as the body; ``IP``, ``Helo``, ``From`` (envelope
sender), one ``Rcpt`` per recipient, ``Hostname`` (the client's confirmed reverse name, when
known), ``User`` (when authenticated), ``Queue-Id``, and ``Password`` when configured.

Its answer maps onto our results:

=================  ===========================================================
rspamd action      result
=================  ===========================================================
reject             reject ``554 5.7.1`` (rspamd's SMTP message, if any)
soft reject        tempfail ``451 4.7.1``
rewrite subject,   quarantine (to Junk)
add header
greylist           nothing decided: rspamd's greylist module (with Redis) turns
                   real greylisting into "soft reject"; ours is ``[checks.greylist]``
no action          nothing decided
=================  ===========================================================

In every case rspamd's score is added to ours, with the strongest symbols as the reason.
rspamd down, slow (``[checks.rspamd] timeout``) or answering garbage raises
``CheckUnavailable``: the failure policy applies.
"""

from __future__ import annotations

import json

from merpati.delivery.checks.context import CheckContext
from merpati.delivery.checks.http import Endpoint, HttpError, post
from merpati.delivery.checks.results import (
    CheckUnavailable,
    Result,
    add_score,
    quarantine,
    reject,
    sanitize,
    tempfail,
)

MAX_SYMBOLS_IN_REASON = 8


class RspamdCheck:
    name = "rspamd"
    concurrent = True

    def __init__(self, url: str, *, timeout: float = 15.0, password: str = "") -> None:
        self._endpoint = Endpoint.parse(url)
        self._timeout = timeout
        self._password = password

    async def on_data(self, ctx: CheckContext) -> list[Result]:
        assert ctx.message is not None
        headers = [("IP", ctx.ip), ("Helo", ctx.helo or "unknown"), ("From", ctx.sender or "")]
        headers += [("Rcpt", r) for r in ctx.recipients]
        iprev = ctx.session.get("iprev")
        if iprev is not None and getattr(iprev, "result", "") == "pass" and iprev.name:
            headers.append(("Hostname", iprev.name))
        if ctx.client.authenticated_as:
            headers.append(("User", ctx.client.authenticated_as))
        if ctx.transaction.get("queue_id"):
            headers.append(("Queue-Id", str(ctx.transaction["queue_id"])))
        if self._password:
            headers.append(("Password", self._password))
        try:
            response = await post(self._endpoint, "/checkv2", ctx.message, headers, timeout=self._timeout)
        except TimeoutError:
            raise CheckUnavailable(f"no answer within {self._timeout:g}s") from None
        except (OSError, HttpError) as exc:
            raise CheckUnavailable(f"{type(exc).__name__}: {exc}") from None
        if response.status != 200:
            raise CheckUnavailable(f"HTTP {response.status}")
        try:
            answer = json.loads(response.body)
        except (ValueError, UnicodeDecodeError):
            raise CheckUnavailable("not JSON") from None
        return interpret(answer)


def interpret(answer: object) -> list[Result]:
    """rspamd's /checkv2 JSON → our results (CheckUnavailable when it is not one)."""
    if not isinstance(answer, dict) or not isinstance(answer.get("action"), str):
        raise CheckUnavailable("answer without an action")
    try:
        score = float(answer.get("score", 0.0))
    except (TypeError, ValueError):
        raise CheckUnavailable("answer with a bad score") from None
    if score != score or abs(score) > 1e6:
        raise CheckUnavailable("answer with a bad score")
    action = answer["action"].strip().lower()
    reason = _reason(answer.get("symbols"), action)
    messages = answer.get("messages") if isinstance(answer.get("messages"), dict) else {}
    smtp_message = messages.get("smtp_message") if isinstance(messages.get("smtp_message"), str) else ""
    out: list[Result] = []
    if action == "reject":
        out.append(reject(sanitize(f"Message rejected as spam: {smtp_message or reason}", 200), 554, "5.7.1"))
    elif action == "soft reject":
        out.append(tempfail(sanitize(smtp_message or "Try again later", 200), 451, "4.7.1"))
    elif action in ("add header", "rewrite subject"):
        out.append(quarantine(f"action {action}"))
    out.append(add_score(score, reason))
    return out


def _reason(symbols: object, action: str) -> str:
    parts = []
    if isinstance(symbols, dict):
        items = []
        for name, value in symbols.items():
            sc = value.get("score", 0.0) if isinstance(value, dict) else 0.0
            try:
                sc = float(sc)
            except (TypeError, ValueError):
                sc = 0.0
            items.append((str(name)[:64], sc))
        items.sort(key=lambda x: (-abs(x[1]), x[0]))
        shown = [n for n, s in items if s != 0][:MAX_SYMBOLS_IN_REASON]
        shown += [n for n, s in items if s == 0 and n in ("GTUBE",)]
        parts = [f"{n}" + (f" {dict(items)[n]:+.1f}" if dict(items)[n] else "") for n in shown]
    text = f"action {action}" + (f": {', '.join(parts)}" if parts else "")
    return sanitize(text, 300)
