"""Re-planning stored turns (``engine/replay.py``) on a conversation the real model answered."""

from __future__ import annotations

from contextlib import aclosing
from dataclasses import replace

import pytest

from multiturn import AsyncClient, Reply
from multiturn.engine.replay import replan_turn, replay, shared_prefix
from multiturn.errors import InvalidInput, NotFound
from multiturn.tokens import message_tokens
from multiturn.types import text_parts

pytestmark = pytest.mark.model

FACTS = [
    "Note one: the blue box holds the silver key, the red box holds the old map of the harbour town.",
    "Note two: Maria arrives on Tuesday by the night train from Porto and stays for nine days.",
    "Note three: the budget for the garden is four hundred euros, mostly for the apple trees.",
    "Note four: the meeting with the architect moved from Friday morning to Monday afternoon.",
    "Note five: the cat is called Pepper, she eats twice a day and hates the vacuum cleaner.",
    "Note six: what was in the red box? Answer in three words.",
]
STORED_BUDGET = 170
MAX_TOKENS = 8


async def _conversation(client: AsyncClient) -> str:
    """Six turns under a window of STORED_BUDGET tokens: the early notes are dropped by the end."""
    conversation = await client.create(system="You are terse.")
    engine = client.engine
    record = await engine.get(conversation.id)
    window = replace(engine.policy(record, client.settings.model, "window"), budget=STORED_BUDGET)
    params = client.params(max_tokens=MAX_TOKENS, temperature=0)
    for text in FACTS:
        async with aclosing(engine.send(conversation.id, text_parts(text), params, policy=window)) as events:
            replies = [event async for event in events if isinstance(event, Reply)]
        assert replies and replies[-1].status in ("completed", "incomplete")
    return conversation.id


async def test_replan_one_turn_and_replay_the_conversation_under_two_policies(client: AsyncClient) -> None:
    engine = client.engine
    conversation_id = await _conversation(client)
    path = await engine.history(conversation_id)
    last = path[-1]
    assert last.role == "assistant"

    # The same policy and budget as the stored turn plan the same request.
    same = await replan_turn(
        engine, conversation_id, last.id, policy="window", budget=STORED_BUDGET, max_tokens=MAX_TOKENS
    )
    assert same.stored is not None and same.evidence is not None
    assert same.fates == same.stored_fates
    assert same.evidence.dropped == () and same.evidence.gained == ()
    assert "dropped" in set(same.fates.values())  # the stored window had left notes out
    assert same.index == len(FACTS) and same.path == tuple(item.id for item in path[:-1])

    # `full` sends every item: it gains what the stored window had dropped, and drops nothing.
    full = await replan_turn(engine, conversation_id, last.id, policy="full", max_tokens=MAX_TOKENS)
    assert set(full.fates.values()) == {"kept"}
    assert full.evidence is not None and full.evidence.dropped == ()
    assert set(full.evidence.gained) == {item for item, fate in same.fates.items() if fate != "kept"}
    assert full.plan.tokens > same.plan.tokens
    # Append-only history: the previous turn's full request is a prefix of this one.
    previous = await replan_turn(engine, conversation_id, path[-3].id, policy="full", max_tokens=MAX_TOKENS)
    assert full.plan.cached_tokens == sum(message_tokens(m, engine.tokenizer) for m in previous.plan.messages)
    assert full.plan.cached_tokens == shared_prefix(previous.plan.messages, full.plan.messages, engine.tokenizer)
    # The embedded model is free, and says so.
    assert full.plan.cost is not None and full.plan.cost.total == 0 and full.plan.cost.currency == "USD"

    # A tighter window loses evidence the stored turn had sent.
    narrow = await replan_turn(engine, conversation_id, last.id, policy="window", budget=100, max_tokens=MAX_TOKENS)
    assert narrow.plan.tokens <= 100 < same.plan.tokens
    assert narrow.evidence is not None and narrow.evidence.dropped
    assert set(narrow.evidence.dropped) <= set(same.evidence.sent)

    progress: list[tuple[int, int]] = []
    result = await replay(
        engine,
        conversation_id,
        ["full", "window"],
        [None, STORED_BUDGET],
        max_tokens=MAX_TOKENS,
        on_turn=lambda done, total: progress.append((done, total)),
    )
    assert [(policy, budget) for policy, budget, _ in result.runs] == [
        ("full", None),
        ("full", STORED_BUDGET),
        ("window", None),
        ("window", STORED_BUDGET),
    ]
    assert progress[-1] == (4 * len(FACTS), 4 * len(FACTS)) and len(progress) == 4 * len(FACTS)
    runs = {(policy, budget): turns for policy, budget, turns in result.runs}
    stored_window = runs[("window", STORED_BUDGET)]
    assert [turn.item_id for turn in stored_window] == [item.id for item in path if item.role == "assistant"]
    assert all(turn.fates == turn.stored_fates for turn in stored_window)
    assert stored_window[0].plan.cached_tokens == 0
    full_turns = runs[("full", None)]
    assert all(not turn.evidence or not turn.evidence.dropped for turn in full_turns if turn.evidence)
    assert [turn.plan.tokens for turn in full_turns] == sorted(turn.plan.tokens for turn in full_turns)
    assert runs[("full", STORED_BUDGET)][-1].plan.report.over_budget


async def test_replay_refuses_what_it_cannot_plan(client: AsyncClient) -> None:
    conversation = await client.create()
    reply = await conversation.send("Say hi.", max_tokens=4, temperature=0)
    engine = client.engine
    with pytest.raises(InvalidInput, match="unknown context policy"):
        await replan_turn(engine, conversation.id, reply.item_id, policy="everything")
    with pytest.raises(InvalidInput, match="not an answer"):
        assert reply.user_item_id is not None
        await replan_turn(engine, conversation.id, reply.user_item_id)
    with pytest.raises(InvalidInput, match="positive"):
        await replan_turn(engine, conversation.id, reply.item_id, budget=0)
    with pytest.raises(NotFound):
        await replan_turn(engine, conversation.id, "item_missing")
    with pytest.raises(NotFound):
        await replay(engine, "conv_missing", ["window"])
    with pytest.raises(InvalidInput, match="unknown context policy"):
        await replay(engine, conversation.id, ["window", "nope"])
