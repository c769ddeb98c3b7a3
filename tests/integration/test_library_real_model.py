"""The library on the real embedded model and a real SQLite file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from multiturn import AsyncClient, Client, Conversation, Delta, Reply, Settings

pytestmark = pytest.mark.model


async def test_three_turns_replay_history_record_usage_and_reuse_the_prefix(client: AsyncClient) -> None:
    conversation = await client.create(system="You are a helpful assistant.")
    questions = ["My name is Alice and I live in Lisbon.", "What is my name?", "Where do I live?"]
    replies: list[Reply] = []
    for question in questions:
        replies.append(await conversation.send(question, max_tokens=32, temperature=0))

    path = await conversation.history()
    assert [item.role for item in path] == ["user", "assistant"] * 3
    assert [item.text for item in path[::2]] == questions
    assert all(item.status == "completed" for item in path)

    for turn, reply in enumerate(replies):
        assistant = path[2 * turn + 1]
        assert assistant.id == reply.item_id
        # The request of turn N carried every stored item before it: the report lists them.
        assert assistant.context_report is not None
        assert assistant.context_report.kept == ((0, 2 * turn),)
        # Usage is recorded per turn, and the prompt holds the earlier turns.
        assert assistant.usage == reply.usage and assistant.context_report == reply.context_report
        # The embedded model is free: every turn costs 0, and so does the conversation.
        cost = reply.cost
        assert cost is not None and (cost.total, cost.conversation, cost.currency) == (0, 0, "USD")
        assert reply.usage.completion_tokens > 0
        assert assistant.token_count == reply.usage.completion_tokens
        if turn:
            previous = replies[turn - 1].usage
            assert reply.usage.prompt_tokens > previous.prompt_tokens + previous.completion_tokens
            # llama.cpp reused the previous request and answer as a cached prefix.
            assert reply.usage.cached_tokens > previous.prompt_tokens
    assert replies[0].usage.cached_tokens == 0 or replies[0].usage.cached_tokens < replies[0].usage.prompt_tokens
    # The model answered from the earlier turn that only the replayed history carries.
    assert "alice" in replies[1].content.lower()
    assert "lisbon" in replies[2].content.lower()
    assert all(item.token_count and item.token_count > 0 for item in path[::2])


async def test_stream_yields_deltas_then_the_stored_reply(client: AsyncClient) -> None:
    conversation = await client.create()
    events = [event async for event in conversation.stream("Count from 1 to 5.", max_tokens=24, temperature=0)]
    deltas = [e for e in events if isinstance(e, Delta)]
    reply = events[-1]
    assert isinstance(reply, Reply)
    assert len(deltas) > 3
    assert "".join(d.content for d in deltas) == reply.content
    assert deltas[-1].usage == reply.usage and deltas[-1].finish_reason == reply.finish_reason


async def test_closing_a_stream_early_keeps_the_partial_answer(client: AsyncClient) -> None:
    conversation = await client.create()
    stream = conversation.stream("Write a numbered list of 50 colours.", max_tokens=200, temperature=0)
    received = ""
    async for event in stream:
        assert isinstance(event, Delta)
        received += event.content
        if len(received) > 20:
            break
    await stream.aclose()  # type: ignore[attr-defined]
    path = await conversation.history()
    assert [item.role for item in path] == ["user", "assistant"]
    assert path[1].status == "incomplete"
    assert path[1].finish_reason == "cancelled"
    assert path[1].text.startswith(received)


async def test_retry_undo_and_fork_keep_every_branch(client: AsyncClient) -> None:
    conversation = await client.create()
    first = await conversation.send("Name a fruit.", max_tokens=12, temperature=0)
    again = await conversation.retry(max_tokens=12, temperature=0.9, seed=7)
    assert again.item_id != first.item_id
    assert again.user_item_id == first.user_item_id
    siblings = await client.store.children(conversation.id, first.user_item_id)
    assert {s.id for s in siblings} == {first.item_id, again.item_id}

    undone = await conversation.undo()
    assert [item.role for item in undone] == ["user", "assistant"]
    assert await conversation.history() == []
    assert len(await client.store.items(conversation.id)) == 3  # nothing deleted

    await conversation.send("Name a colour.", max_tokens=12, temperature=0)
    fork = await conversation.fork()
    assert fork.id != conversation.id
    assert [i.text for i in await fork.history()] == [i.text for i in await conversation.history()]
    await fork.send("Another one?", max_tokens=12, temperature=0)
    assert len(await conversation.history()) == 2
    assert len(await fork.history()) == 4


def test_sync_face_matches_the_async_face(model_settings: Settings) -> None:
    with Client(model_settings) as client:
        conversation = client.create(system="Answer in one word.")
        reply = conversation.send("What colour is the sky on a clear day?", max_tokens=8, temperature=0)
        assert reply.status == "completed" and reply.content
        streamed = list(conversation.stream("And grass?", max_tokens=8, temperature=0))
        assert isinstance(streamed[-1], Reply)
        reopened = Conversation.open(conversation.id, client=client)
        assert [i.id for i in reopened.history()] == [i.id for i in conversation.history()]
        assert len(reopened.history()) == 4


def test_phone_store_example_runs_on_the_embedded_model(model_settings: Settings, tmp_path: Path) -> None:
    env = {"MULTITURN_DB": str(tmp_path / "example.db"), "PATH": "/usr/bin:/bin", "HOME": str(Path.home())}
    example = Path(__file__).parents[2] / "examples" / "phone_store.py"
    result = subprocess.run(
        [sys.executable, str(example), "6.5-inch", "4K"], env=env, capture_output=True, text=True, timeout=240
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("Model output:") >= 2
    assert "items stored" in result.stdout
