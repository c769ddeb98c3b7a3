"""Function tools and structured output through the Responses API, with the official openai SDK
against a real ``multiturn serve``.

On the fake upstream (deterministic: it calls the first tool with ``{"text": <the user's
text>}`` and answers a tool result with ``Tool said: <result>``), on SQLite and PostgreSQL: a
call comes out as a ``function_call`` item (whole and streamed, with OpenAI's events), its
output goes back in as a ``function_call_output`` item (after ``previous_response_id``, or with
the whole history as input), everything is stored as items of the conversation and listed back
in the Responses shapes, the upstream receives the chat-shaped history, and the response object
repeats the tools, choice and format applied. Refused: built-in tools, a result that answers no
call, fields multiturn does not implement — each a 400 naming the field, nothing stored.

On the embedded model: a forced call, a tool that really runs, its output, an answer; the call
streamed; ``responses.parse`` giving the pydantic object (``text.format`` json_schema by grammar).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from openai import OpenAI
from pydantic import BaseModel

from compat.calls import close_clients, openai_client
from compat.upstreams import PatientFakeUpstream
from support.fake_upstream import FakeUpstream
from support.pg import pg_schema
from support.serve import Server, start_serve

MODEL = "qwen-plus"
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The current weather of a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    "strict": True,
}
TIME = {
    "type": "function",
    "name": "get_time",
    "description": "The time in a time zone",
    "parameters": {"type": "object", "properties": {"zone": {"type": "string"}}, "required": ["zone"]},
}
TOOL_ORDER = 'must be a response to a preceeding message with "tool_calls"'


# --- the fake upstream, on SQLite and PostgreSQL -----------------------------------------------


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeUpstream]:
    with PatientFakeUpstream() as server:
        yield server


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def gateway(
    request: pytest.FixtureRequest, fake: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    alias = {"backend": "upstream", "base_url": fake.base_url, "capabilities": ["text"]}
    home: Path = tmp_path_factory.mktemp(f"tools-{request.param}")
    if request.param == "sqlite":
        server = start_serve("tools-sqlite", home, models={MODEL: alias})
        try:
            yield server
        finally:
            server.stop()
            close_clients()
        return
    with pg_schema() as url:
        server = start_serve("tools-postgres", home, models={MODEL: alias}, env={"MULTITURN_DB": url})
        try:
            yield server
        finally:
            server.stop()
            close_clients()


@pytest.fixture
def client(gateway: Server) -> OpenAI:
    return openai_client(f"{gateway.base}/v1", gateway.api_key, max_retries=0)


def last_chat_body(fake: FakeUpstream) -> dict[str, Any]:
    body = fake.bodies()[-1]
    assert isinstance(body, dict)
    return body


def conversation_count(client: OpenAI) -> int:
    page = client.get("/conversations", cast_to=object, options={"params": {"limit": 100}})
    assert isinstance(page, dict)
    return len(page["data"])


def test_a_call_its_output_and_the_answer_are_one_stored_chain(client: OpenAI, fake: FakeUpstream) -> None:
    first = client.responses.create(model=MODEL, input="Paris", tools=[WEATHER])
    [call] = first.output
    assert call.type == "function_call" and call.status == "completed"
    assert (call.name, json.loads(call.arguments)) == ("get_weather", {"text": "Paris"})
    assert call.call_id.startswith("call_") and call.id.startswith("fc_")
    assert first.output_text == ""
    sent = last_chat_body(fake)  # the tool reached the upstream in the chat shape
    assert sent["tools"][0]["function"]["name"] == "get_weather" and sent["parallel_tool_calls"] is True
    # The response object repeats what was applied.
    assert [t.name for t in first.tools] == ["get_weather"]
    assert first.tools[0].type == "function" and first.tools[0].strict is True
    assert first.tool_choice == "auto" and first.parallel_tool_calls is True
    assert first.text is not None and first.text.format is not None and first.text.format.type == "text"

    output = {"type": "function_call_output", "call_id": call.call_id, "output": "31 degrees and sunny"}
    second = client.responses.create(model=MODEL, input=[output], previous_response_id=first.id, tools=[WEATHER])
    assert second.status == "completed" and second.output_text == "Tool said: 31 degrees and sunny"
    history = last_chat_body(fake)["messages"]
    assert [m["role"] for m in history] == ["user", "assistant", "tool"]
    assert history[1]["tool_calls"][0]["id"] == call.call_id and history[2]["tool_call_id"] == call.call_id

    # Input items: the whole context, newest first, in the Responses shapes.
    items = list(client.responses.input_items.list(second.id))
    assert [i.type for i in items] == ["function_call_output", "function_call", "message"]
    assert items[0].call_id == call.call_id and items[0].output == "31 degrees and sunny"
    assert (items[1].id, items[1].call_id, items[1].arguments) == (call.id, call.call_id, call.arguments)
    # The conversation holds the four items, oldest first; a call is retrievable by its id.
    assert second.conversation is not None
    conversation = second.conversation.id
    stored = client.conversations.items.list(conversation, order="asc").data
    assert [i.type for i in stored] == ["message", "function_call", "function_call_output", "message"]
    assert stored[-1].content[0].text == "Tool said: 31 degrees and sunny"
    again = client.conversations.items.retrieve(call.id, conversation_id=conversation)
    assert again.type == "function_call" and again.call_id == call.call_id
    assert client.responses.retrieve(first.id).output[0].type == "function_call"


def test_a_streamed_call_sends_openai_events(client: OpenAI) -> None:
    events = list(client.responses.create(model=MODEL, input="Lyon", tools=[WEATHER], stream=True))
    kinds = [e.type for e in events]
    assert kinds[:3] == ["response.created", "response.in_progress", "response.output_item.added"]
    assert kinds[-3:] == ["response.function_call_arguments.done", "response.output_item.done", "response.completed"]
    assert set(kinds[3:-3]) == {"response.function_call_arguments.delta"} and len(kinds) > 6
    added, done, completed = events[2], events[-2], events[-1]
    assert added.item.type == "function_call" and added.item.arguments == "" and added.item.status == "in_progress"
    deltas = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")
    assert json.loads(deltas) == {"text": "Lyon"} == json.loads(events[-3].arguments)
    assert done.item.id == added.item.id and done.item.arguments == deltas and done.item.status == "completed"
    assert [i.type for i in completed.response.output] == ["function_call"]
    assert completed.response.output[0].call_id == added.item.call_id
    stored = client.responses.retrieve(completed.response.id)
    assert stored.output[0].arguments == deltas and stored.output[0].call_id == added.item.call_id
    # The SDK's stream helper accumulates the arguments from the deltas.
    with client.responses.stream(model=MODEL, input="Nice", tools=[WEATHER]) as stream:
        final = stream.get_final_response()
    assert json.loads(final.output[0].arguments) == {"text": "Nice"}


def test_the_whole_history_as_input_is_stored_as_items(client: OpenAI, fake: FakeUpstream) -> None:
    history = [
        {"role": "user", "content": "Rome"},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Looking."}]},
        {"type": "function_call", "call_id": "call_a", "name": "get_weather", "arguments": '{"city":"Rome"}'},
        {"type": "function_call", "call_id": "call_b", "name": "get_time", "arguments": '{"zone":"CET"}'},
        {"type": "function_call_output", "call_id": "call_a", "output": "rain"},
        {"type": "function_call_output", "call_id": "call_b", "output": [{"type": "input_text", "text": "noon"}]},
    ]
    answer = client.responses.create(model=MODEL, input=history, tools=[WEATHER, TIME])  # type: ignore[arg-type]
    assert answer.output_text == "Tool said: noon"
    sent = last_chat_body(fake)["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool", "tool"]
    assert sent[1]["content"] == "Looking." and [c["id"] for c in sent[1]["tool_calls"]] == ["call_a", "call_b"]
    assert answer.conversation is not None
    items = client.conversations.items.list(answer.conversation.id, order="asc").data
    kinds = ["message", "message", "function_call", "function_call", "function_call_output"]
    assert [i.type for i in items] == [*kinds, "function_call_output", "message"]
    assert items[2].id.endswith("_0") and items[3].id.endswith("_1") and items[3].name == "get_time"


def test_conversation_items_take_calls_and_results(client: OpenAI) -> None:
    conversation = client.conversations.create(
        items=[
            {"role": "user", "content": "Oslo"},
            {"type": "function_call", "call_id": "call_x", "name": "get_weather", "arguments": "{}"},
        ]
    )
    added = client.conversations.items.create(
        conversation.id, items=[{"type": "function_call_output", "call_id": "call_x", "output": "snow"}]
    )
    assert [i.type for i in added.data] == ["function_call_output"]
    with pytest.raises(openai.BadRequestError) as raised:  # answers no call at the head
        client.conversations.items.create(
            conversation.id, items=[{"type": "function_call_output", "call_id": "call_y", "output": "x"}]
        )
    assert raised.value.param == "items[0]" and "call_y" in raised.value.message
    answer = client.responses.create(
        model=MODEL, input="And tomorrow?", conversation=conversation.id, tools=[WEATHER], tool_choice="none"
    )
    assert answer.output_text == "You said: And tomorrow?" and answer.tool_choice == "none"
    items = client.conversations.items.list(conversation.id, order="asc").data
    assert [i.type for i in items] == ["message", "function_call", "function_call_output", "message", "message"]
    client.conversations.items.delete(items[1].id, conversation_id=conversation.id)  # a call: its answer goes
    assert [i.type for i in client.conversations.items.list(conversation.id).data] == ["message"]


def test_store_false_takes_a_result_and_stores_nothing(client: OpenAI) -> None:
    first = client.responses.create(model=MODEL, input="Kyiv", tools=[WEATHER])
    assert first.conversation is not None
    before = client.conversations.items.list(first.conversation.id).data
    output = {"type": "function_call_output", "call_id": first.output[0].call_id, "output": "clear"}  # type: ignore[union-attr]
    answer = client.responses.create(model=MODEL, input=[output], previous_response_id=first.id, store=False)
    assert answer.output_text == "Tool said: clear"
    assert client.conversations.items.list(first.conversation.id).data == before
    wrong = {**output, "call_id": "call_other"}
    with pytest.raises(openai.BadRequestError) as raised:
        client.responses.create(model=MODEL, input=[wrong], previous_response_id=first.id, store=False)
    assert raised.value.param == "input[0]"


def test_a_result_that_answers_no_call_is_refused_and_nothing_is_stored(client: OpenAI) -> None:
    first = client.responses.create(model=MODEL, input="Oslo", tools=[WEATHER])
    assert first.conversation is not None
    before = client.conversations.items.list(first.conversation.id).data
    wrong = {"type": "function_call_output", "call_id": "call_nobody", "output": "x"}
    with pytest.raises(openai.BadRequestError) as raised:
        client.responses.create(model=MODEL, input=[wrong], previous_response_id=first.id, tools=[WEATHER])
    assert raised.value.param == "input[0]" and "call_nobody" in raised.value.message
    assert client.conversations.items.list(first.conversation.id).data == before
    count = conversation_count(client)
    with pytest.raises(openai.BadRequestError) as alone:
        client.responses.create(model=MODEL, input=[wrong])
    assert TOOL_ORDER in alone.value.message and alone.value.param == "input[0]"
    assert conversation_count(client) == count


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"tools": [WEATHER, {"type": "web_search"}]}, "tools[1].type"),
        ({"tools": [{"type": "file_search", "vector_store_ids": ["vs_1"]}]}, "tools[0].type"),
        ({"tools": [{"type": "mcp", "server_label": "x", "server_url": "https://x"}]}, "tools[0].type"),
        ({"tools": [WEATHER], "tool_choice": {"type": "function", "name": "nope"}}, "tool_choice"),
        ({"tool_choice": {"type": "web_search_preview"}}, "tool_choice"),
        ({"tool_choice": "required"}, "tool_choice"),
        ({"text": {"format": {"type": "json_schema", "schema": {"type": "object"}}}}, "text"),
        ({"text": {"verbosity": "low"}}, "text.verbosity"),
        ({"reasoning": {"effort": "high"}}, "reasoning.effort"),
        ({"reasoning": {"summary": "auto"}}, "reasoning.summary"),
        ({"top_logprobs": 3}, "top_logprobs"),
        ({"include": ["message.output_text.logprobs"]}, "include[0]"),
        ({"background": True}, "background"),
        ({"max_tool_calls": 2}, "max_tool_calls"),
        ({"prompt": {"id": "pmpt_1"}}, "prompt"),
        ({"service_tier": "priority"}, "service_tier"),
        ({"stream_options": {"include_obfuscation": True}}, "stream_options.include_obfuscation"),
        ({"max_tokens": 5}, "max_tokens"),
    ],
)
def test_what_is_not_implemented_is_refused_naming_the_field(
    client: OpenAI, fields: dict[str, Any], param: str
) -> None:
    count = conversation_count(client)
    with pytest.raises(openai.BadRequestError) as raised:
        client.post("/responses", body={"model": MODEL, "input": "hi", **fields}, cast_to=object)
    assert raised.value.param == param
    assert param.split("[")[0].split(".")[0] in raised.value.message
    assert conversation_count(client) == count


def test_fields_that_change_nothing_are_accepted(client: OpenAI) -> None:
    answer = client.responses.create(
        model=MODEL,
        input="hi",
        user="u-1",
        safety_identifier="s-1",
        prompt_cache_key="k",
        service_tier="auto",
        include=["message.input_image.image_url"],
        background=False,
        top_logprobs=0,
        reasoning={"effort": "none"},
    )
    assert answer.output_text == "You said: hi"
    assert answer.reasoning is not None and answer.reasoning.effort == "none"


def test_allowed_tools_and_a_json_schema_format_reach_the_upstream(client: OpenAI, fake: FakeUpstream) -> None:
    choice = {"type": "allowed_tools", "mode": "required", "tools": [{"type": "function", "name": "get_time"}]}
    answer = client.responses.create(model=MODEL, input="CET", tools=[WEATHER, TIME], tool_choice=choice)  # type: ignore[arg-type]
    sent = last_chat_body(fake)
    assert [t["function"]["name"] for t in sent["tools"]] == ["get_time"] and sent["tool_choice"] == "required"
    assert answer.output[0].type == "function_call" and answer.output[0].name == "get_time"
    assert [t.name for t in answer.tools] == ["get_weather", "get_time"]  # what was sent ...
    assert answer.tool_choice.type == "allowed_tools"  # type: ignore[union-attr]  # ... and the choice applied

    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    fmt = {"type": "json_schema", "name": "count", "schema": schema, "strict": True}
    shaped = client.responses.create(model=MODEL, input="hi", text={"format": fmt})  # type: ignore[typeddict-item]
    assert last_chat_body(fake)["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "count", "schema": schema, "strict": True},
    }
    assert shaped.text is not None and shaped.text.format is not None
    assert shaped.text.format.type == "json_schema" and shaped.text.format.name == "count"  # type: ignore[union-attr]
    client.responses.create(model=MODEL, input="hi", text={"format": {"type": "json_object"}})
    assert last_chat_body(fake)["response_format"] == {"type": "json_object"}


# --- the embedded model --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_serve("responses-tools", tmp_path_factory.mktemp("responses-tools"))
    try:
        yield server
    finally:
        server.stop()
        close_clients()


def get_weather(city: str) -> str:
    """The tool: a real function the test runs on the model's arguments."""
    return f"It is 31 degrees and sunny in {city}."


@pytest.mark.model
def test_the_embedded_model_calls_a_tool_that_runs_and_answers_from_it(embedded: Server) -> None:
    client = openai_client(f"{embedded.base}/v1", embedded.api_key, max_retries=0)
    ask = "What is the weather in Paris?"
    first = client.responses.create(
        model=MODEL, input=ask, tools=[WEATHER], tool_choice="required", max_output_tokens=64, temperature=0
    )
    [call] = [item for item in first.output if item.type == "function_call"]
    assert call.name == "get_weather" and first.tool_choice == "required"
    result = get_weather(**json.loads(call.arguments))  # the grammar makes the arguments fit the schema
    output = {"type": "function_call_output", "call_id": call.call_id, "output": result}
    # tool_choice "none": asked to answer. Under "auto" the 0.5B model calls the tool again; with
    # the tool strict (the Responses default) that call is now held whole, where before it was
    # two calls run together, passed as text (and compared by prompt size, tools shown both times).
    second = client.responses.create(
        model=MODEL,
        input=[output],
        previous_response_id=first.id,
        tools=[WEATHER],
        tool_choice="none",
        max_output_tokens=48,
        temperature=0,
    )
    assert second.status in ("completed", "incomplete") and "31" in second.output_text  # it answers from the result
    items = list(client.responses.input_items.list(second.id, order="asc"))
    assert [i.type for i in items] == ["message", "function_call", "function_call_output"]
    assert items[2].output == result


@pytest.mark.model
def test_the_embedded_model_streams_a_forced_call(embedded: Server) -> None:
    client = openai_client(f"{embedded.base}/v1", embedded.api_key, max_retries=0)
    choice = {"type": "function", "name": "get_time"}
    events = list(
        client.responses.create(
            model=MODEL,
            input="What time is it in Tokyo?",
            tools=[WEATHER, TIME],
            tool_choice=choice,  # type: ignore[arg-type]
            max_output_tokens=64,
            temperature=0,
            stream=True,
        )
    )
    kinds = [e.type for e in events]
    assert "response.function_call_arguments.delta" in kinds and kinds[-1] == "response.completed"
    [call] = events[-1].response.output
    assert call.type == "function_call" and call.name == "get_time" and "zone" in json.loads(call.arguments)
    assert events[-1].response.tool_choice.name == "get_time"


class City(BaseModel):
    name: str
    country: str


@pytest.mark.model
def test_the_embedded_model_follows_a_json_schema_format(embedded: Server) -> None:
    client = openai_client(f"{embedded.base}/v1", embedded.api_key, max_retries=0)
    parsed = client.responses.parse(
        model=MODEL, input="Name a city in France.", text_format=City, max_output_tokens=64, temperature=0
    )
    assert isinstance(parsed.output_parsed, City) and parsed.output_parsed.name
    assert parsed.text is not None and parsed.text.format is not None and parsed.text.format.type == "json_schema"
