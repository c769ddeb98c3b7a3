"""UpstreamBackend against a real HTTP server (tests/support/fake_upstream.py) that speaks Model
Studio's compatible mode and misbehaves on demand."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest

from multiturn.backends.upstream import UpstreamBackend
from multiturn.client import AsyncClient
from multiturn.errors import ContextTooLong, RateLimited, UpstreamError
from multiturn.settings import ModelAlias, Settings
from multiturn.types import (
    Accumulator,
    Completion,
    Delta,
    GenerationParams,
    ImagePart,
    Message,
    TextPart,
    ToolCall,
    ToolSpec,
)
from support.fake_upstream import FakeUpstream, eventually

KEY = "sk-test-key"
HELLO = (Message.of("system", "Be brief."), Message.of("user", "hello there"))

MakeBackend = Callable[..., UpstreamBackend]


@pytest.fixture
def fake() -> Iterator[FakeUpstream]:
    with FakeUpstream(api_key=KEY) as server:
        yield server


@pytest.fixture
async def make_backend(fake: FakeUpstream) -> AsyncIterator[MakeBackend]:
    made: list[UpstreamBackend] = []

    def make(model: str = "qwen-plus", **overrides: Any) -> UpstreamBackend:
        options: dict[str, Any] = {
            "name": "alias",
            "upstream_model": model,
            "base_url": fake.base_url,
            "api_key": KEY,
            "capabilities": frozenset({"text", "stream", "vision"}),
            "context_window": None,
            "max_output_tokens": None,
            "connect_timeout": 2.0,
            "read_timeout": 10.0,
            "retries": 2,
        }
        backend = UpstreamBackend(**(options | overrides))
        made.append(backend)
        return backend

    yield make
    for backend in made:
        await backend.aclose()


async def collect(
    backend: UpstreamBackend, messages: Sequence[Message] = HELLO, params: GenerationParams | None = None
) -> tuple[list[Delta], Completion]:
    deltas = [d async for d in backend.generate(messages, params or GenerationParams())]
    acc = Accumulator()
    for delta in deltas:
        acc.add(delta)
    return deltas, acc.completion()


async def test_streams_text_with_usage_last(fake: FakeUpstream, make_backend: MakeBackend) -> None:
    deltas, done = await collect(make_backend())

    assert done.content == "You said: hello there"
    assert [d.content for d in deltas] == ["You ", "said: ", "hello ", "there", ""]  # one per upstream chunk
    assert [d.finish_reason for d in deltas] == [None, None, None, None, "stop"]
    assert deltas[-1].usage is not None and deltas[-1].usage.prompt_tokens > 0
    assert done.usage.completion_tokens == 4
    (request,) = fake.requests
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.body["model"] == "qwen-plus"
    assert request.body["stream"] is True
    assert request.body["stream_options"] == {"include_usage": True}
    assert request.body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hello there"},
    ]


async def test_info_and_token_estimate_need_no_network(fake: FakeUpstream, make_backend: MakeBackend) -> None:
    backend = make_backend(context_window=32768)
    await backend.prepare()
    info = backend.info()

    assert (info.name, info.context_window, info.max_output_tokens) == ("alias", 32768, 8192)
    assert info.description == f"upstream {fake.base_url}"
    assert make_backend().info().context_window == 131072
    assert await backend.count_tokens("abcdef") == 3
    assert fake.requests == []


async def test_thinking_streams_reasoning_apart_and_first(make_backend: MakeBackend) -> None:
    deltas, done = await collect(make_backend(), params=GenerationParams(enable_thinking=True))

    assert done.reasoning == "The user said: hello there. I will answer."
    assert done.content == "You said: hello there"
    kinds = ["r" if d.reasoning else "c" for d in deltas if d.reasoning or d.content]
    assert kinds == sorted(kinds, reverse=True)  # every reasoning delta before the first content delta
    assert not any(d.reasoning and d.content for d in deltas)
    assert done.usage.reasoning_tokens == len([d for d in deltas if d.reasoning])


async def test_image_parts_forwarded_unchanged_and_reasoning_not_replayed(
    fake: FakeUpstream, make_backend: MakeBackend
) -> None:
    data_url = "data:image/png;base64," + "iVBORw0KGgo" * 50
    http_url = "https://example.invalid/cat.png?size=large&x=1"
    messages = (
        Message.of("user", "hi"),
        Message(role="assistant", content=(TextPart("hello"),), reasoning="SECRET-THOUGHTS"),
        Message(role="user", content=(TextPart("what are these?"), ImagePart(data_url), ImagePart(http_url, "high"))),
    )
    _, done = await collect(make_backend("qwen3-vl-plus"), messages)

    assert done.content == "I see 2 images. You said: what are these?"
    sent = fake.requests[0].body["messages"]
    assert sent[1] == {"role": "assistant", "content": "hello"}
    assert sent[2]["content"] == [
        {"type": "text", "text": "what are these?"},
        {"type": "image_url", "image_url": {"url": data_url}},
        {"type": "image_url", "image_url": {"url": http_url, "detail": "high"}},
    ]
    assert b"SECRET-THOUGHTS" not in orjson.dumps(fake.requests[0].body)


async def test_tool_call_deltas_and_the_round_trip(fake: FakeUpstream, make_backend: MakeBackend) -> None:
    echo = ToolSpec("echo", "Repeat the text", {"type": "object", "properties": {"text": {"type": "string"}}})
    params = GenerationParams(tools=(echo,), tool_choice="auto", parallel_tool_calls=False)
    backend = make_backend()
    deltas, done = await collect(backend, params=params)

    pieces = [c for d in deltas for c in d.tool_calls]
    assert len(pieces) == 3
    assert pieces[0].id is not None and pieces[0].name == "echo" and pieces[0].arguments == ""
    assert all(p.id is None and p.name is None for p in pieces[1:])  # "" from the upstream means absent
    (call,) = done.tool_calls
    assert call.name == "echo" and orjson.loads(call.arguments) == {"text": "hello there"}
    assert done.finish_reason == "tool_calls"
    body = fake.requests[0].body
    assert body["tools"] == [{"type": "function", "function": echo_function(echo)}]
    assert (body["tool_choice"], body["parallel_tool_calls"]) == ("auto", False)

    history = (
        *HELLO,
        Message(role="assistant", tool_calls=(ToolCall(call.id, call.name, call.arguments),)),
        Message(role="tool", content=(TextPart("hello there"),), tool_call_id=call.id),
    )
    _, answer = await collect(backend, history, params)
    assert answer.content == "Tool said: hello there"
    sent = fake.requests[1].body["messages"]
    assert sent[2] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": call.id, "type": "function", "function": {"name": "echo", "arguments": call.arguments}}],
    }
    assert sent[3] == {"role": "tool", "content": "hello there", "tool_call_id": call.id}


def echo_function(tool: ToolSpec) -> dict[str, Any]:
    return {"name": tool.name, "description": tool.description, "parameters": tool.parameters}


async def test_usage_reports_cached_tokens_of_a_resent_history(make_backend: MakeBackend) -> None:
    backend = make_backend()
    _, first = await collect(backend)
    _, second = await collect(backend, (*HELLO, Message.of("assistant", first.content), Message.of("user", "more")))

    assert first.usage.cached_tokens == 0
    assert 0 < second.usage.cached_tokens < second.usage.prompt_tokens


async def test_params_and_extra_are_passed_through(fake: FakeUpstream, make_backend: MakeBackend) -> None:
    params = GenerationParams(
        max_tokens=64,
        temperature=0.5,
        top_p=0.8,
        top_k=20,
        seed=7,
        stop=("STOP",),
        presence_penalty=0.1,
        frequency_penalty=0.2,
        repetition_penalty=1.05,
        enable_thinking=False,
        thinking_budget=50,
        n=1,
        response_format={"type": "json_object"},
        extra={"enable_search": True, "vl_high_resolution_images": True, "stream": False},
    )
    await collect(make_backend(), params=params)

    body = fake.requests[0].body
    expected = {
        "max_tokens": 64,
        "temperature": 0.5,
        "top_p": 0.8,
        "top_k": 20,
        "seed": 7,
        "stop": ["STOP"],
        "presence_penalty": 0.1,
        "frequency_penalty": 0.2,
        "repetition_penalty": 1.05,
        "enable_thinking": False,
        "thinking_budget": 50,
        "n": 1,
        "response_format": {"type": "json_object"},
        "enable_search": True,
        "vl_high_resolution_images": True,
        "stream": True,  # the relay always streams, whatever extra says
    }
    assert {k: body.get(k) for k in expected} == expected
    assert "tools" not in body and "tool_choice" not in body


async def test_429_is_retried_until_it_succeeds(fake: FakeUpstream, make_backend: MakeBackend) -> None:
    _, done = await collect(make_backend("rate-limit-2", retries=2))

    assert done.content == "You said: hello there"
    assert len(fake.requests) == 3


async def test_429_beyond_the_retries_is_rate_limited(fake: FakeUpstream, make_backend: MakeBackend) -> None:
    with pytest.raises(RateLimited) as caught:
        await collect(make_backend("rate-limit-5", retries=1))

    assert caught.value.retry_after == 0
    assert "exceeded your current request limit" in caught.value.message
    assert len(fake.requests) == 2


async def test_500_is_retried_then_raised(fake: FakeUpstream, make_backend: MakeBackend) -> None:
    with pytest.raises(UpstreamError) as caught:
        await collect(make_backend("error-500", retries=2))

    assert caught.value.status == 500
    assert caught.value.code == "internal_error"
    assert len(fake.requests) == 3


async def test_context_overflow_is_context_too_long_and_not_retried(
    fake: FakeUpstream, make_backend: MakeBackend
) -> None:
    with pytest.raises(ContextTooLong) as caught:
        await collect(make_backend("context-too-long"))

    assert caught.value.limit == 1024
    assert "Range of input length should be [1, 1024]" in caught.value.message
    assert len(fake.requests) == 1


async def test_wrong_key_is_401_and_not_retried(fake: FakeUpstream, make_backend: MakeBackend) -> None:
    with pytest.raises(UpstreamError) as caught:
        await collect(make_backend(api_key="sk-wrong"))

    assert (caught.value.status, caught.value.code) == (401, "invalid_api_key")
    assert len(fake.requests) == 1


async def test_connection_refused_fails_fast(make_backend: MakeBackend) -> None:
    with socket.socket() as sock:  # a port nobody listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    backend = make_backend(base_url=f"http://127.0.0.1:{port}/v1", retries=1)
    started = time.monotonic()

    with pytest.raises(UpstreamError) as caught:
        await collect(backend)

    assert caught.value.status is None
    assert caught.value.message.startswith("upstream unreachable")
    assert time.monotonic() - started < 2.0


async def test_reset_mid_stream_raises_after_the_partial_deltas_without_retry(
    fake: FakeUpstream, make_backend: MakeBackend
) -> None:
    seen: list[Delta] = []
    with pytest.raises(UpstreamError) as caught:
        async for delta in make_backend("reset-after-3").generate(HELLO, GenerationParams()):
            seen.append(delta)

    assert "".join(d.content for d in seen) == "You said: "
    assert all(d.finish_reason is None for d in seen)
    assert "mid-stream" in caught.value.message
    assert len(fake.requests) == 1


async def test_error_event_in_the_stream_raises_after_the_partial_deltas(
    fake: FakeUpstream, make_backend: MakeBackend
) -> None:
    seen: list[Delta] = []
    with pytest.raises(UpstreamError) as caught:
        async for delta in make_backend("stream-error").generate(HELLO, GenerationParams()):
            seen.append(delta)

    assert [d.content for d in seen] == ["You "]
    assert caught.value.code == "data_inspection_failed"
    assert "inappropriate content" in caught.value.message
    assert len(fake.requests) == 1


async def test_read_timeout_between_chunks(fake: FakeUpstream, make_backend: MakeBackend) -> None:
    seen: list[Delta] = []
    with pytest.raises(UpstreamError) as caught:
        async for delta in make_backend("stall-5", read_timeout=0.3).generate(HELLO, GenerationParams()):
            seen.append(delta)

    assert [d.content for d in seen] == ["You "]  # relayed at once, not held back by the stall
    assert caught.value.code == "timeout"
    assert len(fake.requests) == 1


async def test_closing_the_generator_early_disconnects_the_upstream(
    fake: FakeUpstream, make_backend: MakeBackend
) -> None:
    stream = make_backend("stall-30").generate(HELLO, GenerationParams())
    first = await anext(stream)
    assert first.content == "You "

    await stream.aclose()

    await eventually(lambda: fake.disconnects == [0])


async def test_cancelling_the_consumer_disconnects_the_upstream(fake: FakeUpstream, make_backend: MakeBackend) -> None:
    started = asyncio.Event()

    async def consume() -> None:
        async for _ in make_backend("stall-30").generate(HELLO, GenerationParams()):
            started.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(started.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    await eventually(lambda: fake.disconnects == [0])


async def test_connections_are_reused_after_complete_streams(fake: FakeUpstream, make_backend: MakeBackend) -> None:
    backend = make_backend()
    for _ in range(3):
        await collect(backend)

    assert len(fake.requests) == 3
    assert len({r.client for r in fake.requests}) == 1  # one keep-alive connection, back in the pool each time
    assert fake.disconnects == []


async def test_a_body_that_ends_after_done_still_leaves_the_connection_reusable(
    fake: FakeUpstream, make_backend: MakeBackend
) -> None:
    backend = make_backend("late-end-0.1")
    for _ in range(3):
        _, done = await collect(backend)
        assert done.content and done.usage is not None

    assert len({r.client for r in fake.requests}) == 1  # the end of each body was read after [DONE]
    assert fake.disconnects == []


async def test_complete_makes_one_non_streamed_call_with_the_same_answer(
    fake: FakeUpstream, make_backend: MakeBackend
) -> None:
    backend = make_backend()
    _, streamed = await collect(backend, params=GenerationParams(enable_thinking=True))
    whole = await backend.complete(HELLO, GenerationParams(enable_thinking=True))

    assert (whole.content, whole.reasoning) == (streamed.content, streamed.reasoning)
    assert whole.finish_reason == "stop"
    assert whole.usage.prompt_tokens == streamed.usage.prompt_tokens > 0
    assert whole.usage.completion_tokens > 0
    request = fake.requests[-1]
    assert request.body.get("stream") in (False, None)
    assert "stream_options" not in request.body


async def test_complete_maps_errors_and_retries_like_generate(fake: FakeUpstream, make_backend: MakeBackend) -> None:
    assert (await make_backend("rate-limit-1").complete(HELLO, GenerationParams())).content
    assert len(fake.requests) == 2  # one 429, then the answer
    with pytest.raises(ContextTooLong, match="Range of input length"):
        await make_backend("context-too-long").complete(HELLO, GenerationParams())


async def test_a_client_closes_the_upstream_connections_it_opened(fake: FakeUpstream, tmp_path: Path) -> None:
    alias = ModelAlias(backend="upstream", model="qwen-plus", base_url=fake.base_url, api_key=KEY)
    settings = Settings(data_dir=tmp_path, db=str(tmp_path / "chat.db"), model="alias", models={"alias": alias})
    async with AsyncClient(settings) as client:
        conversation = await client.create()
        reply = await conversation.send("hello there")
        assert reply.status == "completed" and reply.usage.prompt_tokens > 0
        backend = client.backend()
        assert isinstance(backend, UpstreamBackend) and backend.connected
    assert not backend.connected  # no "Unclosed client session" left for the garbage collector
