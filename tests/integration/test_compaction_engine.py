"""The engine with the ``summary`` policy on the real embedded model, a small window and a real
SQLite store: compaction inline and in the background, and a summarizer that fails for real
(an upstream alias answering 500) while the user's turns complete."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path

import pytest

from multiturn import Settings
from multiturn.backends.registry import BackendRegistry
from multiturn.context.summary import SUMMARY_PREFIX, SUMMARY_SUFFIX
from multiturn.engine import Engine
from multiturn.memory.compaction import RollingSummary, build_compaction
from multiturn.memory.summarizer import ExtractiveSummarizer, ModelSummarizer
from multiturn.records import ItemRecord
from multiturn.settings import ModelAlias
from multiturn.store import SQLStore
from multiturn.tokens import QwenTokenizer
from multiturn.types import ChatRequest, GenerationParams, Message, Reply, TextPart
from support.fake_upstream import FakeUpstream
from support.reports import fated

pytestmark = pytest.mark.model

SYSTEM = "You are a concise concierge. Answer in one short sentence."
GUESTS = ["Alice", "Bruno", "Chiara", "Dmitri", "Elena", "Farid", "Greta", "Hiro", "Ines", "Jonas", "Kemal", "Lena"]
PARAMS = GenerationParams(max_tokens=8, temperature=0.0)
TOKENS = QwenTokenizer()


def note(k: int) -> str:
    name = GUESTS[k]
    return (
        f"{name} arrives on {k + 1} March at {10 + k}:15, stays in room {100 + k} and wants a late checkout. "
        f"{name} booked the spa for {k + 2} March at 09:{10 + k} and pays {200 + 15 * k} euros by card. "
        "Please confirm."
    )


@pytest.fixture
def small(model_settings: Settings) -> Settings:
    """The real model with a 512-token window: the trigger (70 %) is reached within a few turns."""
    return model_settings.model_copy(update={"n_ctx": 512})


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLStore]:
    s = SQLStore(f"sqlite:///{tmp_path / 'compaction.db'}")
    await s.migrate()
    yield s
    await s.close()


@pytest.fixture
async def registry(small: Settings) -> AsyncIterator[BackendRegistry]:
    backends = BackendRegistry(small)
    yield backends
    await backends.aclose()


async def turn(engine: Engine, conversation_id: str, text: str) -> Reply:
    events = [e async for e in engine.send(conversation_id, (TextPart(text),), PARAMS, policy="summary")]
    reply = events[-1]
    assert isinstance(reply, Reply)
    return reply


def assistant(path: list[ItemRecord], reply: Reply) -> ItemRecord:
    return next(item for item in path if item.id == reply.item_id)


@pytest.mark.parametrize("background", [False, True], ids=["inline", "background"])
async def test_the_summary_policy_compacts_and_the_report_says_what_it_covers(
    small: Settings, store: SQLStore, registry: BackendRegistry, background: bool
) -> None:
    memory = RollingSummary(store, ExtractiveSummarizer(TOKENS), TOKENS)
    engine = Engine(store, registry.get, default_model=small.model, compaction=memory, background_compaction=background)
    conv = await engine.create(system_prompt=SYSTEM)
    replies: list[Reply] = []
    compacted_at: int | None = None
    for k in range(10):
        replies.append(await turn(engine, conv.id, note(k)))
        assert replies[-1].status == "completed"
        await engine.drain()
        if compacted_at is None and await store.summaries(conv.id):
            compacted_at = k
        if compacted_at is not None and k >= compacted_at + 1:
            break
    assert compacted_at is not None, "no summary within 10 turns of a 512-token window"
    assert compacted_at >= 2  # below 70 % of the window nothing was summarized

    record = (await store.summaries(conv.id))[-1]  # the first summary (newest first)
    path = await engine.history(conv.id)
    ids = [item.id for item in path]
    through = ids.index(record.through_item_id or "")
    assert path[through].role == "assistant" and path[through + 1].role == "user"  # whole rounds
    alice = note(0).split(". ")[:2]  # the first round's facts, kept verbatim
    assert any(sentence in record.text for sentence in alice), record.text
    assert record.model == "extractive" and record.token_count == TOKENS.count(record.text)

    # The turn that compacted inline already used the summary; a background summary serves the
    # next turn. Either way the report lists the covered items as summarized, not dropped.
    used_at = compacted_at + 1 if background else compacted_at
    report = assistant(path, replies[used_at]).context_report
    assert report is not None
    assert fated(report, path, "summarized") == tuple(ids[: through + 1])
    assert report.summarized == ((0, through),)
    assert not set(ids[: through + 1]) & set(fated(report, path, "kept"))
    assert report.tokens_by_part["summary"] > 0
    assert report.budget is not None and report.tokens <= report.budget
    if background:
        before = assistant(path, replies[compacted_at]).context_report
        assert before is not None and before.summarized == ()
    # earlier turns, under the trigger, summarized nothing
    first = assistant(path, replies[0]).context_report
    assert first is not None and first.summarized == () and first.tokens_by_part["summary"] == 0


@pytest.fixture
def failing() -> Iterator[FakeUpstream]:
    with FakeUpstream() as server:
        server.fault = "error-500"
        yield server


@pytest.mark.parametrize("background", [False, True], ids=["inline", "background"])
async def test_a_failing_summarizer_never_fails_the_turn(
    small: Settings,
    store: SQLStore,
    failing: FakeUpstream,
    background: bool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = small.model_copy(
        update={
            "models": {"summarizer": ModelAlias(backend="upstream", base_url=failing.base_url, model="qwen-plus")},
            "summary_model": "summarizer",
            "summary_trigger": 0.05,  # every turn with an earlier round compacts
            "upstream_retries": 0,
        }
    )
    backends = BackendRegistry(settings)
    try:
        memory = build_compaction(settings, store, backends.get, TOKENS)
        assert isinstance(memory.summarizer, ModelSummarizer)
        engine = Engine(
            store, backends.get, default_model=settings.model, compaction=memory, background_compaction=background
        )
        conv = await engine.create(system_prompt=SYSTEM)
        with caplog.at_level(logging.WARNING, logger="multiturn.engine"):
            replies = [await turn(engine, conv.id, note(k)) for k in range(2)]
            await engine.drain()
    finally:
        await backends.aclose()

    assert [r.status for r in replies] == ["completed"] * 2
    assert all(r.content for r in replies)
    calls = failing.bodies()
    assert calls and all(body["messages"][0]["content"].startswith("You keep the running summary") for body in calls)
    assert len(calls) == 1  # the second turn has an earlier round to fold in (before it, or after it)
    assert await store.summaries(conv.id) == []
    assert any("summarize failed" in r.getMessage() for r in caplog.records)
    path = await engine.history(conv.id)
    assert [item.status for item in path] == ["completed"] * 4
    last = path[-1].context_report
    assert last is not None and last.summarized == ()


def test_build_compaction_is_extractive_by_default(small: Settings) -> None:
    memory = build_compaction(small, None, BackendRegistry(small).get, TOKENS)  # type: ignore[arg-type]
    assert isinstance(memory.summarizer, ExtractiveSummarizer)
    assert memory.trigger == small.summary_trigger


class Counting(ExtractiveSummarizer):
    """The real extractive summarizer, counting its calls."""

    calls = 0

    async def summarize(self, previous: str | None, items: Sequence[ItemRecord], *, target_tokens: int) -> str:
        self.calls += 1
        return await super().summarize(previous, items, target_tokens=target_tokens)


async def test_a_growing_stateless_array_is_summarized_once_per_compaction(
    small: Settings, store: SQLStore, registry: BackendRegistry
) -> None:
    """A client resending its whole array each turn (the gateway's opt-in policies): the summary is
    made when the array passes the trigger, then found again by hash instead of being redone."""
    summarizer = Counting(TOKENS)
    engine = Engine(
        store, registry.get, default_model=small.model, compaction=RollingSummary(store, summarizer, TOKENS)
    )
    messages = [Message.of("system", SYSTEM)]
    summarized_at: int | None = None
    for k in range(12):
        messages.append(Message.of("user", note(k).split(". ")[0] + "."))  # ~30 tokens a turn
        request = ChatRequest(model=small.model, messages=tuple(messages), params=PARAMS)
        planned, report, ids = await engine.plan_stateless(request, "summary")
        through = report.summarized[-1][1] if report.summarized else None
        if through is not None and summarized_at is None:
            summarized_at = k
            assert summarizer.calls == 1
            assert planned.messages[0].text.startswith(f"{SYSTEM}\n\n{SUMMARY_PREFIX}")  # one system message
            assert planned.messages[1].role == "user"
            text = planned.messages[0].text
            summary = text.removeprefix(f"{SYSTEM}\n\n{SUMMARY_PREFIX}").removesuffix(SUMMARY_SUFFIX)
            covered = [m.text for m in messages[1 : through + 1]]
            assert summary and all(line.removeprefix("user: ") in covered for line in summary.splitlines())
            record = await store.summary_by_prefix(ids[through])
            assert record is not None and record.conversation_id is None
            assert fated(report, ids, "summarized") == tuple(ids[1 : through + 1])
        elif summarized_at is not None:
            assert report.summarized  # the stored summary, found by the hash of its prefix
        if summarized_at is not None and k == summarized_at + 1:
            break
        messages.append(Message.of("assistant", f"Noted for {GUESTS[k]}."))
    assert summarized_at is not None and summarized_at >= 2
    assert summarizer.calls == 1  # the next request, over the same prefix and under the trigger: found, not redone
    # the same array again, from another process (nothing cached): still no new summary
    again = RollingSummary(store, summarizer, TOKENS)
    engine = Engine(store, registry.get, default_model=small.model, compaction=again)
    _, report, _ = await engine.plan_stateless(request, "summary")
    assert report.summarized and summarizer.calls == 1
