"""The rolling summary: when to summarize, what, and where the result is kept.

``RollingSummary`` implements ``Compaction`` (``base.py``), which the engine calls around each
turn of a ``summary`` or ``auto`` policy:

- ``latest``: of the conversation's stored summaries, the one whose covered item
  (``through_item_id``) lies furthest along this path, before its newest round. A summary made on
  another branch covers an item that is not on this path and is never used here.
- ``compact``: the request this path would send without a window (system prompt, the latest
  summary, every item it does not cover) is measured with the tokenizer; past ``trigger`` x the
  model's window, the oldest half (by count) of the rounds not yet summarized is folded into the
  previous summary by the summarizer, stored (``add_summary``, with its token count and the
  summarizer's name) and returned. Rounds go whole; the newest round is never summarized (half
  of one round is none), so the turn's input always stays verbatim. Below the trigger, or with
  nothing to fold, the latest summary is returned unchanged.

Each compaction starts from the previous summary and covers the next rounds only, so the work per
compaction is bounded and the summary, placed right after the system prompt, changes only at
compaction (the prompt's prefix stays cacheable between). Compactions of one conversation are
serialized in this process, so a background compaction and the next turn's do not both fold
the same rounds.

Stateless requests (the gateway's opt-in policies) have no stored conversation: the gateway
gives each message an id that hashes its content and its parent's id, so a resent array has the
same ids. ``latest_prefix`` / ``compact_prefix`` do the same as above for such a path (its
system messages are items of it), storing the summary under ``prefix_hash`` = the id of the last
item it covers and finding it again by the ids of the path's round ends, so a resent array is not
summarized again. An array under the trigger is not looked up at all. The lookup is one query
for every round end this process does not already know (measured: ~8 ms for a 100-round array
with no summary, against 270-540 ms for one query per round end).

``build_compaction`` makes the configured one: extractive unless ``summary_model`` names a model.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Protocol

from ..backends.base import Backend
from ..context.rounds import Round, split_rounds
from ..context.summary import Summary, with_summary
from ..records import ItemRecord, SummaryRecord
from ..settings import Settings
from ..store.base import DEFAULT_TENANT
from ..tokens import Tokenizer, message_tokens
from ..types import Message
from .summarizer import ExtractiveSummarizer, ModelSummarizer, Summarizer

log = logging.getLogger(__name__)


class SummaryStore(Protocol):
    """The part of the store the rolling summary uses (``SQLStore`` has it)."""

    async def add_summary(
        self,
        *,
        text: str,
        tenant_id: str = DEFAULT_TENANT,
        conversation_id: str | None = None,
        through_item_id: str | None = None,
        prefix_hash: str | None = None,
        token_count: int | None = None,
        model: str | None = None,
    ) -> SummaryRecord: ...

    async def summaries(self, conversation_id: str, *, tenant_id: str = DEFAULT_TENANT) -> list[SummaryRecord]: ...

    async def summaries_by_prefix(
        self, prefix_hashes: Sequence[str], *, tenant_id: str = DEFAULT_TENANT
    ) -> list[SummaryRecord]: ...


_Save = Callable[[str, str, int], Awaitable[SummaryRecord]]
"""Stores (text, through item id, token count) where the caller keeps its summaries."""


class RollingSummary:
    """``Compaction`` by incremental summaries (see the module doc).

    Args:
        store: where summaries are kept.
        summarizer: writes each summary (``ExtractiveSummarizer`` offline).
        tokenizer: measures the path against the trigger and the summary against its target.
        trigger: the share of the model's window past which the path is compacted.
        summary_share: the summary's target size, as a share of the window ...
        max_summary_tokens: ... capped at this many tokens ...
        min_summary_tokens: ... and at least this many.
        prefix_cache: how many stateless prefixes' summaries to remember in this process.
    """

    def __init__(
        self,
        store: SummaryStore,
        summarizer: Summarizer,
        tokenizer: Tokenizer,
        *,
        trigger: float = 0.7,
        summary_share: float = 0.15,
        max_summary_tokens: int = 1024,
        min_summary_tokens: int = 48,
        prefix_cache: int = 4096,
    ) -> None:
        if not 0 < trigger <= 1:
            raise ValueError(f"trigger must be in (0, 1], not {trigger}")
        if not 0 < summary_share < 1:
            raise ValueError(f"summary_share must be in (0, 1), not {summary_share}")
        self.store = store
        self.summarizer = summarizer
        self.tokenizer = tokenizer
        self.trigger = trigger
        self.summary_share = summary_share
        self.max_summary_tokens = max_summary_tokens
        self.min_summary_tokens = min(min_summary_tokens, max_summary_tokens)
        self._locks: weakref.WeakValueDictionary[tuple[str, str], asyncio.Lock] = weakref.WeakValueDictionary()
        self._prefixes: OrderedDict[tuple[str, str], Summary] = OrderedDict()
        self._prefix_cache = prefix_cache

    # -- stored conversations ----------------------------------------------------------------

    async def latest(
        self, conversation_id: str, path: Sequence[ItemRecord], *, tenant_id: str = DEFAULT_TENANT
    ) -> Summary | None:
        ends = _usable_ends(path)
        best: tuple[int, SummaryRecord] | None = None
        for record in await self.store.summaries(conversation_id, tenant_id=tenant_id):  # newest first
            at = ends.get(record.through_item_id or "")
            if at is not None and (best is None or at > best[0]):
                best = (at, record)
        if best is None:
            return None
        record = best[1]
        return Summary(record.text, record.through_item_id or "", record.token_count)

    async def compact(
        self,
        conversation_id: str,
        system_prompt: str | None,
        path: Sequence[ItemRecord],
        *,
        window_tokens: int,
        tenant_id: str = DEFAULT_TENANT,
    ) -> Summary | None:
        async def save(text: str, through: str, tokens: int) -> SummaryRecord:
            return await self.store.add_summary(
                text=text,
                tenant_id=tenant_id,
                conversation_id=conversation_id,
                through_item_id=through,
                token_count=tokens,
                model=self.summarizer.name,
            )

        async with self._lock(tenant_id, conversation_id):
            latest = await self.latest(conversation_id, path, tenant_id=tenant_id)
            return await self._compact(system_prompt, path, latest, window_tokens, save)

    # -- stateless paths ---------------------------------------------------------------------

    async def latest_prefix(self, path: Sequence[ItemRecord], *, tenant_id: str = DEFAULT_TENANT) -> Summary | None:
        """The summary stored for the furthest round end of ``path`` (ids: a hash chain): one
        query for the round ends newer than a hit this process remembers."""
        usable = _usable_ends(path)
        ends = sorted(
            ((r.items[-1].id, usable[r.items[-1].id]) for r in split_rounds(path) if r.items[-1].id in usable),
            key=lambda pair: -pair[1],
        )  # round ends, newest first: summaries cover whole rounds
        cached = next(((at, s) for item_id, at in ends if (s := self._cached(tenant_id, item_id))), None)
        unknown = [item_id for item_id, at in ends if cached is None or at > cached[0]]
        if unknown:
            found = {r.prefix_hash: r for r in await self.store.summaries_by_prefix(unknown, tenant_id=tenant_id)}
            newest = next((item_id for item_id in unknown if item_id in found), None)
            if newest is not None:
                return self._hit(tenant_id, newest, found[newest])
        return cached[1] if cached else None

    async def compact_prefix(
        self, path: Sequence[ItemRecord], *, window_tokens: int, tenant_id: str = DEFAULT_TENANT
    ) -> Summary | None:
        """``compact`` for a stateless path (its system messages are items of it): the summary
        is stored under ``prefix_hash`` = the id of the last item it covers (storing a prefix
        already stored keeps the stored text)."""

        async def save(text: str, through: str, tokens: int) -> SummaryRecord:
            record = await self.store.add_summary(
                text=text, tenant_id=tenant_id, prefix_hash=through, token_count=tokens, model=self.summarizer.name
            )
            self._remember(tenant_id, Summary(record.text, through, record.token_count))
            return record

        if not path or self.context_tokens(None, path, None) <= self.trigger * window_tokens:
            return None  # the whole array fits under the trigger: no summary needed, none looked up
        async with self._lock(tenant_id, "prefix:" + path[0].id):
            latest = await self.latest_prefix(path, tenant_id=tenant_id)
            return await self._compact(None, path, latest, window_tokens, save)

    # -- the work ----------------------------------------------------------------------------

    def due(
        self, system_prompt: str | None, path: Sequence[ItemRecord], latest: Summary | None, window_tokens: int
    ) -> list[Round]:
        """The rounds to fold into ``latest`` now: none below the trigger, else the oldest half
        of the rounds after the one it covers (never the newest)."""
        positions = {item.id: i for i, item in enumerate(path)}
        through = positions.get(latest.through_item_id, -1) if latest else -1
        if self.context_tokens(system_prompt, path, latest) <= self.trigger * window_tokens:
            return []
        open_rounds = [
            r
            for r in split_rounds(path)
            if positions[r.items[0].id] > through and any(item.role != "system" for item in r.items)
        ]  # a preamble of system items only is pinned by the planner: nothing to summarize
        return open_rounds[: len(open_rounds) // 2]

    def context_tokens(self, system_prompt: str | None, path: Sequence[ItemRecord], latest: Summary | None) -> int:
        """What this path would send with ``latest`` and no window: the system prompt, the
        summary, the system items and every replayable item after the summary, reasoning left out."""
        positions = {item.id: i for i, item in enumerate(path)}
        through = positions.get(latest.through_item_id, -1) if latest else -1
        messages = [Message.of("system", system_prompt)] if system_prompt else []
        if latest is not None:
            messages = with_summary(messages, latest)
        for position, item in enumerate(path):
            if item.status != "failed" and (position > through or item.role == "system"):
                messages.append(replace(item.to_message(), reasoning=None))
        return sum(message_tokens(m, self.tokenizer) for m in messages)

    def target_tokens(self, window_tokens: int) -> int:
        share = int(window_tokens * self.summary_share)
        return max(self.min_summary_tokens, min(self.max_summary_tokens, share))

    async def _compact(
        self,
        system_prompt: str | None,
        path: Sequence[ItemRecord],
        latest: Summary | None,
        window_tokens: int,
        save: _Save,
    ) -> Summary | None:
        rounds = self.due(system_prompt, path, latest, window_tokens)
        if not rounds:
            return latest
        items = [item for r in rounds for item in r.items]
        text = await self.summarizer.summarize(
            latest.text if latest else None, items, target_tokens=self.target_tokens(window_tokens)
        )
        text = text.strip()
        if not text:
            log.info("the summarizer kept nothing of %d rounds; keeping the previous summary", len(rounds))
            return latest
        through = items[-1].id
        record = await save(text, through, self.tokenizer.count(text))
        log.info("summarized %d rounds through %s into %s tokens", len(rounds), through, record.token_count)
        return Summary(record.text, through, record.token_count)

    def _lock(self, tenant_id: str, key: str) -> asyncio.Lock:
        lock = self._locks.get((tenant_id, key))
        if lock is None:
            lock = self._locks[(tenant_id, key)] = asyncio.Lock()
        return lock

    def _hit(self, tenant_id: str, item_id: str, record: SummaryRecord) -> Summary:
        summary = Summary(record.text, item_id, record.token_count)
        self._remember(tenant_id, summary)
        return summary

    def _cached(self, tenant_id: str, item_id: str) -> Summary | None:
        return self._prefixes.get((tenant_id, item_id))

    def _remember(self, tenant_id: str, summary: Summary) -> None:
        key = (tenant_id, summary.through_item_id)
        self._prefixes[key] = summary
        self._prefixes.move_to_end(key)
        while len(self._prefixes) > self._prefix_cache:
            self._prefixes.popitem(last=False)


def _usable_ends(path: Sequence[ItemRecord]) -> dict[str, int]:
    """Position of every item before the newest round: what a usable summary may cover."""
    rounds = split_rounds(path)
    newest = len(path) - len(rounds[-1].items) if rounds else 0
    return {item.id: position for position, item in enumerate(path[:newest])}


def build_compaction(
    settings: Settings,
    store: SummaryStore,
    backend_for: Callable[[str], Backend],
    tokenizer: Tokenizer,
) -> RollingSummary:
    """The configured rolling summary: a model summarizer when ``settings.summary_model`` names
    a model (resolved now, so an unknown name fails at start-up), else the extractive one.

    Raises:
        ModelNotFound: ``summary_model`` names no model.
    """
    summarizer: Summarizer
    if settings.summary_model:
        summarizer = ModelSummarizer(backend_for(settings.summary_model))
    else:
        summarizer = ExtractiveSummarizer(tokenizer)
    return RollingSummary(store, summarizer, tokenizer, trigger=settings.summary_trigger)


__all__ = ["RollingSummary", "SummaryStore", "build_compaction"]
