"""A per-user Bayesian classifier (Graham's tokens, Robinson's f(w), Fisher's chi-square).

* Tokens: lower-cased words of the Subject (prefixed ``s:``), the From domain (``f:``), URL
  host names (``u:``) and the words of the text parts (HTML without tags), decoded from their
  transfer encoding and charset. Each distinct token counts once per message and becomes a
  signed 64-bit digest (the store never holds the words themselves).
* Token probability (Robinson): p(w) = (spam(w)/nspam) / (spam(w)/nspam + ham(w)/nham), shrunk
  towards 0.5 by how often the token was seen: f(w) = (s·x + n·p(w)) / (s + n), s=1, x=0.5.
  The ``MAX_CLUES`` tokens furthest from 0.5 (and at least ``MIN_STRENGTH`` from it) are
  combined with Fisher's chi-square method into one spam probability.
* Nothing is said until the account has learned at least ``min_spam`` spam and ``min_ham``
  ham messages: with one class only, every common word would look like that class.
* Learning happens in the background when the user moves mail (``training``).
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

from merpati.delivery.checks.cache import TtlCache
from merpati.delivery.checks.context import CheckContext
from merpati.delivery.checks.results import Result, add_score
from merpati.delivery.envelope import LocalRecipient
from merpati.mime import MimeLimitError, ParsedMessage, parse_message
from merpati.mime.text import decode_charset, decode_cte
from merpati.storage.checks_api import MAX_TOKENS, BayesCounts, ChecksStore

UNTRAINED_TTL = 5.0  # seconds an untrained account's (small) table is kept
MAX_TEXT = 200_000  # characters of text tokenised per message
MAX_MEMO = 100_000  # token digests remembered per BayesCheck (a few MB)
MAX_CLUES = 150
MIN_STRENGTH = 0.1
ROBINSON_S = 1.0
ROBINSON_X = 0.5

_WORD = re.compile(r"[^\W\d_][\w'$-]{2,39}", re.UNICODE)
# The same on lower-cased ASCII text (letters are a-z there, \w is a-z0-9_), twice as fast.
_WORD_ASCII = re.compile(r"[a-z][a-z0-9_'$-]{2,39}", re.ASCII)
_URL_HOST = re.compile(r"(?i)\bhttps?://([a-z0-9.-]{1,253})")
_TAG = re.compile(r"<[^>]{0,2000}>")
_HEADER_END = re.compile(rb"\r?\n\r?\n")


def _digest(token: str) -> int:
    return int.from_bytes(hashlib.blake2b(token.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "big", signed=True)


def _texts(message: bytes, parsed: ParsedMessage | None) -> Iterable[str]:
    parts = getattr(parsed, "parts", None) if parsed is not None else None
    if not parts:
        end = _HEADER_END.search(message)
        yield message[end.end() if end else 0 :][:MAX_TEXT].decode("utf-8", "replace")
        return
    budget = MAX_TEXT
    for part in parts:
        kind = part.get("t") or ["text", "plain"]
        if kind[0].lower() != "text" or budget <= 0:
            continue
        start, stop = part.get("b"), part.get("e")
        if not isinstance(start, int) or not isinstance(stop, int):
            continue
        raw = decode_cte(message[start:stop][: budget * 4], part.get("x"))
        if raw is None:
            continue
        charset = next((v for k, v in part.get("p") or () if str(k).lower() == "charset"), None)
        text = decode_charset(raw, charset)[:budget]
        if kind[1].lower() == "html":
            text = _TAG.sub(" ", text)
        budget -= len(text)
        yield text


def _words(lowered: str) -> list[str]:
    return (_WORD_ASCII if lowered.isascii() else _WORD).findall(lowered)


def tokens(message: bytes, parsed: ParsedMessage | None = None, digests: dict[str, int] | None = None) -> list[int]:
    """The distinct token digests of a message (at most ``MAX_TOKENS``). ``digests``: a memo
    of token → digest that the caller keeps (a word's digest costs ~0.5 µs, and most words of
    a message were seen before)."""
    found: dict[str, None] = {}
    if parsed is not None:
        subject = parsed.subject or ""
        for w in _words(subject.lower()):
            found["s:" + w] = None
        sender = parsed.from_ or ""
        if "@" in sender:
            found["f:" + sender.rsplit("@", 1)[1].strip(" >").lower()] = None
    for text in _texts(message, parsed):
        if "://" in text:  # the URL scan is slow on its own (no literal prefix to search for)
            for host in _URL_HOST.findall(text):
                found["u:" + host.lower().strip(".")] = None
        words = _words(text.lower())
        if len(found) + len(words) < MAX_TOKENS:  # cannot reach the bound: no count per word
            found.update(dict.fromkeys(words))
            continue
        for w in words:
            found[w] = None
            if len(found) >= MAX_TOKENS:
                break
        if len(found) >= MAX_TOKENS:
            break
    if digests is None:
        return [_digest(t) for t in found]
    out = []
    for t in found:
        d = digests.get(t)
        if d is None:
            if len(digests) >= MAX_MEMO:
                digests.clear()
            d = digests[t] = _digest(t)
        out.append(d)
    return out


def chi2q(x2: float, v: int) -> float:
    """P(chi-square with v (even) degrees of freedom >= x2)."""
    m = x2 / 2.0
    term = math.exp(-m)
    total = term
    for i in range(1, v // 2):
        term *= m / i
        total += term
    return min(total, 1.0)


@dataclass(frozen=True, slots=True)
class Classification:
    probability: float  # of spam, 0..1
    clues: int  # tokens that counted


def classify(counts: dict[int, tuple[int, int]], nspam: int, nham: int, token_list: Iterable[int]) -> Classification:
    nspam, nham = max(nspam, 1), max(nham, 1)
    probs = []
    for t in token_list:
        s, h = counts.get(t, (0, 0))
        n = s + h
        if n == 0:
            continue
        ps, ph = s / nspam, h / nham
        p = ps / (ps + ph) if ps + ph else 0.5
        f = (ROBINSON_S * ROBINSON_X + n * p) / (ROBINSON_S + n)
        if abs(f - 0.5) >= MIN_STRENGTH:
            probs.append(f)
    if not probs:
        return Classification(0.5, 0)
    probs.sort(key=lambda f: -abs(f - 0.5))
    probs = probs[:MAX_CLUES]
    probs = [min(max(f, 1e-6), 1 - 1e-6) for f in probs]
    n = len(probs)
    h = chi2q(-2.0 * sum(math.log(f) for f in probs), 2 * n)
    s = chi2q(-2.0 * sum(math.log(1.0 - f) for f in probs), 2 * n)
    return Classification((1.0 + h - s) / 2.0, n)


# (lowest probability, score): the first row whose bound the probability reaches.
DEFAULT_SCORES: tuple[tuple[float, float], ...] = (
    (0.99, 6.0),
    (0.95, 4.0),
    (0.80, 2.0),
    (0.20, 0.0),
    (0.01, -1.0),
    (0.0, -2.0),
)


class BayesCheck:
    """The per-recipient data check.

    Small token tables (at most ``table_limit`` tokens, which covers a user who trained a few
    hundred messages) are copied into memory for ``table_ttl`` seconds, within a budget of
    ``memory_tokens`` tokens per process, so classifying costs no database read; larger ones
    are read per message (only the message's tokens). Learning in this process drops the copy
    at once (``forget``); other processes see it after ``table_ttl``.
    """

    name = "bayes"

    def __init__(
        self,
        store: ChecksStore,
        *,
        min_spam: int = 5,
        min_ham: int = 5,
        scores: tuple[tuple[float, float], ...] = DEFAULT_SCORES,
        table_ttl: float = 60.0,
        table_limit: int = 20_000,
        memory_tokens: int = 400_000,
    ) -> None:
        self._store = store
        self._min_spam = min_spam
        self._min_ham = min_ham
        self._scores = scores
        self._table_limit = table_limit
        self._digests: dict[str, int] = {}  # token → digest memo (bounded by MAX_MEMO)
        # account → its counts (the whole table), or None: too big to keep, read per message
        self._tables: TtlCache[int, BayesCounts | bool] = TtlCache(
            ttl=table_ttl, size=max(1, memory_tokens // max(1, table_limit // 10))
        )

    async def _counts(self, account_id: int, toks: list[int]) -> BayesCounts:
        table = self._tables.get(account_id)
        if table is None:
            table = await self._store.bayes_table(account_id, limit=self._table_limit)
            trained = table is None or (table.spam_messages >= self._min_spam and table.ham_messages >= self._min_ham)
            # an untrained account is looked at again soon: its user may be teaching it right now
            self._tables.put(account_id, table if table is not None else False, ttl=None if trained else UNTRAINED_TTL)
        if table:
            assert isinstance(table, BayesCounts)
            return table
        return await self._store.bayes_counts(account_id, toks)

    async def on_data_recipient(self, ctx: CheckContext, rcpt: LocalRecipient) -> Result | None:
        if ctx.message is None:
            return None
        table = self._tables.get(rcpt.account_id)
        if isinstance(table, BayesCounts) and (table.spam_messages < self._min_spam or table.ham_messages < self._min_ham):
            return None  # not trained enough yet
        toks = ctx.transaction.get("bayes_tokens")
        if toks is None:
            toks = tokens(ctx.message, ctx.parsed, self._digests)
            ctx.transaction["bayes_tokens"] = toks
        counts = await self._counts(rcpt.account_id, toks)
        if counts.spam_messages < self._min_spam or counts.ham_messages < self._min_ham:
            return None
        found = classify(counts.tokens, counts.spam_messages, counts.ham_messages, toks)
        if found.clues == 0:
            return None
        for bound, score in self._scores:
            if found.probability >= bound:
                if score == 0:
                    return None
                return add_score(score, f"spam probability {found.probability:.3f} from {found.clues} tokens")
        return None

    def forget(self, account_id: int) -> None:
        """Drop this process's copy of the account's table (after a learn)."""
        self._tables.put(account_id, False, ttl=0.0)


def parse_for_tokens(message: bytes) -> ParsedMessage | None:
    try:
        return parse_message(message)
    except MimeLimitError:
        return None
