"""The OpenAI Agents SDK runs an agent with one function tool and a session for three turns
against ``multiturn serve``, its ``OpenAIResponsesModel`` pointed at the gateway's Responses API.

- On the embedded model, with the SDK's ``SQLiteSession`` (the history is sent back whole as
  input each turn: messages, ``function_call`` and ``function_call_output`` items): the first
  turn forces a call (``tool_choice="required"``), the tool really runs and its output is the
  turn's answer (``stop_on_first_tool``: the SDK would ask the model again under ``auto``, and
  the 0.5B model calls the tool again, a call its strict schema now holds whole, until
  ``max_turns``); two more turns answer from that history.
- On the fake upstream (it calls the first tool with the user's text and answers a result with
  ``Tool said: <result>``), with ``OpenAIConversationsSession``: the history lives in multiturn's
  own ``/v1/conversations``, where the SDK appends each turn's items (calls and results
  included) and reads them back; the third turn is streamed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from agents import (
    Agent,
    ModelSettings,
    OpenAIConversationsSession,
    OpenAIResponsesModel,
    Runner,
    SQLiteSession,
    function_tool,
    set_tracing_disabled,
)
from openai import AsyncOpenAI

from support.fake_upstream import Recorded
from support.serve import Server

from .calls import openai_client

MODEL = "qwen-plus"


@pytest.fixture(autouse=True)
def _no_tracing() -> Iterator[None]:
    set_tracing_disabled(True)  # the SDK would export traces to OpenAI
    yield


def responses_model(server: Server) -> tuple[OpenAIResponsesModel, AsyncOpenAI]:
    client = AsyncOpenAI(base_url=server.compat, api_key=server.api_key, max_retries=0)
    return OpenAIResponsesModel(model=MODEL, openai_client=client), client


@pytest.mark.model
def test_an_agent_calls_a_tool_that_runs_and_keeps_its_history_on_the_embedded_model(embedded: Server) -> None:
    ran: list[str] = []

    @function_tool
    def get_weather(city: str) -> str:
        """The current weather of a city."""
        ran.append(city)
        return f"It is 31 degrees and sunny in {city}."

    async def three_turns() -> list[Any]:
        model, client = responses_model(embedded)
        settings = ModelSettings(temperature=0, max_tokens=64)
        agent = Agent(
            name="weather",
            instructions="You answer questions about the weather in one short sentence.",
            tools=[get_weather],
            model=model,
            model_settings=settings.resolve(ModelSettings(tool_choice="required")),
            tool_use_behavior="stop_on_first_tool",
        )
        quiet = agent.clone(model_settings=settings.resolve(ModelSettings(tool_choice="none")))
        session = SQLiteSession("weather")
        try:
            results = [await Runner.run(agent, "What is the weather in Paris?", session=session, max_turns=4)]
            results.append(await Runner.run(quiet, "Is it warm there? Answer yes or no.", session=session))
            results.append(
                await Runner.run(quiet, "Which city did I ask about? Answer with the city name.", session=session)
            )
            return [results, await session.get_items()]
        finally:
            session.close()
            await client.close()

    (first, second, third), items = asyncio.run(three_turns())
    assert ran and "Paris" in ran[0]  # the tool ran on the model's arguments
    assert first.final_output == f"It is 31 degrees and sunny in {ran[0]}."
    assert str(second.final_output).strip()
    assert "Paris" in str(third.final_output)
    kinds = [item.get("type", "message") for item in items]
    assert kinds.count("function_call") == 1 and kinds.count("function_call_output") == 1
    assert [item["content"] for item in items if item.get("role") == "user"] == [
        "What is the weather in Paris?",
        "Is it warm there? Answer yes or no.",
        "Which city did I ask about? Answer with the city name.",
    ]
    output = next(item for item in items if item.get("type") == "function_call_output")
    assert output["output"] == f"It is 31 degrees and sunny in {ran[0]}."


def test_an_agent_keeps_its_session_in_the_gateway_conversations(
    gateway: Server, fake_since: Callable[[], list[Recorded]]
) -> None:
    ran: list[str] = []

    @function_tool
    def lookup(text: str) -> str:
        """Look the weather up."""
        ran.append(text)
        return f"sunny in {text}"

    async def three_turns() -> tuple[list[str], str]:
        model, client = responses_model(gateway)
        agent = Agent(name="lookup", instructions="Use the tool.", tools=[lookup], model=model)
        conversation = (await client.conversations.create()).id
        session = OpenAIConversationsSession(conversation_id=conversation, openai_client=client)
        try:
            answers = [
                str((await Runner.run(agent, city, session=session)).final_output) for city in ("Oslo", "Bergen")
            ]
            streamed = Runner.run_streamed(agent, "Tromso", session=session)
            async for _ in streamed.stream_events():
                pass
            answers.append(str(streamed.final_output))
            return answers, conversation
        finally:
            await client.close()

    answers, conversation = asyncio.run(three_turns())
    assert ran == ["Oslo", "Bergen", "Tromso"]
    assert answers == ["Tool said: sunny in Oslo", "Tool said: sunny in Bergen", "Tool said: sunny in Tromso"]
    sync = openai_client(gateway.compat, gateway.api_key, max_retries=0)
    items = sync.conversations.items.list(conversation, order="asc", limit=100).data
    assert [i.type for i in items] == ["message", "function_call", "function_call_output", "message"] * 3
    assert [i.output for i in items if i.type == "function_call_output"] == [f"sunny in {c}" for c in ran]
    # The last model call carried the whole history, calls and results paired, to the upstream.
    last = [r.body for r in fake_since() if r.path.endswith("/chat/completions")][-1]
    roles = [m["role"] for m in last["messages"] if m["role"] != "system"]
    assert roles == ["user", "assistant", "tool", "assistant"] * 2 + ["user", "assistant", "tool"]
