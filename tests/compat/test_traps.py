"""One test (or a few) per trap of PROTOCOL.md §4 "Traps that break real clients", 1 to 12,
against the real ``multiturn serve`` processes: raw HTTP where the bytes matter, the official
SDKs where their behaviour is the judge."""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable
from typing import Any

import dashscope
import openai
import pytest

from support.fake_upstream import FakeUpstream, Recorded
from support.serve import (
    CONTEXT_TOO_LONG,
    GATEWAY_KEY,
    RATE_LIMITED,
    RESET,
    STALL_LONG,
    STALL_SHORT,
    STREAM_ERROR,
    TEXT_ONLY,
    Server,
)

from . import wire
from .calls import (
    ANSWER,
    HI,
    HI_NATIVE,
    MULTIMODAL_PATH,
    REASONING,
    SSE,
    TEXT_PATH,
    WEATHER_TOOL,
    compat_stream,
    native_stream,
    openai_client,
    sdk,
)
from .wire import poll


def check_chunk_texts(chunks: list[dict[str, Any]]) -> None:
    """Trap 2: every chunk that has a choice carries a string ``content`` or a non-null
    ``reasoning_content`` (so the guide's loop never adds ``None``)."""
    for chunk in chunks:
        for choice in chunk["choices"]:
            delta = choice["delta"]
            assert isinstance(delta.get("content"), str) or delta.get("reasoning_content") is not None, chunk


# --- 1. model_dump() round trip ---------------------------------------------------------------------

DUMPED_NULLS = {"refusal": None, "annotations": None, "audio": None, "function_call": None, "tool_calls": None}


def test_trap01_model_dump_round_trip_with_reasoning_is_accepted(gateway: Server) -> None:
    client = sdk(gateway)
    messages: list[Any] = [{"role": "user", "content": "first question"}]
    first = client.chat.completions.create(model="qwen-plus", messages=messages, extra_body={"enable_thinking": True})
    dumped = first.choices[0].message.model_dump()
    assert dumped["reasoning_content"] == "The user said: first question. I will answer."
    assert DUMPED_NULLS.items() <= dumped.items()

    messages += [dumped, {"role": "user", "content": "second question"}]
    second = client.chat.completions.create(model="qwen-plus", messages=messages)

    assert second.choices[0].message.content == "You said: second question"


@pytest.mark.model
def test_trap01_model_dump_nulls_accepted_by_the_embedded_model(embedded: Server) -> None:
    dumped = {"role": "assistant", "content": "Hello.", "reasoning_content": "thought", **DUMPED_NULLS}
    body = {"model": "qwen-plus", "max_tokens": 1, "messages": [*HI, dumped, {"role": "user", "content": "Bye"}]}
    reply = wire.post(f"{embedded.compat}/chat/completions", body)

    assert reply.status == 200, reply.body
    assert reply.json()["choices"][0]["message"]["role"] == "assistant"


def test_trap01_native_message_round_trip_with_reasoning_is_accepted(gateway: Server) -> None:
    dashscope.base_http_api_url = gateway.native
    messages: list[Any] = [{"role": "user", "content": "first question"}]
    chunks = list(
        dashscope.Generation.call(
            api_key=GATEWAY_KEY,
            model="qwen-plus",
            messages=messages,
            enable_thinking=True,
            result_format="message",
            stream=True,
            incremental_output=False,  # the SDK merges: the last chunk is the whole message
        )
    )
    message = chunks[-1].output.choices[0].message
    assert message.reasoning_content == "The user said: first question. I will answer."
    messages += [message, {"role": "user", "content": "second question"}]

    response = dashscope.Generation.call(
        api_key=GATEWAY_KEY, model="qwen-plus", messages=messages, result_format="message"
    )

    assert response.status_code == 200, response
    assert response.output.choices[0].message.content == "You said: second question"


# --- 2. every chunk with a choice has text -----------------------------------------------------------


def test_trap02_thinking_chunks_always_carry_text(gateway: Server) -> None:
    _, chunks, done = compat_stream(gateway, {"model": "qwen-plus", "messages": HI, "enable_thinking": True})

    assert done
    check_chunk_texts(chunks)
    first, *middle, last = chunks
    assert first["choices"][0]["delta"]["role"] == "assistant"
    assert last["choices"][0]["delta"]["content"] == "" and last["choices"][0]["finish_reason"] == "stop"
    assert all(c["choices"][0]["finish_reason"] is None for c in [first, *middle])
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert "".join(d["reasoning_content"] or "" for d in deltas) == REASONING
    assert "".join(d["content"] or "" for d in deltas) == ANSWER
    assert len({c["id"] for c in chunks}) == 1 and len({c["created"] for c in chunks}) == 1
    assert all(c["object"] == "chat.completion.chunk" and c["choices"][0]["index"] == 0 for c in chunks)


def test_trap02_plain_and_tool_chunks_always_carry_text(gateway: Server) -> None:
    for extra in ({}, {"tools": [WEATHER_TOOL]}):
        _, chunks, done = compat_stream(gateway, {"model": "qwen-plus", "messages": HI, **extra})
        assert done
        check_chunk_texts(chunks)
        for chunk in chunks:
            assert chunk["choices"][0]["delta"] != {}


@pytest.mark.model
def test_trap02_embedded_chunks_always_carry_text(embedded: Server) -> None:
    _, chunks, done = compat_stream(embedded, {"model": "qwen-plus", "messages": HI, "max_tokens": 4})

    assert done
    check_chunk_texts(chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")


def test_trap02_the_guide_loop_survives_every_chunk_via_sdk(gateway: Server) -> None:
    stream = sdk(gateway).chat.completions.create(
        model="qwen-plus", messages=HI, stream=True, extra_body={"enable_thinking": True}
    )
    reasoning = answer = ""
    for chunk in stream:
        delta = chunk.choices[0].delta
        if getattr(delta, "reasoning_content", None) is not None:
            reasoning += delta.reasoning_content
        else:
            answer += delta.content  # a None here is the guide's TypeError
    assert (reasoning, answer) == (REASONING, ANSWER)


# --- 3. include_usage ---------------------------------------------------------------------------------


@pytest.mark.parametrize("options", [None, {"include_usage": False}, {"include_usage": True}])
def test_trap03_usage_chunk_only_when_asked(gateway: Server, options: dict[str, bool] | None) -> None:
    body: dict[str, Any] = {"model": "qwen-plus", "messages": HI}
    if options is not None:
        body["stream_options"] = options
    _, chunks, done = compat_stream(gateway, body)

    assert done
    if options and options["include_usage"]:
        *content, usage = chunks
        assert usage["choices"] == []
        u = usage["usage"]
        assert u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"] > 0
        assert isinstance(u["prompt_tokens_details"]["cached_tokens"], int)
    else:
        content = chunks
    assert content and all(c["choices"] and c.get("usage") is None for c in content)


@pytest.mark.model
def test_trap03_embedded_usage_chunk_only_when_asked(embedded: Server) -> None:
    body = {"model": "qwen-plus", "messages": HI, "max_tokens": 2, "stream_options": {"include_usage": True}}
    _, chunks, done = compat_stream(embedded, body)

    assert done
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] <= 2
    assert all(c["choices"] and c["usage"] is None for c in chunks[:-1])


def test_trap03_sdk_sees_the_usage_chunk_last(gateway: Server) -> None:
    chunks = list(
        sdk(gateway).chat.completions.create(
            model="qwen-plus", messages=HI, stream=True, stream_options={"include_usage": True}
        )
    )
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.prompt_tokens_details is not None
    assert all(c.choices for c in chunks[:-1])


# --- 4. OpenAI error shape, status, retry headers ----------------------------------------------------

ERROR_CASES = {
    "400-bad-temperature": (
        {"model": "qwen-plus", "messages": HI, "temperature": 2.5},
        GATEWAY_KEY,
        400,
        openai.BadRequestError,
        "Temperature should be in [0.0, 2.0)",
    ),
    "401-wrong-key": (
        {"model": "qwen-plus", "messages": HI},
        "sk-wrong",
        401,
        openai.AuthenticationError,
        "Incorrect API key provided.",
    ),
    "404-unknown-model": (
        {"model": "no-such-model", "messages": HI},
        GATEWAY_KEY,
        404,
        openai.NotFoundError,
        "Model not exist",
    ),
    "429-rate-limited": (
        {"model": RATE_LIMITED, "messages": HI},
        GATEWAY_KEY,
        429,
        openai.RateLimitError,
        "You have exceeded your current request limit.",
    ),
}


@pytest.mark.parametrize("case", list(ERROR_CASES))
def test_trap04_openai_errors_are_json_with_status_and_retry_headers(gateway: Server, case: str) -> None:
    body, key, status, error_class, text = ERROR_CASES[case]
    reply = wire.post(f"{gateway.compat}/chat/completions", body, key=key)

    assert reply.status == status
    assert reply.content_type.startswith("application/json")
    error = reply.json()["error"]
    assert set(error) >= {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and text in error["message"]
    assert isinstance(error["type"], str) and isinstance(error["code"], str)
    assert reply.json()["request_id"] == reply.headers["x-request-id"]
    if status == 429:
        assert float(reply.headers["retry-after"]) >= 0
        assert reply.headers.get("x-should-retry") != "false"
    else:
        assert reply.headers["x-should-retry"] == "false"

    client = openai_client(gateway.compat, key, max_retries=0)
    with pytest.raises(error_class) as caught:
        client.chat.completions.create(**body)
    assert caught.value.status_code == status
    assert text in caught.value.message and caught.value.code == error["code"]
    assert caught.value.request_id and caught.value.request_id != reply.headers["x-request-id"]  # a new request


# --- 5. DashScope SSE framing and in-stream errors -----------------------------------------------------


def check_native_framing(stream: wire.Stream, events: list[tuple[wire.Event, dict[str, Any]]]) -> None:
    assert stream.content_type.startswith("text/event-stream")
    assert events
    rid = stream.headers["x-request-id"]
    for n, (event, data) in enumerate(events, start=1):
        assert event.lines[:3] == [f"id:{n}", "event:result", ":HTTP_STATUS/200"], event.lines
        assert len(event.lines) == 4 and event.lines[3].startswith("data:{"), event.lines  # one compact line
        assert data["request_id"] == rid
        assert {"input_tokens", "output_tokens", "total_tokens"} <= data["usage"].keys()
        assert "[DONE]" not in event.lines[3]
    reasons = [data["output"]["choices"][0]["finish_reason"] for _, data in events]
    assert reasons[:-1] == ["null"] * (len(reasons) - 1)
    assert reasons[-1] in ("stop", "length")
    for _, data in events:
        assert data["output"]["choices"][0]["message"]["role"] == "assistant"


def test_trap05_native_sse_framing_thinking(gateway: Server) -> None:
    params = {"enable_thinking": True, "incremental_output": True, "result_format": "message"}
    stream, events = native_stream(gateway, {"model": "qwen-plus", "input": HI_NATIVE, "parameters": params})

    check_native_framing(stream, events)
    messages = [data["output"]["choices"][0]["message"] for _, data in events]
    assert all(isinstance(m["content"], str) and isinstance(m["reasoning_content"], str) for m in messages)
    assert "".join(m["reasoning_content"] for m in messages) == REASONING
    assert "".join(m["content"] for m in messages) == ANSWER
    output_tokens = [data["usage"]["output_tokens"] for _, data in events]
    assert output_tokens == sorted(output_tokens)


@pytest.mark.model
def test_trap05_native_sse_framing_embedded(embedded: Server) -> None:
    body = {"model": "qwen-plus", "input": HI_NATIVE, "parameters": {"result_format": "message", "max_tokens": 3}}
    stream, events = native_stream(embedded, body)

    check_native_framing(stream, events)


@pytest.mark.model
def test_trap05_native_stream_input_tokens_constant(embedded: Server) -> None:
    body = {"model": "qwen-plus", "input": HI_NATIVE, "parameters": {"incremental_output": True, "max_tokens": 3}}
    _, events = native_stream(embedded, body)

    inputs = {data["usage"]["input_tokens"] for _, data in events}
    assert len(inputs) == 1 and inputs.pop() > 0, inputs


@pytest.mark.parametrize("alias", [STREAM_ERROR, RESET])
def test_trap05_native_error_mid_stream_is_an_error_event_with_status(gateway: Server, alias: str) -> None:
    body = {"model": alias, "input": HI_NATIVE, "parameters": {"incremental_output": True}}
    stream, events = native_stream(gateway, body)

    *results, (error, data) = events
    assert results and all(e.field("event") == ["result"] for e, _ in results)
    assert error.lines[0] == f"id:{len(events)}"
    assert error.field("event") == ["error"]  # spelled exactly: no space
    (status,) = error.field("status")
    assert int(status) >= 400
    assert set(data) == {"code", "message", "request_id"} and data["request_id"] == stream.headers["x-request-id"]

    dashscope.base_http_api_url = gateway.native
    responses = list(
        dashscope.Generation.call(
            api_key=GATEWAY_KEY, model=alias, messages=HI, stream=True, incremental_output=True, result_format="message"
        )
    )
    assert all(r.status_code == 200 for r in responses[:-1]) and len(responses) >= 2
    assert responses[-1].status_code == int(status)
    assert responses[-1].code == data["code"]  # a generic upstream failure names its own request id:
    assert responses[-1].message.split(" (request ")[0] == data["message"].split(" (request ")[0]


def test_trap05_native_error_mid_stream_keeps_the_upstream_code(gateway: Server) -> None:
    body = {"model": STREAM_ERROR, "input": HI_NATIVE, "parameters": {"incremental_output": True}}
    _, events = native_stream(gateway, body)

    _error, data = events[-1]
    assert data["code"] == "DataInspectionFailed", data
    assert "Output data may contain inappropriate content." in data["message"]


# --- 6. incremental_output -------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["message", "text"])
@pytest.mark.parametrize("incremental", [True, False, None])
def test_trap06_incremental_output(gateway: Server, fmt: str, incremental: bool | None) -> None:
    params: dict[str, Any] = {"result_format": fmt}
    if incremental is not None:
        params["incremental_output"] = incremental
    _, events = native_stream(gateway, {"model": "qwen-plus", "input": HI_NATIVE, "parameters": params})

    if fmt == "text":
        texts = [data["output"]["text"] for _, data in events]
        reasons = [data["output"]["finish_reason"] for _, data in events]
    else:
        texts = [data["output"]["choices"][0]["message"]["content"] for _, data in events]
        reasons = [data["output"]["choices"][0]["finish_reason"] for _, data in events]
    assert reasons[-1] == "stop" and set(reasons[:-1]) == {"null"}
    if incremental:
        assert "".join(texts) == ANSWER and len(texts) > 2
    else:  # false, or absent (qwen-plus's documented default): the text so far in every event
        assert texts[-1] == ANSWER
        assert all(b.startswith(a) for a, b in itertools.pairwise(texts))
        assert len(set(texts)) > 2


def test_trap06_sdk_merges_when_asked_for_cumulative_output(gateway: Server) -> None:
    dashscope.base_http_api_url = gateway.native
    texts = [
        r.output.choices[0].message.content
        for r in dashscope.Generation.call(
            api_key=GATEWAY_KEY,
            model="qwen-plus",
            messages=HI,
            stream=True,
            incremental_output=False,
            result_format="message",
        )
    ]
    assert texts[-1] == ANSWER  # no doubled text: the server answered the incremental request incrementally
    assert all(b.startswith(a) for a, b in itertools.pairwise(texts))


# --- 7. multimodal content is a list of {"text"} --------------------------------------------------------

IMAGE_MESSAGES = {
    "messages": [{"role": "user", "content": [{"image": "https://example.com/a.png"}, {"text": "hi there"}]}]
}


def test_trap07_multimodal_answers_with_a_list_text_with_a_string(gateway: Server) -> None:
    reply = wire.post(
        f"{gateway.native}{MULTIMODAL_PATH}", {"model": "qwen3-vl-plus", "input": IMAGE_MESSAGES}, key=GATEWAY_KEY
    )
    assert reply.status == 200, reply.body
    assert reply.json()["output"]["choices"][0]["message"]["content"] == [{"text": f"I see 1 image. {ANSWER}"}]

    text = wire.post(
        f"{gateway.native}{TEXT_PATH}",
        {"model": "qwen-plus", "input": HI_NATIVE, "parameters": {"result_format": "message"}},
        key=GATEWAY_KEY,
    )
    assert text.status == 200 and text.json()["output"]["choices"][0]["message"]["content"] == ANSWER


def test_trap07_multimodal_stream_content_lists(gateway: Server) -> None:
    params = {"incremental_output": True, "enable_thinking": True}
    _, events = native_stream(
        gateway, {"model": "qwen3-vl-plus", "input": IMAGE_MESSAGES, "parameters": params}, MULTIMODAL_PATH
    )

    contents = [data["output"]["choices"][0]["message"]["content"] for _, data in events]
    assert all(isinstance(c, list) and all(set(item) == {"text"} for item in c) for c in contents), contents
    assert "".join(item["text"] for c in contents for item in c) == f"I see 1 image. {ANSWER}"
    thinking = [d for _, d in events if d["output"]["choices"][0]["message"].get("reasoning_content")]
    assert thinking and all(d["output"]["choices"][0]["message"]["content"] == [] for d in thinking)


# --- 8. unknown fields are ignored -------------------------------------------------------------------------


def test_trap08_unknown_compat_fields_are_tolerated(gateway: Server) -> None:
    body = {
        "model": "qwen-plus",
        "messages": [
            {"role": "system", "content": "Be brief.", "x_note": 1},
            {"role": "user", "content": [{"type": "text", "text": "hi there", "cache_control": {"type": "ephemeral"}}]},
        ],
        "user_agent": "compat-test",
        "metadata": {"a": "b"},
        "store": False,
        "prompt_cache_key": "k",
        "reasoning_effort": "low",
        "vl_high_resolution_images": True,
        "enable_search": False,
        "some_future_field": {"nested": [1, 2]},
    }
    reply = wire.post(f"{gateway.compat}/chat/completions", body, key=GATEWAY_KEY)
    assert reply.status == 200, reply.body
    assert reply.json()["choices"][0]["message"]["content"] == ANSWER

    completion = sdk(gateway).chat.completions.create(
        model="qwen-plus", messages=HI, extra_body={"some_future_field": 1, "enable_search": False}
    )
    assert completion.choices[0].message.content == ANSWER


def test_trap08_unknown_native_fields_are_tolerated(gateway: Server) -> None:
    body = {
        "model": "qwen-plus",
        "input": {"messages": [{"role": "user", "content": "hi there", "x_note": 1}], "x_more": True},
        "parameters": {"result_format": "message", "some_future_parameter": 1, "enable_search": False},
        "resources": {},
        "x_top_level": "tolerated",
    }
    reply = wire.post(f"{gateway.native}{TEXT_PATH}", body, key=GATEWAY_KEY)
    assert reply.status == 200, reply.body

    dashscope.base_http_api_url = gateway.native
    response = dashscope.Generation.call(
        api_key=GATEWAY_KEY, model="qwen-plus", messages=HI, result_format="message", some_future_parameter=1
    )
    assert response.status_code == 200 and response.output.choices[0].message.content == ANSWER


# --- 9. streaming really streams ----------------------------------------------------------------------------


def _first_text_at(lines: list[wire.Line], marker: str) -> float:
    return next(line.at for line in lines if marker in line.text)


def test_trap09_compat_stream_is_not_buffered(gateway: Server) -> None:
    stream, chunks, done = compat_stream(
        gateway, {"model": STALL_SHORT, "messages": HI}, **{"Accept-Encoding": "gzip, deflate"}
    )

    assert done and "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]) == ANSWER
    assert "content-encoding" not in stream.headers
    first = _first_text_at(stream.seen, '"content":"You "')
    end = stream.seen[-1].at
    # The fake sends its first content chunk at once, then waits 0.4 s before each further event.
    assert first - stream.started < 1.0, first - stream.started
    assert end - first >= 1.0, (first - stream.started, end - stream.started)


def test_trap09_native_stream_is_not_buffered(gateway: Server) -> None:
    stream = wire.open_stream(
        f"{gateway.native}{TEXT_PATH}",
        {"model": STALL_SHORT, "input": HI_NATIVE, "parameters": {"incremental_output": True}},
        {**SSE, "Accept-Encoding": "gzip"},
        GATEWAY_KEY,
    )
    with stream:
        lines = stream.read_all()
    assert "content-encoding" not in stream.headers
    first = _first_text_at(lines, '"You "')
    assert first - stream.started < 1.0
    assert lines[-1].at - first >= 0.8


# --- 10. a client that leaves cancels the upstream request -----------------------------------------------------


@pytest.mark.parametrize("protocol", ["compat", "native"])
def test_trap10_disconnect_cancels_the_upstream_request(
    gateway: Server, fake: FakeUpstream, fake_since: Callable[[], list[Recorded]], protocol: str
) -> None:
    if protocol == "compat":
        stream = wire.open_stream(
            f"{gateway.compat}/chat/completions", {"model": STALL_LONG, "messages": HI, "stream": True}, key=GATEWAY_KEY
        )
    else:
        stream = wire.open_stream(
            f"{gateway.native}{TEXT_PATH}",
            {"model": STALL_LONG, "input": HI_NATIVE, "parameters": {"incremental_output": True}},
            SSE,
            GATEWAY_KEY,
        )
    with stream:
        assert stream.status == 200
        for line in stream.lines():
            if "You " in line.text:
                break
    # The client is gone while the fake upstream stalls (5 s before its next chunk).
    (request,) = fake_since()
    index = fake.requests.index(request)
    assert poll(lambda: index in fake.disconnects, within=3.0), "the upstream request was not cancelled"


def test_trap10_sdk_close_cancels_the_upstream_request(
    gateway: Server, fake: FakeUpstream, fake_since: Callable[[], list[Recorded]]
) -> None:
    stream = sdk(gateway).chat.completions.create(model=STALL_LONG, messages=HI, stream=True)
    for chunk in stream:
        if chunk.choices[0].delta.content:
            break
    stream.close()
    (request,) = fake_since()
    index = fake.requests.index(request)
    assert poll(lambda: index in fake.disconnects, within=3.0), "the upstream request was not cancelled"


# --- 11. tool-call deltas carry id and name once ----------------------------------------------------------------


def test_trap11_tool_call_id_and_name_appear_once(gateway: Server) -> None:
    _, chunks, _ = compat_stream(gateway, {"model": "qwen-plus", "messages": HI, "tools": [WEATHER_TOOL]})

    pieces = [call for c in chunks if c["choices"] for call in c["choices"][0]["delta"].get("tool_calls") or []]
    assert len(pieces) >= 2
    first, *rest = pieces
    assert first["index"] == 0 and first["type"] == "function"
    assert re.fullmatch(r"call_\w+", first["id"]) and first["function"]["name"] == "get_weather"
    assert all(not p.get("id") and not p.get("function", {}).get("name") for p in rest), rest
    assert json.loads("".join(p["function"]["arguments"] for p in pieces)) == {"text": "hi there"}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_trap11_stream_helper_accumulates_tool_calls_cleanly(gateway: Server, fake: FakeUpstream) -> None:
    finals = []
    for client in (sdk(gateway), openai_client(fake.base_url, "sk-direct")):
        with client.chat.completions.stream(model="qwen-plus", messages=HI, tools=[WEATHER_TOOL]) as stream:
            for _ in stream:
                pass
            finals.append(stream.get_final_completion())
    for final in finals:
        (call,) = final.choices[0].message.tool_calls
        assert re.fullmatch(r"call_[0-9a-f]{8}", call.id), call.id  # not "call_…call_…"
        assert call.function.name == "get_weather"
        assert json.loads(call.function.arguments) == {"text": "hi there"}
        assert final.choices[0].finish_reason == "tool_calls"


def test_trap11_native_tool_call_name_once(gateway: Server) -> None:
    params = {"tools": [WEATHER_TOOL], "incremental_output": True, "result_format": "message"}
    _, events = native_stream(gateway, {"model": "qwen-plus", "input": HI_NATIVE, "parameters": params})

    pieces = [c for _, d in events for c in d["output"]["choices"][0]["message"].get("tool_calls") or []]
    assert [p["function"].get("name") for p in pieces if p["function"].get("name")] == ["get_weather"]
    assert json.loads("".join(p["function"]["arguments"] for p in pieces)) == {"text": "hi there"}
    assert events[-1][1]["output"]["choices"][0]["finish_reason"] == "tool_calls"


# --- 12. validation before the first byte ----------------------------------------------------------------------

COMPAT_BAD_STREAMS = {
    "bad-temperature": ({"model": "qwen-plus", "messages": HI, "temperature": 9}, 400),
    "empty-messages": ({"model": "qwen-plus", "messages": []}, 400),
    "last-message-assistant": ({"model": "qwen-plus", "messages": [{"role": "assistant", "content": "x"}]}, 400),
    "unknown-model": ({"model": "no-such-model", "messages": HI}, 404),
    "image-to-text-only": (
        {
            "model": TEXT_ONLY,
            "messages": [
                {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://e.com/a.png"}}]}
            ],
        },
        400,
    ),
    "upstream-context-too-long": ({"model": CONTEXT_TOO_LONG, "messages": HI}, 400),
}


@pytest.mark.parametrize("case", list(COMPAT_BAD_STREAMS))
def test_trap12_compat_bad_stream_request_gets_http_error_json(gateway: Server, case: str) -> None:
    body, status = COMPAT_BAD_STREAMS[case]
    reply = wire.post(f"{gateway.compat}/chat/completions", {**body, "stream": True}, key=GATEWAY_KEY)

    assert reply.status == status, reply.body
    assert reply.content_type.startswith("application/json")
    assert set(reply.json()["error"]) >= {"message", "type", "code"}

    client = sdk(gateway, max_retries=0)
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(**body, stream=True)
    assert caught.value.status_code == status


def test_trap12_compat_malformed_json_stream(gateway: Server) -> None:
    reply = wire.post(f"{gateway.compat}/chat/completions", b'{"model": "qwen-plus", "stream": true,', key=GATEWAY_KEY)
    assert reply.status == 400 and reply.content_type.startswith("application/json")
    assert reply.json()["error"]["message"]


NATIVE_BAD_STREAMS = {
    "bad-top-p": ({"model": "qwen-plus", "input": HI_NATIVE, "parameters": {"top_p": 5}}, 400, "InvalidParameter"),
    "text-format-with-thinking": (
        {"model": "qwen-plus", "input": HI_NATIVE, "parameters": {"result_format": "text", "enable_thinking": True}},
        400,
        "InvalidParameter",
    ),
    "no-model": ({"input": HI_NATIVE}, 400, "BadRequest.EmptyModel"),
    "unknown-model": ({"model": "no-such-model", "input": HI_NATIVE}, 400, "InvalidParameter"),
    "upstream-context-too-long": ({"model": CONTEXT_TOO_LONG, "input": HI_NATIVE}, 400, "InvalidParameter"),
    "wrong-key": ({"model": "qwen-plus", "input": HI_NATIVE}, 401, "InvalidApiKey"),
}


@pytest.mark.parametrize("case", list(NATIVE_BAD_STREAMS))
def test_trap12_native_bad_stream_request_gets_http_error_json(gateway: Server, case: str) -> None:
    body, status, code = NATIVE_BAD_STREAMS[case]
    key = "sk-wrong" if case == "wrong-key" else GATEWAY_KEY
    reply = wire.post(f"{gateway.native}{TEXT_PATH}", body, SSE, key=key)

    assert reply.status == status, reply.body
    assert reply.content_type.startswith("application/json")
    error = reply.json()
    assert error["code"] == code and error["message"] and error["request_id"] == reply.headers["x-request-id"]
