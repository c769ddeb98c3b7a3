"""Thinking through an upstream (issue 18, item 5), on a real ``multiturn serve`` in front of the
fake upstream (tests/support/fake_upstream.py), driven by the official ``openai`` and
``dashscope`` SDKs.

Two thinking upstreams: ``thinker`` sends ``reasoning_content`` apart (Model Studio, vLLM),
``think-inline`` writes ``<think>...</think>`` at the start of ``content`` (Qwen3 on llama.cpp
or Ollama without a reasoning parser). Through the gateway, for both: reasoning streams apart on
every protocol, is stored apart (the answer item's ``reasoning``), its token count is reported
when the upstream gives one, and by default it never goes back upstream. The per-model
``reasoning_replay`` policy (drop / tool_chain / keep, and the old ``replay_reasoning`` flag) is
checked on what the fake upstream receives.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dashscope
import pytest
from dashscope import Generation
from dashscope.api_entities.http_request import close_shared_sync_session
from openai import OpenAI

from support.fake_upstream import FakeUpstream
from support.serve import Server, start_serve

REASONING = "The user said: {}. I will answer."
ANSWER = "You said: {}"
THINKERS = ["thinker", "think-inline"]


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeUpstream]:
    with FakeUpstream(keep_alive=120) as server:  # outlives the gateway pool's idle connections
        yield server


@pytest.fixture(scope="module")
def gateway(fake: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    def alias(model: str, **more: Any) -> dict[str, Any]:
        return {"backend": "upstream", "base_url": fake.base_url, "model": model, "capabilities": ["text"], **more}

    models = {
        "thinker": alias("thinker"),
        "think-inline": alias("think-inline"),
        "thinker-drop": alias("thinker", reasoning_replay="drop"),
        "thinker-chain": alias("thinker", reasoning_replay="tool_chain"),
        "thinker-keep": alias("thinker", reasoning_replay="keep"),
        "inline-keep": alias("think-inline", reasoning_replay="keep"),
        "thinker-legacy": alias("thinker", replay_reasoning=True),
    }
    server = start_serve("thinking", tmp_path_factory.mktemp("thinking"), models=models)
    try:
        yield server
    finally:
        server.stop()
        close_shared_sync_session()


@pytest.fixture
def client(gateway: Server) -> Iterator[OpenAI]:
    with OpenAI(base_url=gateway.compat, api_key=gateway.api_key, max_retries=0) as c:
        yield c


def last_body(fake: FakeUpstream) -> dict[str, Any]:
    body: dict[str, Any] = fake.bodies()[-1]
    return body


def stored_answers(gateway: Server, conversation_id: str) -> list[tuple[str | None, Any]]:
    """``(reasoning, content)`` of the conversation's assistant items, read from the database."""
    with sqlite3.connect(gateway.home / "gateway.db") as db:
        rows = db.execute(
            "SELECT reasoning, content FROM items WHERE conversation_id = ? AND role = 'assistant' ORDER BY id",
            (conversation_id,),
        ).fetchall()
    return [(reasoning, json.loads(content)) for reasoning, content in rows]


# --- streamed apart -----------------------------------------------------------------------------


@pytest.mark.parametrize("model", THINKERS)
def test_openai_stream_carries_reasoning_apart(client: OpenAI, model: str) -> None:
    stream = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "hi there"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    reasoning, content, order, usage = "", "", [], None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            piece = getattr(choice.delta, "reasoning_content", None)
            if piece:
                reasoning += piece
                order.append("r")
            if choice.delta.content:
                content += choice.delta.content
                order.append("c")

    assert reasoning.strip() == REASONING.format("hi there")
    assert content == ANSWER.format("hi there")
    assert "<think>" not in content and "</think>" not in content + reasoning
    assert order == sorted(order, reverse=True)  # all the reasoning before the answer
    assert usage is not None and usage.completion_tokens_details is not None
    # thinker reports its reasoning tokens (one a piece); an inline <think> upstream gives none
    expected = len(REASONING.format("hi there").split()) if model == "thinker" else 0
    assert usage.completion_tokens_details.reasoning_tokens == expected


@pytest.mark.parametrize("model", THINKERS)
def test_openai_completion_carries_reasoning_apart(client: OpenAI, model: str) -> None:
    completion = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi there"}])
    message = completion.choices[0].message

    assert getattr(message, "reasoning_content", "").strip() == REASONING.format("hi there")
    assert message.content == ANSWER.format("hi there")
    assert completion.usage is not None and completion.usage.completion_tokens_details is not None
    expected = len(REASONING.format("hi there").split()) if model == "thinker" else 0
    assert completion.usage.completion_tokens_details.reasoning_tokens == expected


@pytest.mark.parametrize("model", THINKERS)
def test_dashscope_stream_and_call_carry_reasoning_apart(gateway: Server, model: str) -> None:
    dashscope.base_http_api_url = gateway.native
    messages = [{"role": "user", "content": "hi there"}]
    reasoning, content = "", ""
    last: Any = None
    for response in Generation.call(
        api_key=gateway.api_key,
        model=model,
        messages=messages,
        result_format="message",
        stream=True,
        incremental_output=True,
    ):
        assert response.status_code == 200, response
        message = response.output.choices[0].message
        reasoning += message.get("reasoning_content") or ""
        content += message.content or ""
        last = response
    assert reasoning.strip() == REASONING.format("hi there")
    assert content == ANSWER.format("hi there")
    assert last.output.choices[0].finish_reason == "stop"

    whole = Generation.call(api_key=gateway.api_key, model=model, messages=messages, result_format="message")
    assert whole.status_code == 200, whole
    message = whole.output.choices[0].message
    assert message.reasoning_content.strip() == REASONING.format("hi there")
    assert message.content == ANSWER.format("hi there")
    expected = len(REASONING.format("hi there").split()) if model == "thinker" else 0
    assert whole.usage["output_tokens_details"]["reasoning_tokens"] == expected


@pytest.mark.parametrize("model", THINKERS)
def test_responses_stream_reasoning_events_and_items(client: OpenAI, model: str) -> None:
    kinds: list[str] = []
    reasoning = ""
    final: Any = None
    with client.responses.stream(model=model, input="hi there") as stream:
        for event in stream:
            kinds.append(event.type)
            if event.type == "response.reasoning_text.delta":
                reasoning += event.delta
        final = stream.get_final_response()

    assert reasoning.strip() == REASONING.format("hi there")
    assert kinds.index("response.reasoning_text.done") < kinds.index("response.output_text.delta")
    assert [item.type for item in final.output] == ["reasoning", "message"]
    assert final.output_text == ANSWER.format("hi there")
    assert "<think>" not in final.output_text


# --- stored apart, not replayed ---------------------------------------------------------------


@pytest.mark.parametrize("model", THINKERS)
def test_reasoning_is_stored_apart_and_not_replayed(
    client: OpenAI, gateway: Server, fake: FakeUpstream, model: str
) -> None:
    conversation = client.conversations.create()
    for text, stream in (("first", True), ("second", False)):
        answer = client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": text}],
            stream=stream,
            extra_body={"conversation": conversation.id},
        )
        if stream:
            for _ in answer:  # type: ignore[union-attr]
                pass

    stored = stored_answers(gateway, conversation.id)
    assert [(r.strip() if r else r) for r, _ in stored] == [REASONING.format("first"), REASONING.format("second")]
    assert all(
        "think>" not in json.dumps(content) and "The user said" not in json.dumps(content) for _, content in stored
    )
    sent = last_body(fake)["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert sent[1] == {"role": "assistant", "content": ANSWER.format("first")}  # no reasoning_content
    assert "think>" not in json.dumps(sent) and "The user said" not in json.dumps(sent)


def test_keep_sends_every_stored_reasoning_back(client: OpenAI, fake: FakeUpstream) -> None:
    for model in ("thinker-keep", "thinker-legacy", "inline-keep"):
        conversation = client.conversations.create()
        for text in ("first", "second", "third"):
            client.chat.completions.create(
                model=model, messages=[{"role": "user", "content": text}], extra_body={"conversation": conversation.id}
            )
        sent = [m for m in last_body(fake)["messages"] if m["role"] == "assistant"]
        assert [m["reasoning_content"].strip() for m in sent] == [REASONING.format(t) for t in ("first", "second")], (
            model
        )
        assert [m["content"] for m in sent] == [ANSWER.format(t) for t in ("first", "second")], model


# --- the policy on a tool-call chain (a stateless history, as a DeepSeek-style client sends it) --

TOOLS = [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}]
CHAIN = [
    {"role": "user", "content": "first"},
    {"role": "assistant", "content": "an earlier answer", "reasoning_content": "earlier thoughts"},
    {"role": "user", "content": "weather in Paris?"},
    {
        "role": "assistant",
        "content": None,
        "reasoning_content": "I should call the tool",
        "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{}"}}],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
]


@pytest.mark.parametrize(
    ("model", "replayed"),
    [
        ("thinker", [None, None]),
        ("thinker-drop", [None, None]),
        ("thinker-chain", [None, "I should call the tool"]),
        ("thinker-keep", ["earlier thoughts", "I should call the tool"]),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_replay_policy_on_a_tool_chain(
    client: OpenAI, fake: FakeUpstream, model: str, replayed: list[str | None], stream: bool
) -> None:
    answer = client.chat.completions.create(model=model, messages=CHAIN, tools=TOOLS, stream=stream)  # type: ignore[arg-type]
    if stream:
        for _ in answer:  # type: ignore[union-attr]
            pass
    sent = last_body(fake)["messages"]
    assistants = [m for m in sent if m["role"] == "assistant"]
    assert [m.get("reasoning_content") for m in assistants] == replayed
    assert [m["role"] for m in sent] == ["user", "assistant", "user", "assistant", "tool"]


def test_dashscope_history_with_reasoning_is_not_replayed(gateway: Server, fake: FakeUpstream) -> None:
    """The guide's multimodal loop appends the whole response message, reasoning included."""
    dashscope.base_http_api_url = gateway.native
    messages: list[dict[str, Any]] = [{"role": "user", "content": "first"}]
    response = Generation.call(api_key=gateway.api_key, model="thinker", messages=messages, result_format="message")
    assert response.status_code == 200, response
    messages.append(dict(response.output.choices[0].message))
    messages.append({"role": "user", "content": "second"})
    assert "reasoning_content" in messages[1]
    response = Generation.call(api_key=gateway.api_key, model="thinker", messages=messages, result_format="message")
    assert response.status_code == 200, response

    sent = last_body(fake)["messages"]
    assert sent[1]["role"] == "assistant" and "reasoning_content" not in sent[1]
    assert "The user said" not in json.dumps(sent)


def test_old_boolean_still_reads(tmp_path: Path) -> None:
    from multiturn.settings import ModelAlias

    assert ModelAlias(replay_reasoning=True).reasoning_replay == "keep"
    assert ModelAlias(replay_reasoning=False).reasoning_replay == "drop"
    assert ModelAlias().reasoning_replay == "drop"
    assert ModelAlias(replay_reasoning=True, reasoning_replay="tool_chain").reasoning_replay == "tool_chain"


# --- the policy on a stored tool-call chain (Responses: function_call_output continues it) ------

RESPONSES_TOOLS = [{"type": "function", "name": "weather", "parameters": {"type": "object"}}]


@pytest.mark.parametrize(
    ("model", "replayed"),
    [
        ("thinker-drop", [None, None]),
        ("thinker-chain", [None, REASONING.format("weather in Paris?")]),
        ("thinker-keep", [REASONING.format("first"), REASONING.format("weather in Paris?")]),
    ],
)
def test_replay_policy_on_a_stored_tool_chain(
    client: OpenAI, fake: FakeUpstream, model: str, replayed: list[str | None]
) -> None:
    first = client.responses.create(model=model, input="first")
    called = client.responses.create(
        model=model,
        input="weather in Paris?",
        tools=RESPONSES_TOOLS,
        previous_response_id=first.id,  # type: ignore[arg-type]
    )
    (call,) = [item for item in called.output if item.type == "function_call"]
    client.responses.create(
        model=model,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}],
        tools=RESPONSES_TOOLS,  # type: ignore[arg-type]
        previous_response_id=called.id,
    )

    sent = last_body(fake)["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user", "assistant", "tool"]
    assert [(m.get("reasoning_content") or "").strip() or None for m in sent if m["role"] == "assistant"] == replayed
