"""What the web inspector reads and changes, for one tenant (``server/inspector_routes.py``
translates it; no router reaches the store).

- ``conversations``: the tenant's conversations, newest activity first, optionally those
  whose title or an item of whose tree holds every word of a text (``Store.find_conversations``).
- ``tree``: a conversation and every item of its tree (every branch), oldest first.
- ``move_head``: switch branches (the head becomes any item of the tree, or none).
- ``retry``: a new answer to a user item, a sibling of the answers it has.
- ``turn``: one stored answer's context, from its stored ``ContextReport``: every item of its
  request's path with its fate (kept, summarized with the summary's text, recalled with its
  score and why, dropped), the token split by component, the cached prefix, and how the
  rendered prompt departs from the previous turn's (``context/prompt_diff.py``).

What the report does not store is derived, and said to be: the summary a turn used is the
stored summary through the last summarized item; why a round was recalled is the words it
shares with the new input (the lexical half of recall), or its neighbourhood to such a round, or
else meaning (the dense half); the rendered prompts are multiturn's ChatML rendering, the same
for every backend.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Protocol, runtime_checkable

from ..context.prompt_diff import PromptDiff, PromptParts, explain, parts_of
from ..errors import InvalidInput
from ..memory.query import build_query, content_words
from ..memory.ranking import unit_text, units
from ..records import ConversationRecord, ItemRecord, SummaryRecord
from ..types import ContextReport, Fate, GenerationParams, Message
from .core import Engine, PolicyChoice
from .turns import Turn, TurnOptions

NEIGHBOUR_REACH = 4
"""How far (in recall units) a hit lifts its neighbours' scores (``memory/ranking.py``)."""


@runtime_checkable
class _Summaries(Protocol):
    async def summaries(self, conversation_id: str, *, tenant_id: str = ...) -> list[SummaryRecord]: ...


@dataclass(frozen=True, slots=True)
class Listed:
    """A conversation in the list: its record, its title (else its first user text), what
    matched a search."""

    conversation: ConversationRecord
    preview: str
    matched: str | None = None


@dataclass(frozen=True, slots=True)
class Fated:
    """One item of a turn's request path and what the turn did with it."""

    item: ItemRecord
    position: int
    fate: Fate
    score: float | None = None
    """The recall score of its round (recalled items)."""
    why: str | None = None
    """Why it was recalled, or why it was dropped when the reason is known."""


@dataclass(frozen=True, slots=True)
class TurnContext:
    """A stored answer's context, as the inspector shows it."""

    conversation: ConversationRecord
    answer: ItemRecord
    report: ContextReport
    items: tuple[Fated, ...]
    summary: SummaryRecord | None
    query_words: tuple[str, ...]
    """The new input's words recall searched for."""
    previous_id: str | None
    """The previous answer on the path (whose prompt a prefix cache holds), if any."""
    diff: PromptDiff | None
    """How this prompt departs from the previous turn's (``None`` for a first turn)."""


def report_of(item: ItemRecord) -> ContextReport | None:
    """An item's stored report; ``None`` when it has none (an item a client appended, an
    imported one) or its turn ended before it was planned."""
    report = item.context_report
    return report if report is not None and report.planned else None


class Inspector:
    """The inspector's operations on ``engine``'s tenant (``Engine.for_tenant``)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- conversations ---------------------------------------------------------------------------

    async def conversations(self, query: str | None = None, *, limit: int = 50) -> list[Listed]:
        engine, tenant = self.engine, self.engine.tenant_id
        words = (query or "").split()
        if words:
            found = await engine.store.find_conversations(words, tenant_id=tenant, limit=limit)
        else:
            found = [(c, None) for c in await engine.store.list_conversations(tenant_id=tenant, limit=limit)]
        untitled = [c.id for c, _ in found if not c.title]
        firsts = await engine.store.first_user_items(untitled, tenant_id=tenant)
        listed: list[Listed] = []
        for conversation, item in found:
            first = firsts.get(conversation.id)
            preview = conversation.title or (first.text if first is not None else "")
            matched = None
            if words:
                matched = (conversation.title or "") if item is None else _snippet(item.text, words[0].lower())
            listed.append(Listed(conversation, preview[:200], matched))
        return listed

    async def tree(self, conversation_id: str) -> tuple[ConversationRecord, list[ItemRecord]]:
        conversation = await self.engine.get(conversation_id)
        return conversation, await self.engine.store.items(conversation_id, tenant_id=self.engine.tenant_id)

    async def move_head(self, conversation_id: str, item_id: str | None) -> ConversationRecord:
        """Make ``item_id`` (``None``: the empty root) the conversation's head: the branch the
        next turn continues. Raises NotFound for an item of another conversation."""
        if item_id is not None:
            await self.engine.item(conversation_id, item_id)
        return await self.engine.update(conversation_id, head_item_id=item_id)

    async def retry(
        self,
        conversation_id: str,
        item_id: str,
        params: GenerationParams,
        *,
        policy: PolicyChoice | None = None,
        model: str | None = None,
    ) -> Turn:
        """A turn answering the user item ``item_id`` again (or the user item an answer
        ``item_id`` answered): its answer is a sibling of the earlier ones, and the head."""
        item = await self.engine.item(conversation_id, item_id)
        if item.role == "assistant" and item.parent_id is not None:
            item = await self.engine.item(conversation_id, item.parent_id)
        if item.role != "user":
            raise InvalidInput(f"item {item_id!r} is neither a user message nor the answer to one: nothing to retry")
        options = TurnOptions(parent_id=item.id, model=model)
        return self.engine.turn(conversation_id, None, params, policy=policy, options=options)

    # -- one turn's context ----------------------------------------------------------------------

    async def turn(self, conversation_id: str, item_id: str) -> TurnContext:
        """The context of the stored answer ``item_id`` (see the module docstring).

        Raises:
            NotFound: no such conversation or item (for this tenant).
            InvalidInput: the item is not an answer, or has no report of its path.
        """
        engine = self.engine
        conversation = await engine.get(conversation_id)
        answer = await engine.item(conversation_id, item_id)
        if answer.role != "assistant":
            raise InvalidInput(f"item {item_id!r} is a {answer.role} message: only answers have a context report")
        report = report_of(answer)
        if report is None:
            raise InvalidInput(f"answer {item_id!r} has no context report (it was imported, or failed before planning)")
        path = await engine.path(conversation_id, answer.parent_id)
        if report.items != len(path):
            raise InvalidInput(
                f"the report of {item_id!r} counts {report.items} items but its path now holds {len(path)} "
                "(items were erased since)"
            )
        newest = next((n for n in range(len(path) - 1, -1, -1) if path[n].role == "user"), 0)
        query = build_query(path[newest:], path[:newest])
        words = tuple(content_words(f"{query.text}\n{query.previous}"))
        summaries = await self._summaries(conversation_id)
        summary = _summary_for(summaries, path, report, answer.created_at)
        recall_units = [(ids, unit_text((ids, items))) for ids, items in units(path[:newest])]
        items = _fated(path, report, recall_units, words)
        previous_at = next((n for n in range(newest - 1, -1, -1) if path[n].role == "assistant"), None)
        diff = None
        if previous_at is not None:
            instructions = await engine.answer_instructions(conversation_id)
            diff = self._diff(conversation, path, report, answer, previous_at, summaries, recall_units, instructions)
        return TurnContext(
            conversation=conversation,
            answer=answer,
            report=report,
            items=items,
            summary=summary,
            query_words=words,
            previous_id=path[previous_at].id if previous_at is not None else None,
            diff=diff,
        )

    def _diff(
        self,
        conversation: ConversationRecord,
        path: Sequence[ItemRecord],
        report: ContextReport,
        answer: ItemRecord,
        previous_at: int,
        summaries: Sequence[SummaryRecord],
        recall_units: Sequence[tuple[tuple[str, ...], str]],
        instructions: Mapping[str, str],
    ) -> PromptDiff | None:
        """This turn's prompt against the previous answer's prompt and that answer (``None``
        when the previous answer has no report of its path). A Responses turn's own
        ``instructions`` stand in its prompt for the system prompt."""
        prior = path[previous_at]
        before = report_of(prior)
        if before is None or before.items != previous_at:
            return None
        earlier = _summary_for(summaries, path[:previous_at], before, prior.created_at)
        old = self._parts(conversation, path[:previous_at], before, earlier, recall_units, prior, instructions)
        summary = _summary_for(summaries, path, report, answer.created_at)
        new = self._parts(conversation, path, report, summary, recall_units, answer, instructions)
        new = replace(new, answer=None)
        cached = answer.usage.cached_tokens if answer.usage else None
        return explain(old, new, self.engine.tokenizer, cached_tokens=cached)

    def _parts(
        self,
        conversation: ConversationRecord,
        path: Sequence[ItemRecord],
        report: ContextReport,
        summary: SummaryRecord | None,
        recall_units: Sequence[tuple[tuple[str, ...], str]],
        answer: ItemRecord,
        instructions: Mapping[str, str],
    ) -> PromptParts:
        engine = self.engine
        model = answer.model or conversation.model or engine.default_model
        try:
            replay = engine.policy(conversation, model, report.policy).reasoning_replay
        except InvalidInput:
            replay = "drop"
        return parts_of(
            instructions.get(answer.id, conversation.system_prompt),
            path,
            report,
            summary=summary.text if summary else None,
            recalled=recall_units,
            answer=Message("assistant", answer.content, answer.reasoning, answer.tool_calls),
            model=model,
            reasoning_replay=replay,
        )

    async def _summaries(self, conversation_id: str) -> list[SummaryRecord]:
        store = self.engine.store
        if not isinstance(store, _Summaries):
            return []
        return await store.summaries(conversation_id, tenant_id=self.engine.tenant_id)


def _summary_for(
    summaries: Sequence[SummaryRecord], path: Sequence[ItemRecord], report: ContextReport, before: int
) -> SummaryRecord | None:
    """The stored summary a turn used: the one through its last summarized item, the newest
    made before the turn ended."""
    if not report.summarized:
        return None
    through = report.summarized[-1][1]
    if through >= len(path):
        return None
    candidates = [s for s in summaries if s.through_item_id == path[through].id]  # newest first
    return next((s for s in candidates if s.created_at <= before), candidates[-1] if candidates else None)


def _fated(
    path: Sequence[ItemRecord],
    report: ContextReport,
    recall_units: Sequence[tuple[tuple[str, ...], str]],
    words: Sequence[str],
) -> tuple[Fated, ...]:
    at = {item.id: n for n, item in enumerate(path)}
    matches = [[w for w in words if w in set(content_words(text))] for _, text in recall_units]
    unit_of = {item_id: u for u, (ids, _) in enumerate(recall_units) for item_id in ids}
    out: list[Fated] = []
    for n, item in enumerate(path):
        fate = report.fate(n)
        why: str | None = None
        score = report.recalled_scores.get(n)
        if fate == "recalled" and item.id in unit_of:
            why = _why(unit_of[item.id], matches, recall_units, at)
        elif fate == "dropped" and item.status == "failed":
            why = "a failed answer is never sent"
        elif fate == "dropped" and item.role == "assistant" and not item.content and not item.tool_calls:
            why = "an empty answer is never sent"
        out.append(Fated(item, n, fate, score if fate == "recalled" else None, why))
    return tuple(out)


def _why(
    unit: int, matches: Sequence[list[str]], recall_units: Sequence[tuple[tuple[str, ...], str]], at: dict[str, int]
) -> str:
    if matches[unit]:
        return "shares words with the new input: " + ", ".join(matches[unit][:8])
    for distance in range(1, NEIGHBOUR_REACH + 1):
        for other in (unit - distance, unit + distance):
            if 0 <= other < len(matches) and matches[other]:
                where = at.get(recall_units[other][0][0], other)
                return (
                    f"next to #{where}, which shares {', '.join(matches[other][:4])} (neighbours share a hit's score)"
                )
    return "no shared words: close in meaning to the new input (embedding similarity)"


def _snippet(text: str, word: str, width: int = 80) -> str:
    at = max(0, text.lower().find(word) - width // 2)
    return ("…" if at else "") + text[at : at + width] + ("…" if at + width < len(text) else "")


__all__ = ["Fated", "Inspector", "Listed", "TurnContext", "report_of"]
