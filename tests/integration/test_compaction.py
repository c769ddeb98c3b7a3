"""The rolling summary on the real store (SQLite and PostgreSQL): the trigger, the oldest half,
incremental continuation, branches, and stateless prefixes found again by their hash."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from multiturn.context.rounds import split_rounds
from multiturn.memory.compaction import RollingSummary
from multiturn.memory.summarizer import ExtractiveSummarizer
from multiturn.records import ConversationRecord, ItemRecord, NewItem
from multiturn.store import SQLStore
from multiturn.tokens import QwenTokenizer
from multiturn.types import Role, TextPart

SYSTEM = "You are a concise concierge."
NAMES = ["Alice", "Bruno", "Chiara", "Dmitri", "Elena", "Farid", "Greta", "Hiro", "Ines", "Jonas", "Kemal", "Lena"]
OTHER = ["Oskar", "Priya", "Quentin", "Rosa", "Stefan", "Tomoko", "Umberto", "Vera"]
TOKENS = QwenTokenizer()


def user_text(name: str, k: int) -> str:
    return f"{name} arrives on {k + 1} March at {10 + k}:15 and stays in room {100 + k}. Please note it."


@dataclass
class Spy:
    """The real extractive summarizer, recording what it was asked to fold in."""

    inner: ExtractiveSummarizer = field(default_factory=lambda: ExtractiveSummarizer(TOKENS))
    calls: list[tuple[str | None, list[str]]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.inner.name

    async def summarize(self, previous: str | None, items: Sequence[ItemRecord], *, target_tokens: int) -> str:
        self.calls.append((previous, [item.id for item in items]))
        return await self.inner.summarize(previous, items, target_tokens=target_tokens)


async def conversation(store: SQLStore) -> ConversationRecord:
    return await store.create_conversation(system_prompt=SYSTEM)


async def add_rounds(
    store: SQLStore, conv: ConversationRecord, parent: str | None, names: Sequence[str], *, open_last: bool = True
) -> list[ItemRecord]:
    """Append a round per name under ``parent``; the last round is the new input (no answer)."""
    added: list[ItemRecord] = []
    for k, name in enumerate(names):
        turns: list[tuple[Role, str]] = [("user", user_text(name, k))]
        if not (open_last and k == len(names) - 1):
            turns.append(("assistant", f"Noted: {name}, room {100 + k}."))
        for role, text in turns:
            item = await store.append(conv.id, parent, NewItem(role=role, content=(TextPart(text),)))
            parent = item.id
            added.append(item)
    return added


def window_between(tokens: int, *, trigger: float = 0.7, over: bool) -> int:
    """A window whose trigger share ``tokens`` just passes (``over``) or just does not."""
    return math.floor(tokens / trigger) - 1 if over else math.ceil(tokens / trigger) + 1


def round_end(path: Sequence[ItemRecord], index: int) -> str:
    return split_rounds(path)[index].items[-1].id


async def test_no_summary_below_the_trigger_and_the_oldest_half_above(store: SQLStore) -> None:
    conv = await conversation(store)
    path = await add_rounds(store, conv, None, NAMES[:8])
    memory = RollingSummary(store, ExtractiveSummarizer(TOKENS), TOKENS, min_summary_tokens=400)
    tokens = memory.context_tokens(SYSTEM, path, None)

    below = window_between(tokens, over=False)
    assert await memory.compact(conv.id, SYSTEM, path, window_tokens=below) is None
    assert await store.summaries(conv.id) == []

    summary = await memory.compact(conv.id, SYSTEM, path, window_tokens=window_between(tokens, over=True))
    assert summary is not None
    assert summary.through_item_id == round_end(path, 3)  # 8 rounds not yet summarized: the oldest 4
    (record,) = await store.summaries(conv.id)
    assert (record.text, record.through_item_id, record.model) == (summary.text, summary.through_item_id, "extractive")
    assert record.token_count == TOKENS.count(record.text) == summary.token_count
    for name in NAMES[:4]:
        assert f"{name} arrives on" in summary.text
    for name in NAMES[4:8]:
        assert name not in summary.text
    assert await memory.latest(conv.id, path) == summary


async def test_the_next_compaction_continues_from_the_previous_summary(store: SQLStore) -> None:
    conv = await conversation(store)
    path = await add_rounds(store, conv, None, NAMES[:12])
    spy = Spy()
    memory = RollingSummary(store, spy, TOKENS, min_summary_tokens=600)
    window = window_between(memory.context_tokens(SYSTEM, path, None), over=True)
    first = await memory.compact(conv.id, SYSTEM, path, window_tokens=window)
    assert first is not None and first.through_item_id == round_end(path, 5)

    # still over the trigger with the summary in place: the next 3 of the 6 open rounds go
    window = window_between(memory.context_tokens(SYSTEM, path, first), over=True)
    second = await memory.compact(conv.id, SYSTEM, path, window_tokens=window)
    assert second is not None and second.through_item_id == round_end(path, 8)
    previous, folded = spy.calls[1]
    assert previous == first.text  # incremental: the previous summary and only the next rounds
    assert folded == [item.id for r in split_rounds(path)[6:9] for item in r.items]
    for name in NAMES[:9]:
        assert f"{name} arrives on" in second.text
    for name in NAMES[9:]:
        assert name not in second.text
    assert len(await store.summaries(conv.id)) == 2
    assert await memory.latest(conv.id, path) == second

    # below the trigger now: the latest summary is returned and nothing is written
    roomy = window_between(memory.context_tokens(SYSTEM, path, second), over=False)
    assert await memory.compact(conv.id, SYSTEM, path, window_tokens=roomy) == second
    assert len(spy.calls) == 2 and len(await store.summaries(conv.id)) == 2


async def test_a_summary_of_another_branch_is_not_used(store: SQLStore) -> None:
    conv = await conversation(store)
    shared = await add_rounds(store, conv, None, NAMES[:2], open_last=False)
    branch_a = shared + await add_rounds(store, conv, shared[-1].id, NAMES[2:8])
    branch_b = shared + await add_rounds(store, conv, shared[-1].id, OTHER[:6])
    memory = RollingSummary(store, ExtractiveSummarizer(TOKENS), TOKENS, min_summary_tokens=400)

    window = window_between(memory.context_tokens(SYSTEM, branch_a, None), over=True)
    summary_a = await memory.compact(conv.id, SYSTEM, branch_a, window_tokens=window)
    assert summary_a is not None and summary_a.through_item_id == round_end(branch_a, 3)
    assert await memory.latest(conv.id, branch_b) is None  # A's rounds 2-3 are not on B

    window = window_between(memory.context_tokens(SYSTEM, branch_b, None), over=True)
    summary_b = await memory.compact(conv.id, SYSTEM, branch_b, window_tokens=window)
    assert summary_b is not None and summary_b.through_item_id == round_end(branch_b, 3)
    assert "Alice" in summary_b.text and "Oskar" in summary_b.text and "Chiara" not in summary_b.text
    assert await memory.latest(conv.id, branch_a) == summary_a
    assert await memory.latest(conv.id, branch_b) == summary_b


async def test_a_summary_covering_the_newest_round_is_not_offered(store: SQLStore) -> None:
    conv = await conversation(store)
    path = await add_rounds(store, conv, None, NAMES[:3])
    await store.add_summary(text="user: Bruno", conversation_id=conv.id, through_item_id=path[-1].id)
    assert await RollingSummary(store, ExtractiveSummarizer(TOKENS), TOKENS).latest(conv.id, path) is None


# -- stateless arrays --------------------------------------------------------------------------


def hashed_path(names: Sequence[str]) -> list[ItemRecord]:
    """An unstored path as the gateway builds it from an array (its system message first): each
    id hashes its message and its parent's id."""
    items: list[ItemRecord] = []
    parent = ""
    turns: list[tuple[Role, str]] = [("system", SYSTEM)]
    for k, name in enumerate(names):
        turns.append(("user", user_text(name, k)))
        if k < len(names) - 1:
            turns.append(("assistant", f"Noted: {name}."))
    for role, text in turns:
        parent = "msg_" + hashlib.sha256(f"{parent}\n{role}:{text}".encode()).hexdigest()[:32]
        items.append(ItemRecord(parent, "", None, role, (TextPart(text),), "completed", 0))
    return items


def user_round_end(path: Sequence[ItemRecord], index: int) -> str:
    """The last item of the ``index``-th round opened by a user (the preamble is not one)."""
    return [r for r in split_rounds(path) if not r.is_preamble][index].items[-1].id


async def test_a_resent_array_is_not_summarized_again(store: SQLStore) -> None:
    path = hashed_path(NAMES[:8])
    memory = RollingSummary(store, ExtractiveSummarizer(TOKENS), TOKENS, min_summary_tokens=400)
    window = window_between(memory.context_tokens(None, path, None), over=True)
    summary = await memory.compact_prefix(path, window_tokens=window)
    assert summary is not None and summary.through_item_id == user_round_end(path, 3)
    record = await store.summary_by_prefix(summary.through_item_id)
    assert record is not None and record.conversation_id is None and record.text == summary.text

    # Another process (a fresh cache) gets the same array and one more round.
    longer = hashed_path(NAMES[:9])
    assert longer[: len(path) - 1] == path[:-1]
    spy = Spy()
    fresh = RollingSummary(store, spy, TOKENS, min_summary_tokens=400)
    assert await fresh.latest_prefix(longer) == summary
    assert await fresh.latest_prefix(longer, tenant_id="another") is None
    with_summary = fresh.context_tokens(None, longer, summary)
    window = window_between(with_summary, over=False)
    assert fresh.context_tokens(None, longer, None) > 0.7 * window  # without it, this would summarize
    assert await fresh.compact_prefix(longer, window_tokens=window) == summary
    assert spy.calls == []


async def test_stateless_compaction_continues_from_the_stored_prefix(store: SQLStore) -> None:
    path = hashed_path(NAMES[:12])
    spy = Spy()
    memory = RollingSummary(store, spy, TOKENS, min_summary_tokens=600)
    first = await memory.compact_prefix(
        path, window_tokens=window_between(memory.context_tokens(None, path, None), over=True)
    )
    assert first is not None
    window = window_between(memory.context_tokens(None, path, first), over=True)
    second = await memory.compact_prefix(path, window_tokens=window)
    assert second is not None and second.through_item_id == user_round_end(path, 8)
    assert spy.calls[1][0] == first.text
    assert await RollingSummary(store, spy, TOKENS).latest_prefix(path) == second


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="trigger"):
        RollingSummary(None, ExtractiveSummarizer(TOKENS), TOKENS, trigger=1.5)  # type: ignore[arg-type]


async def test_latest_is_none_without_summaries(store: SQLStore) -> None:
    conv = await conversation(store)
    path = await add_rounds(store, conv, None, NAMES[:2])
    assert await RollingSummary(store, ExtractiveSummarizer(TOKENS), TOKENS).latest(conv.id, path) is None
    assert await RollingSummary(store, ExtractiveSummarizer(TOKENS), TOKENS).latest_prefix(path) is None
