"""Tools and structured output on the embedded model, through the gateway, with the official SDKs.

The tools reach the model (its chat template renders them: the prompt grows), the calls it
writes come back as ``tool_calls`` (whole and streamed, OpenAI and DashScope), a forced
``tool_choice`` and a JSON ``response_format`` hold by grammar, and ``.parse()`` works. The
model is the small default one: tests assert what the grammar guarantees (the shape), and only
that the rest is well-formed where the model chooses (``auto``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dashscope
import openai
import pytest
from pydantic import BaseModel

from support.serve import Server, serving

pytestmark = pytest.mark.model

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The current weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
TIME = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "The time in a time zone",
        "parameters": {"type": "object", "properties": {"zone": {"type": "string"}}, "required": ["zone"]},
    },
}
ASK = [{"role": "user", "content": "What's the weather in Paris?"}]
SHORT: dict[str, Any] = {"model": "qwen-plus", "max_tokens": 48, "temperature": 0}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serving("tools", tmp_path_factory.mktemp("tools")) as started:
        yield started


@pytest.fixture(scope="module")
def client(server: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.base}/v1", api_key="any", max_retries=0)


def test_tools_reach_the_model_only_when_it_may_call_them(client: openai.OpenAI) -> None:
    shown = client.chat.completions.create(messages=ASK, tools=[WEATHER], tool_choice="auto", **SHORT)
    hidden = client.chat.completions.create(messages=ASK, tools=[WEATHER], tool_choice="none", **SHORT)
    bare = client.chat.completions.create(messages=ASK, **SHORT)
    assert shown.usage and hidden.usage and bare.usage
    assert shown.usage.prompt_tokens > bare.usage.prompt_tokens + 40  # the schema is in the prompt
    assert hidden.usage.prompt_tokens == bare.usage.prompt_tokens
    assert not hidden.choices[0].message.tool_calls and hidden.choices[0].finish_reason != "tool_calls"
    choice = shown.choices[0]  # the model chose: either way the answer is well-formed
    if choice.message.tool_calls:
        assert choice.finish_reason == "tool_calls"
        assert choice.message.tool_calls[0].function.name == "get_weather"
        json.loads(choice.message.tool_calls[0].function.arguments)


@pytest.mark.parametrize("choice", ["required", {"type": "function", "function": {"name": "get_time"}}])
def test_a_forced_choice_is_a_call_that_matches_its_schema(client: openai.OpenAI, choice: Any) -> None:
    done = client.chat.completions.create(messages=ASK, tools=[WEATHER, TIME], tool_choice=choice, **SHORT)
    [call] = done.choices[0].message.tool_calls or []
    assert done.choices[0].finish_reason == "tool_calls"
    expected = {"get_weather": "city", "get_time": "zone"}
    if isinstance(choice, dict):
        assert call.function.name == "get_time"
    arguments = json.loads(call.function.arguments)
    assert set(arguments) == {expected[call.function.name]} and isinstance(next(iter(arguments.values())), str)
    assert call.id.startswith("call_")


def test_a_streamed_call_arrives_as_tool_call_deltas(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(messages=ASK, tools=[WEATHER], tool_choice="required", stream=True, **SHORT)
    calls: dict[int, dict[str, str]] = {}
    finish = None
    for chunk in stream:
        for choice in chunk.choices:
            finish = choice.finish_reason or finish
            for piece in choice.delta.tool_calls or []:
                call = calls.setdefault(piece.index, {"id": "", "name": "", "arguments": ""})
                call["id"] += piece.id or ""
                if piece.function:
                    call["name"] += piece.function.name or ""
                    call["arguments"] += piece.function.arguments or ""
    assert finish == "tool_calls"
    assert [c["name"] for c in calls.values()] == ["get_weather"]
    assert "city" in json.loads(calls[0]["arguments"])


def test_a_call_and_its_result_go_back_to_the_model(client: openai.OpenAI) -> None:
    first = client.chat.completions.create(messages=ASK, tools=[WEATHER], tool_choice="required", **SHORT)
    [call] = first.choices[0].message.tool_calls or []
    history = [
        *ASK,
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": "22 degrees and sunny"},
    ]
    answered = client.chat.completions.create(messages=history, tools=[WEATHER], tool_choice="none", **SHORT)
    assert answered.usage and first.usage
    # The call and the result are in the prompt: more than the first prompt, without the tools.
    without_tools = client.chat.completions.create(messages=ASK, tool_choice="none", tools=[WEATHER], **SHORT)
    assert without_tools.usage
    assert answered.usage.prompt_tokens > without_tools.usage.prompt_tokens + 15
    assert answered.choices[0].finish_reason in ("stop", "length")


def test_json_object_answers_json(client: openai.OpenAI) -> None:
    done = client.chat.completions.create(
        messages=[{"role": "user", "content": "Describe a cat in JSON."}],
        response_format={"type": "json_object"},
        **{**SHORT, "max_tokens": 64},
    )
    if done.choices[0].finish_reason == "stop":  # cut by max_tokens, JSON may be unfinished
        assert isinstance(json.loads(done.choices[0].message.content or ""), dict)
    else:
        assert (done.choices[0].message.content or "").lstrip().startswith("{")


class Person(BaseModel):
    name: str
    age: int


def test_parse_with_a_strict_schema_gives_the_model_object(client: openai.OpenAI) -> None:
    done = client.chat.completions.parse(
        messages=[{"role": "user", "content": "Invent a person."}], response_format=Person, **SHORT
    )
    parsed = done.choices[0].message.parsed
    assert isinstance(parsed, Person) and parsed.name


def test_a_choice_naming_no_tool_of_the_request_is_refused(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(
            messages=ASK, tools=[WEATHER], tool_choice={"type": "function", "function": {"name": "nope"}}, **SHORT
        )
    assert "nope" in str(refused.value)


def test_dashscope_native_tools_come_back_as_tool_calls(server: Server) -> None:
    dashscope.base_http_api_url = server.native
    named = {"type": "function", "function": {"name": "get_weather"}}
    done = dashscope.Generation.call(
        api_key="any", messages=ASK, tools=[WEATHER], tool_choice=named, result_format="message", **SHORT
    )
    assert done.status_code == 200, done.message
    choice = done.output["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    [call] = choice["message"]["tool_calls"]
    assert call["function"]["name"] == "get_weather" and "city" in json.loads(call["function"]["arguments"])
    streamed = dashscope.Generation.call(
        api_key="any",
        messages=ASK,
        tools=[WEATHER],
        tool_choice=named,
        result_format="message",
        stream=True,
        incremental_output=True,
        **SHORT,
    )
    chunks = list(streamed)
    assert all(chunk.status_code == 200 for chunk in chunks)
    names = [c["function"]["name"] for ch in chunks for c in ch.output["choices"][0]["message"].get("tool_calls", [])]
    assert names == ["get_weather"]
    assert chunks[-1].output["choices"][0]["finish_reason"] == "tool_calls"


def test_the_gateways_database_file_is_private(server: Server) -> None:
    assert (Path(server.home) / "gateway.db").stat().st_mode & 0o077 == 0
