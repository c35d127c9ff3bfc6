"""Training the per-user Bayesian filter from what users do with their mail (IMAP moves).

``BayesTrainer.learn(account_id, message_bytes, spam)`` is the trainer API: it tokenises the
message and stores it as spam or ham for that account (idempotent per message; learning it
the other way later moves it). Anything may call it (an admin command, a future
``IMAP $Junk`` keyword handler).

``JunkTrainingHook`` learns from the change feed, in the background (main process only):

* For every ``MessageAdded`` it reads the message and the first ``Merpati-Verdict`` header
  (the one this server prepended when the message arrived), which says where *we* filed it.
* Added to the Junk mailbox (special-use ``\\Junk``) while we had filed it in the inbox (or it
  never passed our checks): the user says spam → learn spam.
* Added to a mailbox other than Junk and Trash (``\\Trash``) while we had filed it in Junk:
  the user rescued it → learn ham; added to a folder other than INBOX (Archive, ...) while we
  had filed it in the inbox: the user filed it away → learn ham. Mail added to INBOX is read
  only when an expunge from Junk follows it at once (IMAP MOVE out of Junk: the feed carries
  MessageAdded in the target, then Expunged in the source), so deliveries cost no read.
* Deliveries themselves are never learned: the MX files into INBOX or Junk exactly as its
  verdict says, which is never a disagreement by these rules.

This works for IMAP MOVE, COPY and APPEND alike, on every node (the feed carries events
between nodes and ``bayes_learn`` is idempotent per message), without the feed having to
say where a message came from. The feed is per account, so the hook keeps one subscription
per account and refreshes the account list every ``refresh`` seconds (a new account's moves
count from then on).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from merpati.delivery.checks import bayes
from merpati.delivery.checks.verdict import read_verdict
from merpati.storage.api import FeedOverflow, NotFound, StoreError
from merpati.storage.changes import Expunged, MessageAdded
from merpati.storage.checks_api import ChecksStore, message_digest

log = logging.getLogger("merpati.checks.bayes")

MAX_LEARN_SIZE = 4 * 1024 * 1024  # larger messages are not learned (nor worth the memory)
RESCUE_WINDOW = 5.0  # seconds between a MessageAdded in INBOX and the Junk expunge of a MOVE
MAX_PENDING_INBOX = 1000
ACCOUNT_REFRESH = 10.0  # seconds: a new account's moves are learned from at most this long after its creation


class BayesTrainer:
    def __init__(
        self,
        store: ChecksStore,
        *,
        clock: Callable[[], float] = time.time,
        on_learned: Callable[[int], None] | None = None,
    ) -> None:
        self._store = store
        self._clock = clock
        self._on_learned = on_learned

    async def learn(self, account_id: int, message_bytes: bytes, spam: bool) -> str:
        """Learn one message for one account: "learned", "relearned" or "already"."""
        data = bytes(message_bytes)
        parsed = bayes.parse_for_tokens(data)
        toks = bayes.tokens(data, parsed)
        outcome = await self._store.bayes_learn(
            account_id, message_digest(data), toks, spam=bool(spam), now=self._clock()
        )
        if outcome != "already" and self._on_learned is not None:
            self._on_learned(account_id)
        log.info("bayes: account %d %s %s (%d tokens)", account_id, outcome, "spam" if spam else "ham", len(toks))
        return outcome


def training_class(mailbox_role: str, verdict: str | None) -> bool | None:
    """True (spam), False (ham) or None (nothing to learn) for a message added to a mailbox.

    ``mailbox_role``: "junk", "trash", "inbox" or "other"; ``verdict``: ours ("inbox", "junk")
    from the message's Merpati-Verdict header, or None when it has none.
    """
    if mailbox_role == "junk":
        return True if verdict != "junk" else None
    if mailbox_role == "trash":
        return None
    if verdict == "junk":
        return False
    if mailbox_role == "other" and verdict == "inbox":
        return False
    return None


class JunkTrainingHook:
    """Subscribes to every account's changes and trains the filter in the background."""

    def __init__(self, mail_store: Any, trainer: BayesTrainer, *, refresh: float = ACCOUNT_REFRESH) -> None:
        self._mail = mail_store
        self._trainer = trainer
        self._refresh = refresh
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._runner: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self.learned = 0  # messages learned (tests and metrics)

    async def start(self) -> None:
        self._runner = asyncio.create_task(self._run(), name="bayes-training")
        await self._ready.wait()

    async def stop(self, grace: float = 0.0) -> None:
        tasks = [t for t in (self._runner, *self._tasks.values()) if t is not None]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()

    async def refresh(self) -> None:
        """Subscribe to accounts created since the last refresh (and drop deleted ones)."""
        accounts = {a.id for a in await self._mail.list_accounts()}
        for account_id in accounts - self._tasks.keys():
            sub = self._mail.changes.subscribe(account_id)  # registers now: no event is missed
            self._tasks[account_id] = asyncio.create_task(self._follow(account_id, sub))
        for account_id in set(self._tasks) - accounts:
            self._tasks.pop(account_id).cancel()

    async def _run(self) -> None:
        while True:
            try:
                await self.refresh()
            except StoreError as exc:
                log.warning("bayes training: cannot list accounts: %s", exc)
            self._ready.set()
            await asyncio.sleep(self._refresh)

    async def _follow(self, account_id: int, sub: Any) -> None:
        roles: dict[int, str] = {}
        # Mail added to INBOX is nearly always a delivery (our own filing: nothing to learn);
        # it is read only when a Junk expunge follows at once, which is how IMAP MOVE out of
        # Junk looks on the feed (MessageAdded in the target, then Expunged in the source).
        inbox: list[tuple[MessageAdded, float]] = []
        loop = asyncio.get_running_loop()
        try:
            while True:
                try:
                    change = await sub.__anext__()
                except FeedOverflow:
                    inbox.clear()
                    continue  # events were dropped: what they would have taught is lost
                except StopAsyncIteration:
                    return
                try:
                    if isinstance(change, MessageAdded):
                        if await self._role(change.mailbox_id, change.account_id, roles) == "inbox":
                            inbox.append((change, loop.time()))
                            del inbox[:-MAX_PENDING_INBOX]
                        else:
                            await self._added(change, roles)
                    elif isinstance(change, Expunged) and inbox:
                        if await self._role(change.mailbox_id, change.account_id, roles) == "junk":
                            recent = [c for c, t in inbox if loop.time() - t <= RESCUE_WINDOW]
                            inbox.clear()
                            for added in recent:
                                await self._added(added, roles)
                except (StoreError, OSError) as exc:
                    log.warning("bayes training of account %d failed: %s", account_id, exc)
                except Exception:
                    log.exception("bayes training of account %d failed", account_id)
        finally:
            close = getattr(sub, "close", None)
            if close is not None:
                close()

    async def _role(self, mailbox_id: int, account_id: int, roles: dict[int, str]) -> str:
        role = roles.get(mailbox_id)
        if role is None:
            role = "other"
            for box in await self._mail.list_mailboxes(account_id):
                use = getattr(box.special_use, "value", box.special_use)
                r = "inbox" if box.name == "INBOX" else {"\\Junk": "junk", "\\Trash": "trash"}.get(use or "", "other")
                roles[box.id] = r
                if box.id == mailbox_id:
                    role = r
        return role

    async def _added(self, change: MessageAdded, roles: dict[int, str]) -> None:
        role = await self._role(change.mailbox_id, change.account_id, roles)
        if role == "trash":
            return
        try:
            data = await self._mail.read_message(change.mailbox_id, change.uid)
        except NotFound:
            return  # moved on or expunged already
        if len(data) > MAX_LEARN_SIZE:
            return
        spam = training_class(role, read_verdict(data))
        if spam is None:
            return
        try:
            await self._trainer.learn(change.account_id, data, spam)
            self.learned += 1
        except NotFound:
            pass  # the account went away
