"""OpenAI chat-completions wire layer, judged by the official openai SDK.

The SDK talks to the translation functions through an in-memory transport (no socket): what
it sends is parsed by ``parse_request``; what it receives was rendered by ``translate``.
"""

from __future__ import annotations

import timeit
import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any

import httpx2
import openai
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from openai.lib.streaming._deltas import accumulate_delta
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from pydantic.json_schema import models_json_schema

from multiturn.errors import (
    BackendError,
    ContextTooLong,
    InvalidInput,
    ModelIntegrityError,
    ModelNotFound,
    ModelUnavailable,
    NotFound,
    RateLimited,
    StoreError,
    Unauthorized,
    UnsupportedContent,
    UpstreamError,
)
from multiturn.protocols.openai_chat import wire
from multiturn.protocols.openai_chat.translate import (
    ChunkEncoder,
    StreamOptions,
    completion_to_response,
    encode_request,
    error_to_wire,
    models_list,
    parse_request,
    request_to_body,
)
from multiturn.protocols.sse import SSEParser
from multiturn.types import (
    AudioPart,
    ChatRequest,
    Completion,
    Delta,
    GenerationParams,
    ImagePart,
    Message,
    TextPart,
    ToolCall,
    ToolCallDelta,
    ToolSpec,
    Usage,
    VideoPart,
)

Handler = Callable[[httpx2.Request], httpx2.Response]


def client(handler: Handler, max_retries: int = 0) -> openai.OpenAI:
    http = httpx2.Client(transport=httpx2.MockTransport(handler))
    return openai.OpenAI(api_key="sk-test", base_url="http://test/v1", http_client=http, max_retries=max_retries)


def body(messages: list[dict[str, Any]] | None = None, **fields: Any) -> bytes:
    return orjson.dumps({"model": "qwen-plus", "messages": messages or [{"role": "user", "content": "hi"}], **fields})


def parse(messages: list[dict[str, Any]] | None = None, **fields: Any) -> ChatRequest:
    return parse_request(body(messages, **fields))[0]


def events(stream: bytes) -> list[str]:
    parser = SSEParser()
    return [e.data for e in parser.feed(stream) + parser.flush()]


def render_stream(deltas: list[Delta], *, thinking: bool, include_usage: bool, usage: Usage | None = None) -> bytes:
    enc = ChunkEncoder(
        request_id="rid", model="qwen-plus", created=1700000000, include_usage=include_usage, thinking=thinking
    )
    finish = next((d.finish_reason for d in deltas if d.finish_reason), "stop")
    return enc.start() + b"".join(enc.delta(d) for d in deltas) + enc.finish(finish, usage or Usage(5, 7, 2, 3))


THINKING = [Delta(reasoning="Let me "), Delta(reasoning="think."), Delta(content="Hello"), Delta(content=", world")]


# --- requests ------------------------------------------------------------------------------


def test_text_request_and_params() -> None:
    req, opts = parse_request(
        body(
            [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi", "name": "ann"}],
            max_tokens=10,
            temperature=0.5,
            top_p=0.8,
            top_k=20,
            seed=1,
            stop="x",
            n=2,
            presence_penalty=0.1,
            frequency_penalty=-0.5,
            repetition_penalty=1.05,
            enable_thinking=True,
            thinking_budget=50,
            response_format={"type": "json_object"},
            parallel_tool_calls=True,
            user="u1",
            logprobs=False,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert req.model == "qwen-plus"
    assert req.messages == (
        Message.of("system", "be brief"),
        Message(role="user", content=(TextPart("hi"),), name="ann"),
    )
    p = req.params
    assert (p.max_tokens, p.temperature, p.top_p, p.top_k, p.seed, p.stop, p.n) == (10, 0.5, 0.8, 20, 1, ("x",), 2)
    assert (p.presence_penalty, p.frequency_penalty, p.repetition_penalty) == (0.1, -0.5, 1.05)
    assert (p.enable_thinking, p.thinking_budget, p.parallel_tool_calls) == (True, 50, True)
    assert p.response_format == {"type": "json_object"}
    assert p.extra == {"user": "u1", "logprobs": False}
    assert opts == StreamOptions(stream=True, include_usage=True, n=2)


def test_stream_options_defaults() -> None:
    assert parse_request(body())[1] == StreamOptions(stream=False, include_usage=False, n=1)
    assert parse_request(body(stream_options={"include_usage": True}))[1].include_usage is False  # not streaming
    assert parse_request(body(stream=True, stream_options=None))[1] == StreamOptions(stream=True)
    assert parse(max_completion_tokens=64).params.max_tokens == 64
    assert parse(stop=["a", "b"]).params.stop == ("a", "b")


def test_every_part_type() -> None:
    content = [
        {"type": "text", "text": "what is this?", "cache_control": {"type": "ephemeral"}},
        {"type": "image_url", "image_url": {"url": "https://x/a.png", "detail": "high"}, "max_pixels": 1000},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
        {"type": "input_audio", "input_audio": {"data": "https://x/a.wav", "format": "wav"}},
        {"type": "input_audio", "input_audio": {"data": "data:;base64,UklGRg==", "format": "mp3"}},
        {"type": "input_audio", "input_audio": {"data": "UklGRg=="}},
        {"type": "video", "video": ["https://x/1.jpg", "https://x/2.jpg"]},
        {"type": "video_url", "video_url": {"url": "https://x/v.mp4"}, "fps": 2},
    ]
    [message] = parse([{"role": "user", "content": content}]).messages
    assert message.content == (
        TextPart("what is this?"),
        ImagePart(url="https://x/a.png", detail="high"),
        ImagePart(url="data:image/png;base64,AAAA"),
        AudioPart(url="https://x/a.wav", format="wav"),
        AudioPart(data="data:;base64,UklGRg==", format="mp3"),
        AudioPart(data="UklGRg=="),
        VideoPart(frames=("https://x/1.jpg", "https://x/2.jpg")),
        VideoPart(url="https://x/v.mp4"),
    )


def test_roles_reasoning_and_tools() -> None:
    messages = [
        {"role": "developer", "content": "rules"},
        {"role": "user", "content": "weather?"},
        {
            "role": "assistant",
            "content": None,
            "reasoning_content": "need a tool",
            "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "w", "arguments": '{"c":1}'}}],
        },
        {"role": "tool", "content": "sunny", "tool_call_id": "call_1"},
    ]
    tools = [{"type": "function", "function": {"name": "w", "description": "d", "parameters": {"type": "object"}}}]
    choice = {"type": "function", "function": {"name": "w"}}
    req = parse(messages, tools=tools, tool_choice=choice)
    assert [m.role for m in req.messages] == ["system", "user", "assistant", "tool"]
    assert req.messages[2] == Message(
        role="assistant", reasoning="need a tool", tool_calls=(ToolCall(id="call_1", name="w", arguments='{"c":1}'),)
    )
    assert req.messages[3] == Message(role="tool", content=(TextPart("sunny"),), tool_call_id="call_1")
    assert req.params.tools == (ToolSpec(name="w", description="d", parameters={"type": "object"}),)
    assert req.params.tool_choice == choice
    assert parse(tool_choice="auto").params.tool_choice == "auto"


def test_unknown_fields_are_tolerated_and_passed_on() -> None:
    req = parse(
        [{"role": "user", "content": [{"type": "text", "text": "hi", "foo": 1}], "partial": False, "x": None}],
        enable_search=True,
        search_options={"forced_search": True},
        store=False,
        metadata={"a": "b"},
    )
    assert req.messages == (Message.of("user", "hi"),)
    assert req.params.extra == {
        "enable_search": True,
        "search_options": {"forced_search": True},
        "store": False,
        "metadata": {"a": "b"},
    }


def test_sdk_request_with_extra_body_parses() -> None:
    seen: list[ChatRequest] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        req, _ = parse_request(request.content)
        seen.append(req)
        return httpx2.Response(
            200, content=completion_to_response(Completion("ok"), request_id="r", model="m", created=1)
        )

    client(handler).chat.completions.create(
        model="qwen-plus",
        messages=[{"role": "user", "content": "hi"}],
        max_tokens=10,
        n=1,
        presence_penalty=0.1,
        response_format={"type": "json_object"},
        seed=1,
        stop=["x"],
        temperature=0.5,
        top_p=0.8,
        tools=[{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}],
        extra_body={"enable_thinking": True, "thinking_budget": 50, "top_k": 20, "enable_search": True},
    )
    p = seen[0].params
    assert (p.enable_thinking, p.thinking_budget, p.top_k, p.extra) == (True, 50, 20, {"enable_search": True})
    assert p.tools == (ToolSpec(name="f", parameters={"type": "object", "properties": {}}),)


def test_model_dump_round_trip_through_the_sdk() -> None:
    """The guide appends ``completion.choices[0].message.model_dump()`` to ``messages``."""
    seen: list[ChatRequest] = []
    answers = [
        Completion(content="A cat.", reasoning="It has whiskers.", finish_reason="stop", usage=Usage(10, 5, 0, 2)),
        Completion(tool_calls=(ToolCall("call_9", "lookup", '{"q": "cat"}'),), finish_reason="tool_calls"),
        Completion(content="done"),
    ]

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(parse_request(request.content)[0])
        answer = answers[len(seen) - 1]
        return httpx2.Response(200, content=completion_to_response(answer, request_id="r", model="m", created=1))

    sdk = client(handler)
    messages: list[Any] = [
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/c.png"}}]}
    ]
    first = sdk.chat.completions.create(model="qwen-vl-plus", messages=messages)
    assert first.choices[0].message.reasoning_content == "It has whiskers."  # type: ignore[attr-defined]
    assert first.usage is not None and first.usage.prompt_tokens_details is not None
    assert first.usage.prompt_tokens_details.cached_tokens == 0
    messages += [first.choices[0].message.model_dump(), {"role": "user", "content": "look it up"}]
    second = sdk.chat.completions.create(model="qwen-vl-plus", messages=messages)
    assert second.choices[0].message.content is None
    messages.append(second.choices[0].message.model_dump())
    messages.append({"role": "tool", "content": "a cat", "tool_call_id": "call_9"})
    sdk.chat.completions.create(model="qwen-vl-plus", messages=messages)
    assert seen[1].messages[1] == Message(role="assistant", content=(TextPart("A cat."),), reasoning="It has whiskers.")
    assert seen[2].messages[3] == Message(role="assistant", tool_calls=(ToolCall("call_9", "lookup", '{"q": "cat"}'),))
    assert seen[2].messages[4].tool_call_id == "call_9"


RANGE_CASES = [
    ({"temperature": 2.0}, "Temperature should be in [0.0, 2.0)", "temperature"),
    ({"temperature": -0.1}, "Temperature should be in [0.0, 2.0)", "temperature"),
    ({"top_p": 0}, "Range of top_p should be (0.0, 1.0]", "top_p"),
    ({"top_p": 1.5}, "Range of top_p should be (0.0, 1.0]", "top_p"),
    ({"max_tokens": 0}, "Range of max_tokens should be [1, 2147483647]", "max_tokens"),
    ({"n": 5}, "Range of n should be [1, 4]", "n"),
    ({"n": 0}, "Range of n should be [1, 4]", "n"),
    ({"seed": -1}, "-1 is lesser than the minimum of 0 - 'seed'", "seed"),
    ({"seed": 2**31}, "2147483648 is greater than the maximum of 2147483647 - 'seed'", "seed"),
    ({"presence_penalty": 2.5}, "Range of presence_penalty should be [-2.0, 2.0]", "presence_penalty"),
    ({"thinking_budget": 0}, "The thinking_budget parameter must be a positive integer", "thinking_budget"),
    ({"top_logprobs": 6}, "Range of top_logprobs should be [0, 5]", "top_logprobs"),
    (
        {"temperature": "hot"},
        "temperature: Input should be a valid number, unable to parse string as a number",
        "temperature",
    ),
]


@pytest.mark.parametrize(("fields", "message", "param"), RANGE_CASES)
def test_range_errors(fields: dict[str, Any], message: str, param: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_request(body(**fields))
    assert info.value.message == message
    assert getattr(info.value, "param", None) == param


def test_max_tokens_limit_of_the_model() -> None:
    with pytest.raises(InvalidInput, match=r"^Range of max_tokens should be \[1, 8192\]$"):
        parse_request(body(max_tokens=8193), max_tokens_limit=8192)
    assert parse_request(body(max_tokens=8192), max_tokens_limit=8192)[0].params.max_tokens == 8192


STRUCTURE_CASES = [
    (b"{not json", "Required body invalid, please check the request body format."),
    (b"[1, 2]", "Required body invalid, please check the request body format."),
    (b"", "Required body invalid, please check the request body format."),
    (b'{"messages": [{"role": "user", "content": "x"}]}', "you must provide a model parameter."),
    (b'{"model": "m", "messages": []}', "[] is too short"),
    (
        body([{"role": "tool", "content": "x", "tool_call_id": "a"}]),
        'messages with role "tool" must be a response to a preceeding message with "tool_calls"',
    ),
    (
        body(
            [
                {"role": "user", "content": "x"},
                {"role": "assistant", "content": "y"},
                {"role": "tool", "content": "z", "tool_call_id": "a"},
            ]
        ),
        'messages with role "tool" must be a response to a preceeding message with "tool_calls"',
    ),
    (
        body([{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]),
        'the last message must have role "user" or "tool"',
    ),
    (
        body([{"role": "robot", "content": "x"}]),
        "messages[0]: Input tag 'robot' found using 'role' does not match any"
        " of the expected tags: 'system', 'developer', 'user', 'assistant', 'tool'",
    ),
    (
        body([{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]),
        "messages[0].content[0].image_url.url: Field required",
    ),
]


@pytest.mark.parametrize(("raw", "message"), STRUCTURE_CASES)
def test_structural_errors(raw: bytes, message: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_request(raw)
    assert info.value.message == message


# --- request_to_body -----------------------------------------------------------------------

REPRESENTATIVE = [
    ChatRequest("m", (Message.of("user", "hi"),)),
    ChatRequest(
        "qwen-vl",
        (
            Message.of("system", "sys"),
            Message(
                role="user",
                content=(
                    TextPart("look"),
                    ImagePart("https://x/a.png", detail="low"),
                    AudioPart(url="https://x/a.wav", format="wav"),
                    AudioPart(data="UklGRg==", format="wav"),
                    VideoPart(frames=("https://x/1.jpg", "https://x/2.jpg")),
                    VideoPart(url="https://x/v.mp4"),
                ),
                name="ann",
            ),
        ),
        GenerationParams(max_tokens=5, temperature=0.1, top_p=0.9, top_k=3, seed=7, stop=("a",), n=1),
    ),
    ChatRequest(
        "m",
        (
            Message.of("user", "w?"),
            Message(role="assistant", tool_calls=(ToolCall("c1", "w", "{}"), ToolCall("c2", "v", '{"a":1}'))),
            Message(role="tool", content=(TextPart("sun"),), tool_call_id="c1"),
            Message(role="tool", content=(TextPart("rain"),), tool_call_id="c2"),
        ),
        GenerationParams(
            tools=(ToolSpec("w", "weather", {"type": "object"}), ToolSpec("v")),
            tool_choice={"type": "function", "function": {"name": "w"}},
            parallel_tool_calls=True,
            repetition_penalty=1.1,
            presence_penalty=0.5,
            frequency_penalty=0.2,
            enable_thinking=False,
            thinking_budget=100,
            response_format={"type": "json_schema", "json_schema": {"name": "x"}},
            extra={"enable_search": True, "user": "u"},
        ),
    ),
]


@pytest.mark.parametrize("request_", REPRESENTATIVE)
@pytest.mark.parametrize(("stream", "include_usage"), [(False, False), (True, False), (True, True)])
def test_request_to_body_round_trip(request_: ChatRequest, stream: bool, include_usage: bool) -> None:
    out = request_to_body(request_, stream=stream, include_usage=include_usage)
    again, opts = parse_request(orjson.dumps(out))
    assert again == request_
    assert (opts.stream, opts.include_usage) == (stream, include_usage)


def test_request_to_body_never_replays_reasoning_and_keeps_core_fields() -> None:
    req = ChatRequest(
        "m",
        (Message.of("user", "a"), Message("assistant", (TextPart("b"),), reasoning="secret"), Message.of("user", "c")),
        GenerationParams(extra={"model": "other", "enable_search": True}),
    )
    out = request_to_body(req, stream=False, include_usage=False)
    assert out["messages"][1] == {"role": "assistant", "content": "b"}
    assert (out["model"], out["enable_search"]) == ("m", True)
    assert b"secret" not in orjson.dumps(out)


@pytest.mark.parametrize("request_", REPRESENTATIVE)
@pytest.mark.parametrize("reasoning", ["drop", "tool_chain", "keep"])
def test_the_encoded_request_is_the_body_as_json(request_: ChatRequest, reasoning: Any) -> None:
    body = request_to_body(request_, stream=True, include_usage=True, reasoning=reasoning)
    assert encode_request(request_, stream=True, include_usage=True, reasoning=reasoning) == orjson.dumps(body)


def test_a_message_sent_again_keeps_its_encoding_and_it_is_never_changed() -> None:
    """A message sent once is encoded with its body; sent again, its encoding stays with the
    message object (a stored conversation's history is the same objects every turn). A message
    replayed with its reasoning is encoded for that body alone, and the next body without
    reasoning is as before."""
    history = (
        Message.of("user", "a"),
        Message("assistant", (TextPart("b"),), reasoning="why"),
        Message.of("user", "c"),
    )
    first = encode_request(ChatRequest("m", history), stream=False, include_usage=False)
    assert not any(isinstance(m._sent, orjson.Fragment) for m in history)  # sent once: nothing kept
    second = encode_request(ChatRequest("m", history), stream=False, include_usage=False)
    encodings = [m._sent for m in history]
    assert all(isinstance(e, orjson.Fragment) for e in encodings)
    kept = orjson.loads(encode_request(ChatRequest("m", history), stream=False, include_usage=False, reasoning="keep"))
    again = encode_request(ChatRequest("m", history), stream=False, include_usage=False)
    assert all(m._sent is e for m, e in zip(history, encodings, strict=True))  # encoded once
    assert kept["messages"][1] == {"role": "assistant", "content": "b", "reasoning_content": "why"}
    assert first == second == again and orjson.loads(again)["messages"][1] == {"role": "assistant", "content": "b"}
    equal = Message.of("user", "a")
    for _ in range(2):
        encode_request(ChatRequest("m", (equal,)), stream=False, include_usage=False)
    assert equal._sent is not history[0]._sent  # by object, not by value


def test_a_kept_encoding_takes_the_memory_of_its_bytes() -> None:
    """orjson returns its output in the buffer it wrote it to (4 KiB for a short message); the
    encoding kept on a message is a copy of its own size, so a long history costs its bytes."""
    history = [Message.of("user", f"message {i}") for i in range(500)]
    encode_request(ChatRequest("m", tuple(history)), stream=False, include_usage=False)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        encode_request(ChatRequest("m", tuple(history)), stream=False, include_usage=False)
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert all(isinstance(m._sent, orjson.Fragment) for m in history)
    assert kept / len(history) < 400, f"{kept / len(history):.0f} bytes kept a message"


text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1)


@given(st.lists(st.tuples(st.sampled_from(["system", "user", "assistant"]), text), max_size=6), text)
def test_text_round_trip(history: list[tuple[Any, str]], last: str) -> None:
    req = ChatRequest("m", (*(Message.of(role, t) for role, t in history), Message.of("user", last)))
    assert parse_request(orjson.dumps(request_to_body(req, stream=True, include_usage=True)))[0] == req


# --- responses -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("completion", "finish"),
    [
        (Completion("hi", finish_reason="stop"), "stop"),
        (Completion("hi", finish_reason="length"), "length"),
        (Completion("hi", finish_reason="content_filter"), "content_filter"),
        (Completion("hi", finish_reason="cancelled"), "stop"),
        (Completion("hi", finish_reason="error"), "stop"),
        (Completion("hi"), "stop"),
        (Completion(tool_calls=(ToolCall("c", "f", "{}"),)), "tool_calls"),
    ],
)
def test_finish_reasons(completion: Completion, finish: str) -> None:
    data = orjson.loads(completion_to_response(completion, request_id="r", model="m", created=1))
    assert data["choices"][0]["finish_reason"] == finish


def test_response_shape() -> None:
    completion = Completion("", "why", (ToolCall("c", "f", "{}"),), "tool_calls", Usage(10, 4, 8, 1))
    raw = completion_to_response(completion, request_id="abc", model="qwen-plus", created=17)
    wire.ChatCompletionResponse.model_validate_json(raw)  # exactly what the schema says
    assert orjson.loads(raw) == {
        "id": "chatcmpl-abc",
        "object": "chat.completion",
        "created": 17,
        "model": "qwen-plus",
        "system_fingerprint": None,
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": None,
                    "reasoning_content": "why",
                    "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
                },
                "finish_reason": "tool_calls",
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": 10,
            "completion_tokens": 4,
            "total_tokens": 14,
            "prompt_tokens_details": {"cached_tokens": 8, "cache_creation_input_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 1},
        },
    }
    plain = orjson.loads(completion_to_response(Completion(""), request_id="r", model="m", created=1))
    assert plain["choices"][0]["message"] == {"role": "assistant", "content": ""}
    sdk = ChatCompletion.model_validate_json(raw)
    assert sdk.choices[0].message.tool_calls is not None and sdk.usage is not None


def test_several_choices() -> None:
    raw = completion_to_response(
        [Completion("a", usage=Usage(10, 2, 4)), Completion("b", usage=Usage(10, 3, 4))],
        request_id="r",
        model="m",
        created=1,
    )
    data = ChatCompletion.model_validate_json(raw)
    assert [(c.index, c.message.content) for c in data.choices] == [(0, "a"), (1, "b")]
    assert data.usage is not None and (data.usage.prompt_tokens, data.usage.completion_tokens) == (10, 5)


def test_openapi_schema_of_the_wire_models() -> None:
    models = [(wire.ChatCompletionRequest, "validation")] + [
        (m, "serialization")
        for m in (wire.ChatCompletionResponse, wire.ChatCompletionChunk, wire.ErrorResponse, wire.ModelList)
    ]
    _, schema = models_json_schema(models, ref_template="#/components/schemas/{model}")  # type: ignore[arg-type]
    request = schema["$defs"]["ChatCompletionRequest"]
    assert request["required"] == ["model", "messages"]
    assert request["properties"]["temperature"]["anyOf"][0] == {
        "type": "number",
        "minimum": 0.0,
        "exclusiveMaximum": 2.0,
    }
    assert set(request["properties"]["messages"]["items"]["discriminator"]["mapping"]) == {
        "system",
        "developer",
        "user",
        "assistant",
        "tool",
    }


def test_models_list_through_the_sdk() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, content=models_list(["qwen-plus", "qwen3-0.6b"], 1700000000))

    first, second = client(handler).models.list()
    assert (first.id, first.object, first.created, first.owned_by) == ("qwen-plus", "model", 1700000000, "multiturn")
    assert second.id == "qwen3-0.6b"
    wire.ModelList.model_validate_json(models_list(["a"], 1))


# --- streams -------------------------------------------------------------------------------


def sdk_stream(stream: bytes) -> Iterator[ChatCompletionChunk]:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, content=stream, headers={"content-type": "text/event-stream"})

    return iter(
        client(handler).chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}], stream=True)
    )


def guide_loop(chunks: Iterator[ChatCompletionChunk]) -> tuple[str, str, list[Any]]:
    """The thinking loop of the multi-turn guide, verbatim apart from printing."""
    reasoning_content, answer_content, usages = "", "", []
    for chunk in chunks:
        if not chunk.choices:
            usages.append(chunk.usage)
        else:
            delta = chunk.choices[0].delta
            if hasattr(delta, "reasoning_content") and delta.reasoning_content is not None:
                reasoning_content += delta.reasoning_content
            else:
                answer_content += delta.content  # type: ignore[operator]
    return reasoning_content, answer_content, usages


@pytest.mark.parametrize("thinking", [True, False])
@pytest.mark.parametrize("include_usage", [True, False])
def test_guide_thinking_loop_over_our_stream(thinking: bool, include_usage: bool) -> None:
    deltas = THINKING if thinking else THINKING[2:]
    stream = render_stream(deltas, thinking=thinking, include_usage=include_usage)
    reasoning, answer, usages = guide_loop(sdk_stream(stream))
    assert (reasoning, answer) == ("Let me think." if thinking else "", "Hello, world")
    if include_usage:
        [usage] = usages
        assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (5, 7, 12)
        assert usage.prompt_tokens_details.cached_tokens == 2
        assert usage.completion_tokens_details.reasoning_tokens == 3
    else:
        assert usages == []
    datas = events(stream)
    assert datas[-1] == "[DONE]"
    for data in datas[:-1]:
        chunk = wire.ChatCompletionChunk.model_validate_json(data)  # exactly what the schema says
        assert ("usage" in orjson.loads(data)) and (chunk.usage is None) == bool(chunk.choices)
        for choice in chunk.choices:
            assert isinstance(choice.delta.content, str) or isinstance(choice.delta.reasoning_content, str)


def test_chunk_fields() -> None:
    datas = events(render_stream([Delta(content="x")], thinking=False, include_usage=False))
    first, middle, last = (orjson.loads(d) for d in datas[:3])
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert middle["choices"][0] == {"index": 0, "delta": {"content": "x"}, "finish_reason": None, "logprobs": None}
    assert last["choices"][0]["finish_reason"] == "stop" and last["choices"][0]["delta"] == {"content": ""}
    assert {(c["id"], c["object"], c["created"], c["model"]) for c in (first, middle, last)} == {
        ("chatcmpl-rid", "chat.completion.chunk", 1700000000, "qwen-plus")
    }


def test_empty_delta_renders_nothing() -> None:
    enc = ChunkEncoder(request_id="r", model="m", created=1, include_usage=False, thinking=True)
    assert enc.delta(Delta()) == b""
    assert enc.delta(Delta(finish_reason="stop", usage=Usage(1, 1))) == b""


TOOL_DELTAS = [
    Delta(content="Checking."),
    Delta(tool_calls=(ToolCallDelta(0, "call_a", "weather", '{"ci'),)),
    Delta(tool_calls=(ToolCallDelta(0, arguments='ty": "Paris"}'), ToolCallDelta(1, "call_b", "time", ""))),
    Delta(tool_calls=(ToolCallDelta(1, "call_b", "time", "{}"),)),  # a backend repeating id/name: sent once
    Delta(finish_reason="tool_calls"),
]


@pytest.mark.parametrize("thinking", [True, False])
def test_tool_call_deltas_accumulate_in_the_sdk(thinking: bool) -> None:
    stream = render_stream(TOOL_DELTAS, thinking=thinking, include_usage=True)
    state: ChatCompletionStreamState[Any] = ChatCompletionStreamState()
    acc: dict[object, object] = {}
    for chunk in sdk_stream(stream):
        state.handle_chunk(chunk)
        for choice in chunk.choices:
            accumulate_delta(acc, choice.delta.to_dict())  # type: ignore[arg-type]
    final = state.get_final_completion()
    message = final.choices[0].message
    assert final.choices[0].finish_reason == "tool_calls"
    assert message.content == "Checking."
    calls = [(c.id, c.function.name, c.function.arguments) for c in message.tool_calls or []]
    assert calls == [("call_a", "weather", '{"city": "Paris"}'), ("call_b", "time", "{}")]
    tool_calls: Any = acc["tool_calls"]
    assert [(c["id"], c["function"]["name"]) for c in tool_calls] == [("call_a", "weather"), ("call_b", "time")]
    assert guide_loop(sdk_stream(stream))[1] == "Checking."  # tool-call chunks carry content "" too


def test_stream_helper_of_the_sdk() -> None:
    stream = render_stream(THINKING, thinking=True, include_usage=True)

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, content=stream, headers={"content-type": "text/event-stream"})

    with client(handler).chat.completions.stream(model="m", messages=[{"role": "user", "content": "x"}]) as s:
        final = s.get_final_completion()
    assert final.choices[0].message.content == "Hello, world"
    assert final.choices[0].message.reasoning_content == "Let me think."  # type: ignore[attr-defined]
    assert final.usage is not None and final.usage.total_tokens == 12


def test_in_stream_error_raises_api_error() -> None:
    enc = ChunkEncoder(request_id="r", model="m", created=1, include_usage=False, thinking=False)
    stream = enc.start() + enc.delta(Delta(content="par")) + enc.error(BackendError("the model crashed"))
    answer = ""
    with pytest.raises(openai.APIError) as info:
        for chunk in sdk_stream(stream):
            answer += chunk.choices[0].delta.content or ""
    assert answer == "par"
    assert (info.value.message, info.value.code, info.value.type) == (
        "the model crashed",
        "internal_error",
        "internal_error",
    )
    wire.StreamError.model_validate_json(events(stream)[-1])


def test_chunk_encoding_is_cheap() -> None:
    enc = ChunkEncoder(request_id="r" * 36, model="qwen-plus", created=1, include_usage=True, thinking=True)
    delta = Delta(content="some token")
    per_call = min(timeit.repeat(lambda: enc.delta(delta), number=2000, repeat=5)) / 2000
    assert per_call < 50e-6  # the budget is 0.05 ms; measured ~1 µs


# --- errors --------------------------------------------------------------------------------

ERROR_CASES = [
    (InvalidInput("bad"), 400, openai.BadRequestError, "invalid_parameter_error", "invalid_request_error", "bad", True),
    (
        ContextTooLong("too long", prompt_tokens=9, limit=8),
        400,
        openai.BadRequestError,
        "invalid_parameter_error",
        "invalid_request_error",
        "Range of input length should be [1, 8]: too long",
        True,
    ),
    (
        UnsupportedContent("no images"),
        400,
        openai.BadRequestError,
        "invalid_parameter_error",
        "invalid_request_error",
        "no images",
        True,
    ),
    (
        ModelNotFound("Model not exist."),
        404,
        openai.NotFoundError,
        "model_not_found",
        "invalid_request_error",
        "Model not exist.",
        True,
    ),
    (
        NotFound("no conversation c1"),
        404,
        openai.NotFoundError,
        "not_found",
        "invalid_request_error",
        "no conversation c1",
        True,
    ),
    (
        Unauthorized("key sk-123 unknown"),
        401,
        openai.AuthenticationError,
        "invalid_api_key",
        "invalid_request_error",
        "Incorrect API key provided.",
        True,
    ),
    (
        RateLimited("slow down", retry_after=2.5),
        429,
        openai.RateLimitError,
        "limit_requests",
        "limit_requests",
        "slow down",
        False,
    ),
    (
        UpstreamError("bad key upstream", status=401, code="invalid_api_key"),
        401,
        openai.AuthenticationError,
        "invalid_api_key",
        "invalid_request_error",
        "bad key upstream",
        True,
    ),
    (
        UpstreamError("reset", status=None),
        502,
        openai.InternalServerError,
        "upstream_error",
        "internal_error",
        "reset",
        False,
    ),
    (
        UpstreamError("upstream 503", status=503),
        502,
        openai.InternalServerError,
        "upstream_error",
        "internal_error",
        "upstream 503",
        False,
    ),
    (
        BackendError("decode failed"),
        500,
        openai.InternalServerError,
        "internal_error",
        "internal_error",
        "decode failed",
        False,
    ),
    (
        ModelIntegrityError("sha mismatch"),
        500,
        openai.InternalServerError,
        "internal_error",
        "internal_error",
        "sha mismatch",
        True,
    ),
    (
        ModelUnavailable("not pulled"),
        503,
        openai.InternalServerError,
        "model_unavailable",
        "internal_error",
        "not pulled",
        True,
    ),
    (
        StoreError("cannot open /secret/db"),
        500,
        openai.InternalServerError,
        "internal_error",
        "internal_error",
        "An internal error has occurred, please try again later or contact service support.",
        False,
    ),
    (
        KeyError("/etc/passwd"),
        500,
        openai.InternalServerError,
        "internal_error",
        "internal_error",
        "An internal error has occurred, please try again later or contact service support.",
        False,
    ),
]


@pytest.mark.parametrize(("exc", "status", "cls", "code", "type_", "message", "final"), ERROR_CASES)
def test_errors_as_the_sdk_sees_them(
    exc: Exception, status: int, cls: type[openai.APIStatusError], code: str, type_: str, message: str, final: bool
) -> None:
    got_status, raw, headers = error_to_wire(exc, "req-1")
    assert got_status == status
    assert (headers.get("x-should-retry") == "false") is final
    wire.ErrorResponse.model_validate_json(raw)
    assert orjson.loads(raw)["request_id"] == "req-1"
    calls: list[int] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        calls.append(1)
        return httpx2.Response(status, content=raw, headers={**headers, "x-request-id": "req-1"})

    retries = 2 if final else 0  # a final error is tried once even when the client may retry
    with pytest.raises(cls) as info:
        client(handler, max_retries=retries).chat.completions.create(
            model="m", messages=[{"role": "user", "content": "x"}]
        )
    assert len(calls) == 1
    err = info.value
    assert (err.status_code, err.code, err.type, err.request_id) == (status, code, type_, "req-1")
    assert err.message == f"Error code: {status} - {message}"


def test_rate_limit_headers_and_invalid_parameter_param() -> None:
    assert error_to_wire(RateLimited("x", retry_after=2.5), "r")[2] == {"retry-after": "3", "retry-after-ms": "2500"}
    assert error_to_wire(RateLimited("x"), "r")[2] == {"retry-after": "1"}
    with pytest.raises(InvalidInput) as info:
        parse_request(body(temperature=3))
    _, raw, _ = error_to_wire(info.value, "r")
    assert orjson.loads(raw)["error"] == {
        "message": "Temperature should be in [0.0, 2.0)",
        "type": "invalid_request_error",
        "param": "temperature",
        "code": "invalid_parameter_error",
    }
    assert error_to_wire(UpstreamError("busy", status=429), "r")[2] == {}
