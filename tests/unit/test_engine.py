"""The engine's sequencing with a scripted backend (fast, deterministic) on a real SQLite store.

The behaviour on the real model is shown in tests/integration; here the backend's output is
fixed so that reasoning, failures and interruptions can be produced on purpose.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncGenerator, Sequence
from pathlib import Path

import pytest

from multiturn.backends.base import BackendInfo
from multiturn.backends.registry import BackendRegistry
from multiturn.backends.thinking import ThinkSplitter
from multiturn.client import AsyncClient, build_engine
from multiturn.context.budget import measured_overhead
from multiturn.context.plan import Policy
from multiturn.engine import Engine
from multiturn.errors import BackendError, InvalidInput
from multiturn.memory.recall import IndexRecall
from multiturn.records import ConversationRecord, ItemRecord
from multiturn.settings import ModelAlias, Settings
from multiturn.store import SQLStore
from multiturn.types import ChatRequest, ContextReport, Delta, GenerationParams, Message, Reply, TextPart, Usage


class ScriptedBackend:
    """Replies with the next scripted text, split into thinking and content as a model would."""

    def __init__(self, *replies: str, fail_after: int | None = None) -> None:
        self.replies = list(replies)
        self.requests: list[list[Message]] = []
        self.fail_after = fail_after

    def info(self) -> BackendInfo:
        return BackendInfo(name="scripted", context_window=4096, max_output_tokens=512)

    async def prepare(self) -> None:
        return None

    async def count_tokens(self, text: str) -> int:
        return len(text.split())

    async def generate(self, messages: Sequence[Message], params: GenerationParams) -> AsyncGenerator[Delta, None]:
        self.requests.append(list(messages))
        splitter = ThinkSplitter()
        text = self.replies.pop(0)
        for index, piece in enumerate(text.split(" ")):
            if self.fail_after is not None and index >= self.fail_after:
                raise BackendError("the scripted backend failed")
            content, reasoning = splitter.feed(piece + " ")
            yield Delta(content=content, reasoning=reasoning)
        yield Delta(finish_reason="stop", usage=Usage(prompt_tokens=10, completion_tokens=len(text.split())))


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncGenerator[SQLStore, None]:
    store = SQLStore(f"sqlite:///{tmp_path / 'e.db'}")
    await store.migrate()
    yield store
    await store.close()


async def _turn(engine: Engine, conversation_id: str, text: str) -> list[Delta | Reply]:
    return [event async for event in engine.send(conversation_id, (TextPart(text),), GenerationParams())]


async def test_reasoning_is_streamed_apart_stored_apart_and_never_replayed(sqlite_store: SQLStore) -> None:
    backend = ScriptedBackend("<think>the user greets me</think> Hello there", "Fine thanks")
    engine = Engine(sqlite_store, lambda name: backend, default_model="scripted")
    conversation = await engine.create(system_prompt="Be brief.")

    events = await _turn(engine, conversation.id, "Hi")
    deltas = [e for e in events if isinstance(e, Delta)]
    reply = events[-1]
    assert isinstance(reply, Reply)
    assert "".join(d.reasoning for d in deltas).strip() == "the user greets me"
    assert "think" not in "".join(d.content for d in deltas)
    assert reply.content.strip() == "Hello there" and reply.reasoning.strip() == "the user greets me"

    stored = (await engine.history(conversation.id))[-1]
    assert stored.reasoning is not None and stored.reasoning.strip() == "the user greets me"
    assert stored.text.strip() == "Hello there"

    await _turn(engine, conversation.id, "How are you?")
    second_request = backend.requests[1]
    assert [m.role for m in second_request] == ["system", "user", "assistant", "user"]
    assert all(m.reasoning is None for m in second_request)
    assert "greets" not in repr(second_request)


async def test_a_failure_before_any_output_stores_a_failed_item_and_keeps_the_user_item(
    sqlite_store: SQLStore,
) -> None:
    engine = Engine(sqlite_store, lambda name: ScriptedBackend("never said", fail_after=0), default_model="s")
    conversation = await engine.create()
    with pytest.raises(BackendError):
        await _turn(engine, conversation.id, "Hello")
    path = await engine.history(conversation.id)
    assert [(i.role, i.status) for i in path] == [("user", "completed"), ("assistant", "failed")]
    assert path[1].finish_reason == "error"
    report = path[1].context_report
    assert report is not None and report.planned  # planned, then the model failed: the plan is kept with the error
    assert report.error is not None and "scripted backend failed" in report.error


async def test_a_failure_mid_answer_keeps_what_was_generated(sqlite_store: SQLStore) -> None:
    engine = Engine(sqlite_store, lambda name: ScriptedBackend("one two three four", fail_after=2), default_model="s")
    conversation = await engine.create()
    with pytest.raises(BackendError):
        await _turn(engine, conversation.id, "Count")
    answer = (await engine.history(conversation.id))[-1]
    assert (answer.status, answer.text.strip()) == ("incomplete", "one two")


async def test_failed_items_are_not_replayed(sqlite_store: SQLStore) -> None:
    failing = ScriptedBackend("x", fail_after=0)
    working = ScriptedBackend("ok")
    backends = iter([failing, working])
    current = {"backend": next(backends)}
    engine = Engine(sqlite_store, lambda name: current["backend"], default_model="s")  # type: ignore[arg-type,return-value]
    conversation = await engine.create()
    with pytest.raises(BackendError):
        await _turn(engine, conversation.id, "first")
    current["backend"] = next(backends)
    await _turn(engine, conversation.id, "second")
    assert [m.role for m in working.requests[0]] == ["user", "user"]


async def test_empty_input_is_refused_before_anything_is_written(sqlite_store: SQLStore) -> None:
    engine = Engine(sqlite_store, lambda name: ScriptedBackend(), default_model="s")
    conversation = await engine.create()
    for text in ("", "   ", "\n"):
        with pytest.raises(InvalidInput):
            await _turn(engine, conversation.id, text)
    assert await sqlite_store.items(conversation.id) == []


class SmallWindowBackend(ScriptedBackend):
    def __init__(self, window: int, *replies: str) -> None:
        super().__init__(*replies)
        self.window = window

    def info(self) -> BackendInfo:
        return BackendInfo(name="small", context_window=self.window, max_output_tokens=64)


async def test_the_window_policy_drops_old_rounds_in_blocks_and_reports_them(sqlite_store: SQLStore) -> None:
    backend = SmallWindowBackend(400, *(f"answer number {n} " * 6 for n in range(12)))
    engine = Engine(sqlite_store, lambda name: backend, default_model="s", default_policy="window")
    conversation = await engine.create(system_prompt="Be brief.")
    params = GenerationParams(max_tokens=64)
    for n in range(12):
        [e async for e in engine.send(conversation.id, (TextPart(f"question number {n} " * 6),), params)]

    first_kept = []
    for request in backend.requests:
        assert request[0].role == "system" and request[-1].role == "user"
        first_kept.append(next(m.text for m in request if m.role == "user"))
    assert backend.requests[-1][-1].text.startswith("question number 11")
    assert first_kept[0].startswith("question number 0")
    assert not first_kept[-1].startswith("question number 0")  # old rounds went
    drops = sum(1 for a, b in itertools.pairwise(first_kept) if a != b)
    assert 1 <= drops < len(first_kept) // 2  # in blocks, not one round per turn

    last = (await engine.history(conversation.id))[-1]
    assert last.context_report is not None
    assert last.context_report.policy == "window"
    assert last.context_report.kept and last.context_report.kept[0][0] > 0  # the oldest went
    assert last.context_report.budget is not None and last.context_report.tokens <= last.context_report.budget


async def test_the_full_policy_keeps_everything(sqlite_store: SQLStore) -> None:
    backend = SmallWindowBackend(100_000, *("ok" for _ in range(5)))
    engine = Engine(sqlite_store, lambda name: backend, default_model="s", default_policy="full")
    conversation = await engine.create()
    for n in range(5):
        [e async for e in engine.send(conversation.id, (TextPart(f"q{n}"),), GenerationParams())]
    assert len(backend.requests[-1]) == 9


async def test_a_message_larger_than_the_window_fails_the_turn_clearly(sqlite_store: SQLStore) -> None:
    from multiturn.errors import ContextTooLong

    backend = SmallWindowBackend(200, "never")
    engine = Engine(sqlite_store, lambda name: backend, default_model="s")
    conversation = await engine.create()
    with pytest.raises(ContextTooLong, match=r"Range of input length should be \[1, \d+\]: the newest message alone"):
        [e async for e in engine.send(conversation.id, (TextPart("word " * 500),), GenerationParams(max_tokens=16))]
    assert backend.requests == []
    # A refused turn changes nothing: no item, no open turn, and the conversation answers again.
    assert await sqlite_store.items(conversation.id) == []
    assert await sqlite_store.abandoned_turns() == []
    events = [e async for e in engine.send(conversation.id, (TextPart("short"),), GenerationParams(max_tokens=16))]
    assert isinstance(events[-1], Reply) and events[-1].status == "completed"
    assert [i.role for i in await engine.history(conversation.id)] == ["user", "assistant"]


async def test_a_history_the_full_policy_cannot_fit_is_refused_as_such(sqlite_store: SQLStore) -> None:
    """``full`` drops nothing: when the whole history no longer fits, the refusal says so (not
    that the newest message is too long) and the conversation stays as it was."""
    from multiturn.errors import ContextTooLong

    backend = SmallWindowBackend(300, *(f"answer {n} " * 8 for n in range(20)))
    engine = Engine(sqlite_store, lambda name: backend, default_model="s", default_policy="full")
    conversation = await engine.create()
    params = GenerationParams(max_tokens=16)
    with pytest.raises(ContextTooLong) as refused:
        for n in range(20):
            [e async for e in engine.send(conversation.id, (TextPart(f"question {n} " * 8),), params)]
    message = refused.value.message
    assert "'full' policy sends the whole history" in message and "nothing was stored" in message, message
    assert "newest message alone" not in message
    kept = await engine.history(conversation.id)
    assert len(kept) == 2 * len(backend.requests)  # every answered round, and nothing of the refused one


async def test_an_unknown_policy_is_refused(sqlite_store: SQLStore) -> None:
    engine = Engine(sqlite_store, lambda name: ScriptedBackend("x"), default_model="s")
    conversation = await engine.create()
    with pytest.raises(InvalidInput):
        [e async for e in engine.send(conversation.id, (TextPart("hi"),), GenerationParams(), policy="nonsense")]
    assert await sqlite_store.items(conversation.id) == []  # refused before anything was written


def _answer(prompt_tokens: int, planned: int, template: int) -> ItemRecord:
    return ItemRecord(
        id="item_a",
        conversation_id="conv",
        parent_id=None,
        role="assistant",
        content=(TextPart("ok"),),
        status="completed",
        created_at=0,
        usage=Usage(prompt_tokens=prompt_tokens, completion_tokens=1),
        context_report=ContextReport(policy="window", items=1, tokens=planned, tokens_by_part={"template": template}),
    )


def test_the_measured_overhead_is_what_the_backend_counted_beyond_the_plan() -> None:
    # Qwen's template adds a 21-token default system prompt we cannot see: 32 once rounded.
    assert measured_overhead([_answer(35, 14, 3)]) == 32
    # The next plan includes those 32 (template 3 + 32): the overhead stays, it does not swing.
    assert measured_overhead([_answer(60, 71, 35)]) == 32
    assert measured_overhead([_answer(48, 48, 3)]) == 0  # exact counts: nothing added
    assert measured_overhead([_answer(40, 48, 3)]) == 0  # over-counts are not given back
    assert measured_overhead([]) == 0


def test_settings_tune_every_preset_per_model(tmp_path: Path) -> None:
    settings = Settings(
        db=str(tmp_path / "s.db"),
        models={"thinker": ModelAlias(replay_reasoning=True, policy="retrieval"), "plain": ModelAlias()},
        keep_media_rounds=2,
    )
    engine = build_engine(settings, SQLStore(settings.database_url), BackendRegistry(settings))
    record = ConversationRecord("conv", "default", 0, 0, None, None, None, None)
    thinker, plain = engine.policy(record, "thinker"), engine.policy(record, "plain")
    assert (thinker.name, thinker.reasoning_replay, thinker.keep_images_rounds) == ("retrieval", "keep", 2)
    assert (plain.name, plain.reasoning_replay, plain.keep_images_rounds) == ("window", "drop", 2)
    assert engine.policy(record, "thinker", Policy("full")) == Policy("full")  # a Policy value is used as given


async def test_cache_items_bounds_the_caches_of_a_client(tmp_path: Path) -> None:
    """``cache_items`` (``MULTITURN_CACHE_ITEMS``) sets the path cache's item references and the
    planner's entries (half as many)."""
    client = AsyncClient(Settings(db=str(tmp_path / "s.db"), cache_items=1000, embedder="none"))
    try:
        assert client.store._paths._references == 1000
        assert client.engine.plan_cache.blocks._values.size == 500
    finally:
        await client.aclose()


async def test_recalled_rounds_fill_a_budget_above_the_candidates_floor(sqlite_store: SQLStore) -> None:
    """How many candidates recall hands the planner follows the policy's budget
    (``Tuning.scale``), for a stored conversation and a stateless array alike: a 30,000-token
    budget is filled past the 12,000-token floor, which once capped every budget (at 16k,
    LoCoMo's recall sent 11,883 tokens); with no budget set, the floor holds on a 131,072-token
    window."""
    backend = SmallWindowBackend(131_072)
    engine = Engine(sqlite_store, lambda name: backend, default_model="s", recall=IndexRecall(sqlite_store, None))
    said = [
        Message(
            role="user" if n % 2 == 0 else "assistant",
            content=(TextPart(f"garden note {n}: " + "seed " * (20 + n % 40)),),
        )
        for n in range(1200)
    ]
    question = Message(role="user", content=(TextPart("What about the garden?"),))
    conversation = await engine.create()
    await engine.append_items(conversation.id, said)
    for budget in (8_000, 30_000, None):
        policy = Policy("retrieval", budget=budget, recent_share=0.1)
        _, stored = await engine.preview(conversation.id, question.content, policy=policy)
        _, unstored, _ = await engine.plan_stateless(ChatRequest(model="s", messages=(*said, question)), policy)
        for report in (stored, unstored):
            recalled = report.tokens_by_part["recalled"]
            assert report.tokens <= (budget or 131_072)
            if budget is None:  # no budget set: the floors, not the model's whole window
                assert 6_000 < recalled <= 12_500, (report is stored, recalled)
            else:
                assert recalled > (20_000 if budget == 30_000 else 6_000), (report is stored, budget, recalled)
