"""What the server side of ``protocols.openai_chat`` writes, its client side reads back.

The encoders (``ChunkEncoder``, ``completion_to_response``, ``usage_out``, ``error_to_wire``,
``stream_error``) and the parsers of ``protocols/openai_chat/client.py`` (``ChunkReader``,
``parse_chunk``, ``parse_completion``, ``parse_usage``, ``parse_error``) are inverses, up to what
the wire cannot say: a delta with both reasoning and text is two chunks, a tool call's id and name
come once, ``cancelled``/``error``/no finish reason are ``stop`` (or ``tool_calls``), usage is
only sent when asked for. Properties over generated streams (text, reasoning, tool calls, finish
reasons, usage), cut into network reads at arbitrary bytes.
"""

from __future__ import annotations

import itertools
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from multiturn.errors import ContextTooLong, RateLimited, UpstreamError
from multiturn.protocols.openai_chat.client import (
    FINISH,
    ChunkReader,
    parse_chunk,
    parse_completion,
    parse_error,
    parse_usage,
)
from multiturn.protocols.openai_chat.errors import error_to_wire, stream_error
from multiturn.protocols.openai_chat.stream import ChunkEncoder, finish_reason_wire, usage_out
from multiturn.protocols.openai_chat.translate import completion_to_response
from multiturn.protocols.sse import SSEParser
from multiturn.types import Completion, Delta, FinishReason, ToolCall, ToolCallDelta, Usage

text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
some_text = text.filter(bool)
counts = st.integers(0, 2**31 - 1)
usages = st.builds(Usage, counts, counts, counts, counts)
finishes: st.SearchStrategy[FinishReason | None] = st.sampled_from(
    [None, "stop", "length", "tool_calls", "content_filter", "cancelled", "error"]
)
names = st.from_regex(r"[a-z_][a-z0-9_]{0,12}", fullmatch=True)


@st.composite
def streams(draw: st.DrawFn) -> list[Delta]:
    """Deltas as a backend yields them: text, reasoning, both, and tool calls whose id and name
    come in the first piece of their index."""
    deltas: list[Delta] = []
    started: set[int] = set()
    for _ in range(draw(st.integers(0, 8))):
        kind = draw(st.sampled_from(["text", "reasoning", "both", "call", "call+text"]))
        if kind in ("call", "call+text"):
            pieces = []
            for index in draw(st.lists(st.integers(0, 2), min_size=1, max_size=2, unique=True)):
                first = index not in started
                started.add(index)
                pieces.append(
                    ToolCallDelta(
                        index=index,
                        id=draw(names) if first else None,
                        name=draw(names) if first else None,
                        arguments=draw(text),
                    )
                )
            content = draw(text) if kind == "call+text" else ""
            deltas.append(Delta(content=content, tool_calls=tuple(pieces)))
        else:
            deltas.append(
                Delta(
                    content=draw(some_text) if kind != "reasoning" else "",
                    reasoning=draw(some_text) if kind != "text" else "",
                )
            )
    return deltas


def expected_deltas(deltas: list[Delta]) -> list[Delta]:
    """What the wire can carry of each delta: its reasoning chunk, then its text or tool chunk."""
    out: list[Delta] = []
    for d in deltas:
        if d.reasoning:
            out.append(Delta(reasoning=d.reasoning))
        if d.tool_calls:
            out.append(Delta(content=d.content, tool_calls=d.tool_calls))
        elif d.content:
            out.append(Delta(content=d.content))
    return out


def read_back(body: bytes, cuts: list[int]) -> list[Delta]:
    """The deltas a client reads from ``body`` arriving in pieces cut at ``cuts``."""
    parser, reader = SSEParser(), ChunkReader()
    deltas: list[Delta] = []
    done = False
    bounds = [0, *sorted(c % (len(body) + 1) for c in cuts), len(body)]
    for start, end in itertools.pairwise(bounds):
        for event in parser.feed(body[start:end]):
            if event.data == "[DONE]":
                done = True
                continue
            assert not done, "nothing may follow [DONE]"
            deltas += reader.feed(event.event or "", event.data)
    assert done
    final = reader.final(done)
    return deltas + ([final] if final is not None else [])


@given(
    deltas=streams(),
    finish=finishes,
    usage=st.none() | usages,
    include_usage=st.booleans(),
    thinking=st.booleans(),
    cuts=st.lists(st.integers(0, 10_000), max_size=6),
)
def test_a_stream_reads_back_as_its_deltas(
    deltas: list[Delta],
    finish: FinishReason | None,
    usage: Usage | None,
    include_usage: bool,
    thinking: bool,
    cuts: list[int],
) -> None:
    encoder = ChunkEncoder(request_id="r1", model="m", created=1, include_usage=include_usage, thinking=thinking)
    body = encoder.start() + b"".join(encoder.delta(d) for d in deltas) + encoder.finish(finish, usage)

    called = any(d.tool_calls for d in deltas)
    reason = FINISH[finish_reason_wire(finish, tool_calls=called)]
    last = Delta(finish_reason=reason, usage=(usage or Usage()) if include_usage else None)
    assert read_back(body, cuts) == [*expected_deltas(deltas), last]


@given(
    content=text,
    reasoning=text,
    calls=st.lists(st.builds(ToolCall, id=names, name=names, arguments=text), max_size=3),
    finish=finishes,
    usage=usages,
)
def test_a_completion_reads_back(
    content: str, reasoning: str, calls: list[ToolCall], finish: FinishReason | None, usage: Usage
) -> None:
    completion = Completion(content, reasoning, tuple(calls), finish, usage)
    body = completion_to_response(completion, request_id="r1", model="m", created=1)

    reason = FINISH[finish_reason_wire(finish, tool_calls=bool(calls))]
    assert parse_completion(body) == Completion(content, reasoning, tuple(calls), reason, usage)


@given(usage=usages)
def test_usage_reads_back(usage: Usage) -> None:
    wire = usage_out(
        prompt=usage.prompt_tokens,
        completion=usage.completion_tokens,
        cached=usage.cached_tokens,
        reasoning=usage.reasoning_tokens,
    )
    assert parse_usage(wire) == usage


messages = st.from_regex(r"[A-Za-z][A-Za-z ,.]{0,40}", fullmatch=True)
codes = st.from_regex(r"[a-z_]{1,20}", fullmatch=True)


@given(message=messages, status=st.sampled_from([400, 404, 408, 409, 413, 422]), code=codes)
def test_an_upstream_client_error_reads_back(message: str, status: int, code: str) -> None:
    status_out, body, headers = error_to_wire(UpstreamError(message, status=status, code=code), "r1")
    read = parse_error(status_out, body, headers)

    assert type(read) is UpstreamError
    assert (read.status, read.code, read.message) == (status, code, f"upstream error {status}: {message}")


@given(message=messages, after=st.none() | st.floats(0.001, 3600))
def test_a_rate_limit_reads_back_with_its_wait(message: str, after: float | None) -> None:
    status, body, headers = error_to_wire(RateLimited(message, retry_after=after), "r1")
    read = parse_error(status, body, headers)

    assert isinstance(read, RateLimited) and read.message == f"upstream rate limit: {message}"
    assert read.retry_after == (pytest.approx(after, abs=0.0005) if after is not None else 1.0)


@given(message=messages, limit=st.integers(1, 2**31 - 1))
def test_a_context_overflow_reads_back_with_its_limit(message: str, limit: int) -> None:
    status, body, headers = error_to_wire(ContextTooLong(message, prompt_tokens=limit + 7, limit=limit), "r1")
    read = parse_error(status, body, headers)

    assert isinstance(read, ContextTooLong) and read.limit == limit and message in read.message


@pytest.mark.parametrize(
    "error",
    [
        UpstreamError("Output data may contain inappropriate content.", status=400, code="data_inspection_failed"),
        UpstreamError("the upstream broke", code="upstream_error"),
        RateLimited("slow down", retry_after=2),
    ],
)
def test_an_in_stream_error_reads_back(error: Exception) -> None:
    (event,) = SSEParser().feed(stream_error(error))
    with pytest.raises(UpstreamError) as raised:
        parse_chunk(event.data, event.event or "")
    _, body, _ = error_to_wire(error, "r1")
    detail: dict[str, Any] = orjson.loads(body)["error"]
    assert raised.value.code == detail["code"]
    assert raised.value.message == f"upstream error mid-stream: {detail['message']}"
