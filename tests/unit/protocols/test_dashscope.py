"""``multiturn.protocols.dashscope``: the native wire layer, judged by the real dashscope SDK.

The SDK is run for real and offline: a ``requests`` transport adapter hands each request the SDK
builds to a tiny in-process gateway made of ``parse_request`` / ``EventEncoder`` /
``completion_to_response`` / ``error_to_wire``, and hands the bytes back to the SDK's own parsers.
So request bodies are the SDK's actual bytes and every response goes through the SDK's SSE
parser, response classes and incremental-merge code, as it would against Model Studio.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import dashscope
import orjson
import pytest
import requests
from dashscope.api_entities.dashscope_response import GenerationResponse, MultiModalConversationResponse
from dashscope.common.utils import _handle_aio_stream, _handle_http_stream_response
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict

from multiturn.errors import (
    BackendError,
    ContextTooLong,
    InvalidInput,
    ModelNotFound,
    ModelUnavailable,
    NotFound,
    RateLimited,
    StoreError,
    Unauthorized,
    UnsupportedContent,
    UpstreamError,
)
from multiturn.protocols.dashscope import (
    EventEncoder,
    NativeOptions,
    completion_to_response,
    error_to_wire,
    parse_request,
    wire,
)
from multiturn.types import (
    Accumulator,
    AudioPart,
    Completion,
    Delta,
    ImagePart,
    Message,
    TextPart,
    ToolCall,
    ToolCallDelta,
    Usage,
    VideoPart,
)

RID = "902fee3b-f7f0-9a8c-96a1-6b4ea25af114"
BASE = "http://gateway.test/api/v1"
USAGE = Usage(prompt_tokens=11, completion_tokens=7, cached_tokens=4, reasoning_tokens=3)
SSE = {"X-DashScope-SSE": "enable", "Accept": "text/event-stream"}


# ---------------------------------------------------------------- the in-process gateway


@dataclass
class Gateway:
    """What a server route does with this module: parse, then answer in the caller's shape."""

    script: Sequence[Delta] = ()
    finish_reason: str = "stop"
    usage: Usage = USAGE
    fail: Exception | None = None  # raised mid-stream, after the script
    seen: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    parsed: list[Any] = field(default_factory=list)

    def __call__(self, url: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        self.seen.append((url, headers, body))
        try:
            request, options = parse_request(body, headers, multimodal="multimodal-generation" in url)
        except Exception as exc:
            status, payload, extra = error_to_wire(exc, RID)
            return status, extra, payload
        self.parsed.append((request, options))
        if not options.stream:
            acc = Accumulator()
            for d in self.script:
                acc.add(d)
            completion = Completion(
                content="".join(d.content for d in self.script),
                reasoning="".join(d.reasoning for d in self.script),
                tool_calls=acc.tool_calls,
                finish_reason=self.finish_reason,
                usage=self.usage,
            )
            return (
                200,
                {"content-type": "application/json"},
                completion_to_response(completion, request_id=RID, options=options),
            )
        enc = EventEncoder(RID, options, input_tokens=self.usage.prompt_tokens)
        out = b"".join(enc.delta(d) for d in self.script)
        out += enc.error(self.fail) if self.fail else enc.finish(self.finish_reason, self.usage)
        return 200, {"content-type": "text/event-stream;charset=UTF-8"}, out


class _Adapter(BaseAdapter):
    def __init__(self, handler: Callable[[str, dict[str, str], bytes], tuple[int, dict[str, str], bytes]]) -> None:
        super().__init__()
        self.handler = handler

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        body = request.body if isinstance(request.body, bytes) else (request.body or "").encode()
        status, headers, payload = self.handler(str(request.url), dict(request.headers), body)
        resp = requests.Response()
        resp.status_code = status
        resp.headers = CaseInsensitiveDict(headers)
        resp.raw = io.BytesIO(payload)
        resp.url = str(request.url)
        resp.request = request
        resp.encoding = "utf-8"
        return resp

    def close(self) -> None:
        pass


@pytest.fixture
def sdk(monkeypatch: pytest.MonkeyPatch) -> Callable[[Gateway], dict[str, Any]]:
    """Keyword arguments that make an SDK call talk to the given gateway."""
    monkeypatch.setattr(dashscope, "base_http_api_url", BASE)

    def connect(gateway: Gateway) -> dict[str, Any]:
        session = requests.Session()
        session.mount("http://", _Adapter(gateway))
        return {"api_key": "sk-test", "session": session}

    return connect


def thinking_script(reasoning: Sequence[str], answer: Sequence[str]) -> list[Delta]:
    return [Delta(reasoning=r) for r in reasoning] + [Delta(content=c) for c in answer]


def events(raw: bytes) -> list[dict[str, Any]]:
    return [orjson.loads(line[5:]) for line in raw.split(b"\n") if line.startswith(b"data:")]


# ---------------------------------------------------------------- text endpoint, non-stream


def test_guide_multi_turn_loop_over_generation_call(sdk: Callable[[Gateway], dict[str, Any]]) -> None:
    gw = Gateway(script=[Delta(content="What screen size?")])
    messages: list[dict[str, Any]] = [{"role": "system", "content": "You are a salesperson."}]
    for user_input in ("I want a phone", "6.1 inch"):
        messages.append({"role": "user", "content": user_input})
        response = dashscope.Generation.call(model="qwen-plus", messages=messages, result_format="message", **sdk(gw))
        assert response.status_code == 200
        assert response.request_id == RID
        assistant_output = response.output.choices[0].message.content
        assert assistant_output == "What screen size?"
        messages.append({"role": "assistant", "content": assistant_output})
    assert response.usage.input_tokens == 11
    assert response.usage.output_tokens == 7
    assert response.usage.total_tokens == 18
    assert response.usage.prompt_tokens_details["cached_tokens"] == 4
    assert response.usage.output_tokens_details["reasoning_tokens"] == 3
    assert response.code == ""  # never a business-error code on success
    request, options = gw.parsed[-1]
    assert [m.role for m in request.messages] == ["system", "user", "assistant", "user"]
    assert request.messages[-1] == Message.of("user", "6.1 inch")
    assert options == NativeOptions(stream=False, incremental=False, result_format="message")


def test_result_format_defaults_to_text_on_the_text_endpoint(sdk: Callable[[Gateway], dict[str, Any]]) -> None:
    gw = Gateway(script=[Delta(content="I am "), Delta(content="Qwen.")], finish_reason="length")
    response = dashscope.Generation.call(model="qwen-plus", prompt="who are you?", **sdk(gw))
    assert response.output.text == "I am Qwen."
    assert response.output.finish_reason == "length"
    assert response.output.choices is None
    assert gw.parsed[0][0].messages == (Message.of("user", "who are you?"),)
    assert orjson.loads(gw.seen[0][2]) == {"model": "qwen-plus", "parameters": {}, "input": {"prompt": "who are you?"}}


def test_non_stream_tool_calls(sdk: Callable[[Gateway], dict[str, Any]]) -> None:
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    script = [
        ToolCallDelta(0, id="call_1", name="get_weather", arguments='{"city":'),
        ToolCallDelta(0, arguments='"x"}'),
    ]
    gw = Gateway(script=[Delta(tool_calls=(p,)) for p in script], finish_reason="tool_calls")
    response = dashscope.Generation.call(
        model="qwen-plus", messages=[{"role": "user", "content": "weather?"}], tools=tools, **sdk(gw)
    )
    choice = response.output.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == ""
    assert choice.message.tool_calls == [
        {
            "index": 0,
            "id": "call_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"x"}'},
        }
    ]
    request, options = gw.parsed[0]
    assert options.result_format == "message"  # tools need it: the default follows
    assert request.params.tools[0].name == "get_weather"
    # the second turn: the assistant message as returned, then the tool result
    messages = [{"role": "user", "content": "weather?"}, choice.message]
    messages.append({"role": "tool", "content": "sunny", "tool_call_id": "call_1", "name": "get_weather"})
    dashscope.Generation.call(model="qwen-plus", messages=messages, tools=tools, **sdk(gw))
    second = gw.parsed[1][0].messages
    assert second[1].tool_calls == (ToolCall(id="call_1", name="get_weather", arguments='{"city":"x"}'),)
    assert second[2].role == "tool" and second[2].tool_call_id == "call_1" and second[2].text == "sunny"


# ---------------------------------------------------------------- text endpoint, streams


def guide_thinking_loop(responses: Iterator[Any]) -> tuple[str, str]:
    """The guide's DashScope thinking loop, verbatim in its reads and comparisons."""
    reasoning_content = ""
    answer_content = ""
    for chunk in responses:
        if chunk.output.choices[0].message.content == "" and chunk.output.choices[0].message.reasoning_content == "":
            pass
        elif chunk.output.choices[0].message.reasoning_content != "" and chunk.output.choices[0].message.content == "":
            reasoning_content += chunk.output.choices[0].message.reasoning_content
        elif chunk.output.choices[0].message.content != "":
            answer_content += chunk.output.choices[0].message.content
    return reasoning_content, answer_content


def test_guide_thinking_loop_incremental(sdk: Callable[[Gateway], dict[str, Any]]) -> None:
    gw = Gateway(script=thinking_script(["Hmm", ", the user", " asks"], ["I am", " Qwen", "."]))
    responses = dashscope.Generation.call(
        model="qwen-plus",
        messages=[{"role": "user", "content": "Who are you?"}],
        enable_thinking=True,
        result_format="message",
        stream=True,
        incremental_output=True,
        **sdk(gw),
    )
    assert guide_thinking_loop(responses) == ("Hmm, the user asks", "I am Qwen.")
    url, headers, body = gw.seen[0]
    assert url == BASE + "/services/aigc/text-generation/generation"
    assert headers["X-DashScope-SSE"] == "enable"
    assert orjson.loads(body)["parameters"] == {
        "result_format": "message",
        "incremental_output": True,
        "enable_thinking": True,
    }
    assert gw.parsed[0][1] == NativeOptions(stream=True, incremental=True, result_format="message", thinking=True)


def test_thinking_stream_cumulative_when_incremental_is_absent(sdk: Callable[[Gateway], dict[str, Any]]) -> None:
    gw = Gateway(script=thinking_script(["a", "b"], ["x", "y", "z"]))
    chunks = list(
        dashscope.Generation.call(
            model="qwen-plus",
            messages=[{"role": "user", "content": "hi"}],
            enable_thinking=True,
            result_format="message",
            stream=True,
            **sdk(gw),
        )
    )
    seen = [(c.output.choices[0].message.reasoning_content, c.output.choices[0].message.content) for c in chunks]
    assert seen == [("a", ""), ("ab", ""), ("ab", "x"), ("ab", "xy"), ("ab", "xyz"), ("ab", "xyz")]
    assert [c.output.choices[0].finish_reason for c in chunks] == ["null"] * 5 + ["stop"]
    assert [c.usage.output_tokens for c in chunks] == [1, 2, 3, 4, 5, 7]  # estimate, then the truth
    assert all(c.usage.input_tokens == 11 for c in chunks)
    assert gw.parsed[0][1].incremental is False


def test_sdk_merge_mode_rebuilds_cumulative_text(sdk: Callable[[Gateway], dict[str, Any]]) -> None:
    """dashscope 2.x sends ``incremental_output: true`` for an explicit False and merges itself."""
    gw = Gateway(script=thinking_script(["think"], ["I ", "like ", "apple."]))
    chunks = list(
        dashscope.Generation.call(
            model="qwen-plus",
            messages=[{"role": "user", "content": "hi"}],
            enable_thinking=True,
            result_format="message",
            stream=True,
            incremental_output=False,
            **sdk(gw),
        )
    )
    assert "incremental_to_full/1" in gw.seen[0][1]["user-agent"]
    assert gw.parsed[0][1].incremental is True
    assert chunks[-1].output.choices[0].message.content == "I like apple."
    assert chunks[-1].output.choices[0].message.reasoning_content == "think"
    assert chunks[-1].output.choices[0].finish_reason == "stop"


@pytest.mark.parametrize("incremental", [True, None])
def test_text_format_stream(sdk: Callable[[Gateway], dict[str, Any]], incremental: bool | None) -> None:
    gw = Gateway(script=[Delta(content="I"), Delta(reasoning="ignored"), Delta(content=" like"), Delta(content=".")])
    kw = {} if incremental is None else {"incremental_output": incremental}
    chunks = list(dashscope.Generation.call(model="qwen-plus", prompt="hi", stream=True, **kw, **sdk(gw)))
    texts = [c.output.text for c in chunks]
    if incremental:
        assert texts == ["I", " like", ".", ""]
    else:
        assert texts == ["I", "I like", "I like.", "I like."]
    assert [c.output.finish_reason for c in chunks] == ["null", "null", "null", "stop"]


def test_streamed_tool_call_merged_by_the_sdk(sdk: Callable[[Gateway], dict[str, Any]]) -> None:
    pieces = [ToolCallDelta(0, id="call_9", name="lookup", arguments=""), ToolCallDelta(0, arguments='{"q"')]
    pieces.append(ToolCallDelta(0, arguments=':"a"}'))
    gw = Gateway(script=[Delta(tool_calls=(p,)) for p in pieces], finish_reason="tool_calls")
    tools = [{"type": "function", "function": {"name": "lookup"}}]
    kw: dict[str, Any] = {"messages": [{"role": "user", "content": "find a"}], "tools": tools, "stream": True}
    merged = list(dashscope.Generation.call(model="qwen-plus", incremental_output=False, **kw, **sdk(gw)))
    call = merged[-1].output.choices[0].message.tool_calls[0]
    assert call["id"] == "call_9"
    assert call["function"] == {"name": "lookup", "arguments": '{"q":"a"}'}
    cumulative = list(dashscope.Generation.call(model="qwen-plus", **kw, **sdk(gw)))
    last = cumulative[-1].output.choices[0]
    assert last.finish_reason == "tool_calls"
    assert last.message.tool_calls == [
        {"index": 0, "id": "call_9", "type": "function", "function": {"name": "lookup", "arguments": '{"q":"a"}'}}
    ]


# ---------------------------------------------------------------- multimodal endpoint

IMAGE = "https://help-static-aliyun-doc.aliyuncs.com/file-manage-files/zh-CN/20251031/ownrof/f26d201b1e3f4e62ab4a1fc82dd5c9bb.png"


def test_guide_multimodal_round_trip(sdk: Callable[[Gateway], dict[str, Any]]) -> None:
    gw = Gateway(script=[Delta(content="Overalls, a shirt and sneakers.")])
    messages: list[Any] = [
        {"role": "user", "content": [{"image": IMAGE}, {"text": "What products are shown in the image?"}]}
    ]
    response = dashscope.MultiModalConversation.call(model="qwen3-vl-plus", messages=messages, **sdk(gw))
    assert response.output.choices[0].message.content[0]["text"] == "Overalls, a shirt and sneakers."
    assert response.usage["cached_tokens"] == 4
    messages.append(response["output"]["choices"][0]["message"])
    messages.append({"role": "user", "content": [{"text": "What style are they?"}]})
    response = dashscope.MultiModalConversation.call(model="qwen3-vl-plus", messages=messages, **sdk(gw))
    assert response.status_code == 200
    assert gw.seen[1][0] == BASE + "/services/aigc/multimodal-generation/generation"
    request, options = gw.parsed[1]
    assert options.multimodal and options.result_format == "message"
    assert request.messages == (
        Message("user", (ImagePart(IMAGE), TextPart("What products are shown in the image?"))),
        Message("assistant", (TextPart("Overalls, a shirt and sneakers."),)),
        Message("user", (TextPart("What style are they?"),)),
    )


def test_multimodal_thinking_stream_and_merge(sdk: Callable[[Gateway], dict[str, Any]]) -> None:
    gw = Gateway(script=thinking_script(["look", "ing"], ["A ", "shirt."]))
    kw: dict[str, Any] = {"messages": [{"role": "user", "content": [{"image": IMAGE}, {"text": "?"}]}]}
    kw |= {"enable_thinking": True, "stream": True}
    reasoning = answer = ""
    contents = []
    for chunk in dashscope.MultiModalConversation.call(model="qwen3-vl-plus", incremental_output=True, **kw, **sdk(gw)):
        message = chunk.output.choices[0].message
        contents.append(message.content)
        if message.content == [] and message.get("reasoning_content", None) == "":
            pass
        elif message.get("reasoning_content") and message.content == []:
            reasoning += message.reasoning_content
        elif message.content != []:
            answer += message.content[0]["text"]
    assert (reasoning, answer) == ("looking", "A shirt.")
    assert contents == [[], [], [{"text": "A "}], [{"text": "shirt."}], []]
    merged = list(
        dashscope.MultiModalConversation.call(model="qwen3-vl-plus", incremental_output=False, **kw, **sdk(gw))
    )
    assert merged[-1].output.choices[0].message.content == [{"text": "A shirt."}]
    assert merged[-1].output.choices[0].message.reasoning_content == "looking"


def test_multimodal_items_map_to_parts() -> None:
    body = {
        "model": "qwen3-vl-plus",
        "input": {
            "messages": [
                {"role": "system", "content": [{"text": "be brief"}]},
                {
                    "role": "user",
                    "content": [
                        {"image": "data:image/png;base64,iVBO", "min_pixels": 3136, "max_pixels": 1003520},
                        {"image": "file:///tmp/a.png"},
                        {"video": "https://x/v.mp4", "fps": 2},
                        {"video": ["https://x/1.jpg", "https://x/2.jpg"]},
                        {"audio": "https://x/a.wav"},
                        {"type": "text", "text": "describe", "cache_control": {"type": "ephemeral"}},
                    ],
                },
            ]
        },
        "parameters": {"vl_high_resolution_images": True},
    }
    request, options = parse_request(orjson.dumps(body), {}, multimodal=True)
    assert request.messages[1].content == (
        ImagePart("data:image/png;base64,iVBO"),
        ImagePart("file:///tmp/a.png"),
        VideoPart(url="https://x/v.mp4"),
        VideoPart(frames=("https://x/1.jpg", "https://x/2.jpg")),
        AudioPart(url="https://x/a.wav"),
        TextPart("describe"),
    )
    assert request.params.extra == {"vl_high_resolution_images": True}
    assert options == NativeOptions(result_format="message", multimodal=True)
    wire.GenerationRequest.model_validate(body)


# ---------------------------------------------------------------- errors


def test_request_errors_reach_the_sdk_as_status_code_and_message(sdk: Callable[[Gateway], dict[str, Any]]) -> None:
    gw = Gateway()
    kw = {"messages": [{"role": "user", "content": "hi"}], **sdk(gw)}
    response = dashscope.Generation.call(model="qwen-plus", top_p=0, **kw)
    assert (response.status_code, response.code, response.message) == (
        400,
        "InvalidParameter",
        "Range of top_p should be (0.0, 1.0]",
    )
    assert response.request_id == RID
    stream = list(dashscope.Generation.call(model="qwen-plus", temperature=2, stream=True, **kw))
    assert [(r.status_code, r.code, r.message) for r in stream] == [
        (400, "InvalidParameter", "Temperature should be in [0.0, 2.0)")
    ]
    response = dashscope.Generation.call(
        model="qwen-plus", enable_thinking=True, result_format="text", stream=True, **kw
    )
    assert next(iter(response)).message == 'The result_format parameter must be "message" when enable_thinking is true'


@pytest.mark.parametrize(
    ("exc", "status", "code"),
    [
        (RateLimited("slow down", retry_after=2.5), 429, "Throttling.RateQuota"),
        (UpstreamError("upstream broke", status=503), 502, "InternalError"),
        (ContextTooLong("too long", prompt_tokens=9000, limit=8192), 400, "InvalidParameter"),
        (RuntimeError("secret /path"), 500, "InternalError"),
    ],
)
def test_error_mid_stream(sdk: Callable[[Gateway], dict[str, Any]], exc: Exception, status: int, code: str) -> None:
    gw = Gateway(script=[Delta(content="par"), Delta(content="tial")], fail=exc)
    chunks = list(
        dashscope.Generation.call(
            model="qwen-plus",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            incremental_output=True,
            **sdk(gw),
        )
    )
    assert [c.output.text for c in chunks[:2]] == ["par", "tial"]
    assert (chunks[2].status_code, chunks[2].code, chunks[2].request_id) == (status, code, RID)
    assert chunks[2].output is None
    assert "secret" not in chunks[2].message
    assert len(chunks) == 3


async def test_aio_sdk_parser_reads_events_and_the_error_status() -> None:
    """``AioGeneration`` reads aiohttp lines with its own, stricter parser."""
    enc = EventEncoder(RID, NativeOptions(stream=True, incremental=True, thinking=True))
    raw = enc.delta(Delta(reasoning="r")) + enc.delta(Delta(content="c")) + enc.error(RateLimited("x"))

    class Lines:
        async def _lines(self) -> Any:
            for line in raw.splitlines(keepends=True):
                yield line

        def __init__(self) -> None:
            self.content = self._lines()

    got = [item async for item in _handle_aio_stream(Lines())]
    assert [(is_error, status) for is_error, status, _ in got] == [(False, 400), (False, 400), (True, 429)]
    messages = [orjson.loads(data) for _, _, data in got]
    assert [m["output"]["choices"][0]["message"]["reasoning_content"] for m in messages[:2]] == ["r", ""]
    assert messages[2] == {"code": "Throttling.RateQuota", "message": wire.RATE_LIMITED, "request_id": RID}


@pytest.mark.parametrize(
    ("exc", "status", "code", "message", "headers"),
    [
        (InvalidInput("bad thing"), 400, "InvalidParameter", "bad thing", {}),
        (
            ContextTooLong("x", prompt_tokens=5, limit=4),
            400,
            "InvalidParameter",
            "Range of input length should be [1, 4]",
            {},
        ),
        (UnsupportedContent("no images"), 400, "InvalidParameter", "no images", {}),
        (ModelNotFound("Model not exist: 'q' is neither..."), 400, "InvalidParameter", "Model not exist.", {}),
        (NotFound("no such conversation"), 404, "NotFound", "no such conversation", {}),
        (Unauthorized("who?"), 401, "InvalidApiKey", "Invalid API-key provided.", {}),
        (
            RateLimited("x", retry_after=1.2),
            429,
            "Throttling.RateQuota",
            wire.RATE_LIMITED,
            {"retry-after": "2"},
        ),
        (
            RateLimited("x"),
            429,
            "Throttling.RateQuota",
            wire.RATE_LIMITED,
            {"retry-after": "1"},
        ),
        (UpstreamError("denied", status=403, code="AccessDenied"), 403, "AccessDenied", "denied", {}),
        (UpstreamError("bad key", status=401, code="invalid_api_key"), 401, "InvalidApiKey", "bad key", {}),
        (UpstreamError("busy", status=429), 429, "Throttling", "busy", {"retry-after": "1"}),
        (UpstreamError("bad", status=400), 400, "InvalidParameter", "bad", {}),
        (UpstreamError("unreachable"), 502, "InternalError", "unreachable", {}),
        (UpstreamError("boom", status=500), 502, "InternalError", "boom", {}),
        (ModelUnavailable("not pulled"), 503, "ModelUnavailable", "not pulled", {}),
        (BackendError("decode failed"), 500, "InternalError", "decode failed", {}),
        (StoreError("postgres://user:pw@db"), 500, "InternalError", wire.INTERNAL_ERROR, {}),
        (KeyError("x"), 500, "InternalError", wire.INTERNAL_ERROR, {}),
    ],
)
def test_error_to_wire(exc: Exception, status: int, code: str, message: str, headers: dict[str, str]) -> None:
    got_status, body, got_headers = error_to_wire(exc, RID)
    assert (got_status, orjson.loads(body), got_headers) == (
        status,
        {"request_id": RID, "code": code, "message": message},
        {"content-type": "application/json", **headers},
    )
    wire.ErrorBody.model_validate_json(body)
    event = EventEncoder(RID, NativeOptions()).error(exc)
    assert event == b"id:1\nevent:error\nstatus:%d\n:HTTP_STATUS/%d\ndata:%b\n\n" % (
        status,
        status,
        orjson.dumps({"code": code, "message": message, "request_id": RID}),
    )


def ok(model: str = "qwen-plus", **params: Any) -> dict[str, Any]:
    return {"model": model, "input": {"messages": [{"role": "user", "content": "hi"}]}, "parameters": params}


@pytest.mark.parametrize(
    ("body", "message", "code"),
    [
        (b"{not json", "Required body invalid, please check the request body format.", "InvalidParameter"),
        (b"[1]", "Required body invalid, please check the request body format.", "InvalidParameter"),
        ({"input": {"prompt": "x"}}, 'Required parameter "model" missing from request.', "BadRequest.EmptyModel"),
        ({"model": "m"}, "Required input parameter missing from request.", "BadRequest.EmptyInput"),
        ({"model": "m", "input": {}}, 'Either "prompt" or "messages" must exist and cannot both be none', None),
        ({"model": "m", "input": {"messages": []}}, "[] is too short", None),
        (
            {"model": "m", "input": {"messages": [{"role": "system", "content": "s"}]}},
            "The input messages do not contain elements with the role of user.",
            None,
        ),
        ({"model": "m", "input": {"messages": [{"role": "user"}]}}, "The content field is a required field.", None),
        (
            {"model": "m", "input": {"messages": [{"role": "user", "content": [{"file": "x"}]}]}},
            "The item of content should be a message of a certain modal.",
            None,
        ),
        (
            {"model": "m", "input": {"messages": [{"role": "developer", "content": "x"}]}},
            "developer is not one of ['user', 'assistant', 'system', 'function', 'plugin', 'tool'] - "
            "'input.messages.[0].role'",
            None,
        ),
        (
            {
                "model": "m",
                "input": {
                    "messages": [
                        {"role": "user", "content": "x"},
                        {"role": "tool", "content": "r", "tool_call_id": "c"},
                    ]
                },
            },
            'messages with role "tool" must be a response to a preceeding message with "tool_calls"',
            None,
        ),
        (ok(top_p=1.5), "Range of top_p should be (0.0, 1.0]", None),
        (ok(top_p="high"), "'top_p' must be Float", None),
        (ok(temperature=-0.1), "Temperature should be in [0.0, 2.0)", None),
        (ok(max_tokens=0), "Range of max_tokens should be [1, 2147483647]", None),
        (ok(max_tokens=1.5), "'max_tokens' must be Integer", None),
        (ok(top_k=-1), "Parameter top_k be greater than or equal to 0", None),
        (ok(seed=-1), "Range of seed should be [0, 9223372036854775807]", None),
        (ok(n=5), "Range of n should be [1, 4]", None),
        (ok(repetition_penalty=0), "Repetition_penalty should be greater than 0.0", None),
        (ok(presence_penalty=2.5), "Presence_penalty should be in [-2.0, 2.0]", None),
        (ok(stop=["a", 1]), wire.STOP_TYPES, None),
        (ok(tool_choice="always"), 'tool_choice is one of the strings that should be ["none", "auto"]', None),
        (ok(enable_thinking=True, result_format="text"), wire.THINKING_NEEDS_MESSAGE, None),
        (
            ok(tools=[{"type": "function", "function": {"name": "f"}}], result_format="text"),
            wire.TOOLS_NEED_MESSAGE,
            None,
        ),
        (
            ok(tools=[{"function": {}}]),
            "Required parameter(tools) missing or invalid, please check the request parameters.",
            None,
        ),
        (ok(enable_thinking="yes"), "'enable_thinking' must be Boolean", None),
        (ok(incremental_output="yes"), "'incremental_output' must be Boolean", None),
    ],
)
def test_request_error_texts(body: bytes | dict[str, Any], message: str, code: str | None) -> None:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    with pytest.raises(InvalidInput) as caught:
        parse_request(raw, {}, multimodal=False)
    assert caught.value.message == message
    status, payload, _ = error_to_wire(caught.value, RID)
    assert status == 400
    assert orjson.loads(payload)["code"] == (code or "InvalidParameter")


# ---------------------------------------------------------------- requests


def test_reference_request_bodies() -> None:
    """wire-protocols §2.2: the SDK's own bodies, byte for byte, and the cache-docs form."""
    req, opts = parse_request(
        b'{"model": "qwen-plus", "parameters": {"result_format": "message"}, "input": {"messages": '
        b'[{"role": "user", "content": "hi"}]}}',
        {"Accept": "application/json; charset=utf-8"},
        multimodal=False,
    )
    assert req.messages == (Message.of("user", "hi"),) and opts == NativeOptions(result_format="message")
    req, opts = parse_request(
        b'{"model": "qwen-plus", "parameters": {}, "input": {"prompt": "hi"}}', {}, multimodal=False
    )
    assert req.messages == (Message.of("user", "hi"),) and opts.result_format == "text"
    req, _ = parse_request(
        b'{"model": "qwen3-vl-plus", "parameters": {}, "input": {"messages": [{"role": "user", "content": '
        b'[{"image": "https://example.com/a.png"}, {"text": "what?"}]}]}}',
        {},
        multimodal=True,
    )
    assert req.messages[0].content == (ImagePart("https://example.com/a.png"), TextPart("what?"))
    cached = {
        "role": "system",
        "content": [{"type": "text", "text": "long prompt", "cache_control": {"type": "ephemeral"}}],
    }
    body = {"model": "qwen-plus", "input": {"messages": [cached, {"role": "user", "content": "q"}]}}
    req, _ = parse_request(orjson.dumps(body), {}, multimodal=False)
    assert req.messages[0] == Message.of("system", "long prompt")
    req, _ = parse_request(
        orjson.dumps({"model": "m", "input": {"prompt": "3?", "history": [{"user": "1?", "bot": "2"}]}}),
        {},
        multimodal=False,
    )
    assert req.messages == (Message.of("user", "1?"), Message.of("assistant", "2"), Message.of("user", "3?"))


@pytest.mark.parametrize(
    ("headers", "stream"),
    [
        ({"X-DashScope-SSE": "enable"}, True),
        ({"x-dashscope-sse": "ENABLE"}, True),
        ({"X-DashScope-SSE": "disable"}, False),
        ({"accept": "text/event-stream"}, True),
        ({"Accept": "application/json, text/event-stream;q=0.5"}, True),
        ({"Accept": "application/json"}, False),
        ({}, False),
    ],
)
def test_streaming_is_chosen_by_headers(headers: dict[str, str], stream: bool) -> None:
    body = orjson.dumps(ok(stream=False))  # a body "stream" is ignored, never forwarded
    req, opts = parse_request(body, headers, multimodal=False)
    assert opts.stream is stream
    assert "stream" not in req.params.extra


def test_parameters_map_to_generation_params() -> None:
    tools = [{"type": "function", "function": {"name": "f", "description": "d", "parameters": {"type": "object"}}}]
    params = {
        "result_format": "message",
        "incremental_output": True,
        "enable_thinking": True,
        "thinking_budget": 512,
        "max_tokens": 100,
        "temperature": 0,
        "top_p": 0.8,
        "top_k": 20,
        "seed": 42,
        "stop": "END",
        "repetition_penalty": 1.05,
        "presence_penalty": -1,
        "n": 2,
        "tools": tools,
        "tool_choice": {"type": "function", "function": {"name": "f"}},
        "parallel_tool_calls": True,
        "response_format": {"type": "json_object"},
        "enable_search": True,
        "search_options": {"enable_source": True},
        "some_future_knob": [1, 2],
        "logprobs": None,
    }
    req, opts = parse_request(orjson.dumps(ok(**params)), SSE, multimodal=False)
    p = req.params
    assert (p.enable_thinking, p.thinking_budget, p.max_tokens, p.temperature, p.top_p, p.top_k, p.seed) == (
        True,
        512,
        100,
        0.0,
        0.8,
        20,
        42,
    )
    assert isinstance(p.temperature, float)
    assert (p.stop, p.repetition_penalty, p.presence_penalty, p.n, p.parallel_tool_calls) == (
        ("END",),
        1.05,
        -1.0,
        2,
        True,
    )
    assert p.tools[0].name == "f" and p.tools[0].description == "d" and p.tools[0].parameters == {"type": "object"}
    assert p.tool_choice == {"type": "function", "function": {"name": "f"}}
    assert p.response_format == {"type": "json_object"}
    assert p.extra == {"enable_search": True, "search_options": {"enable_source": True}, "some_future_knob": [1, 2]}
    assert opts == NativeOptions(stream=True, incremental=True, result_format="message", thinking=True)
    token_stops = parse_request(orjson.dumps(ok(stop=[[1, 2], [3]])), {}, multimodal=False)[0].params
    assert token_stops.stop == () and token_stops.extra == {"stop": [[1, 2], [3]]}


def test_openai_model_dump_nulls_and_reasoning_are_accepted() -> None:
    assistant = {
        "role": "assistant",
        "content": "answer",
        "reasoning_content": "thought",
        "tool_calls": None,
        "function_call": None,
        "refusal": None,
        "audio": None,
        "annotations": None,
    }
    body = {
        "model": "m",
        "input": {"messages": [{"role": "user", "content": "q"}, assistant, {"role": "user", "content": "q2"}]},
    }
    req, _ = parse_request(orjson.dumps(body), {}, multimodal=False)
    assert req.messages[1] == Message("assistant", (TextPart("answer"),), reasoning="thought")


# ---------------------------------------------------------------- exact bytes and schemas


def test_exact_event_bytes() -> None:
    enc = EventEncoder(RID, NativeOptions(stream=True, incremental=True, thinking=True), input_tokens=11)
    assert enc.delta(Delta(reasoning="Hmm")) == (
        b"id:1\nevent:result\n:HTTP_STATUS/200\n"
        b'data:{"output":{"choices":[{"message":{"role":"assistant","content":"","reasoning_content":"Hmm"},'
        b'"finish_reason":"null"}]},"usage":{"input_tokens":11,"output_tokens":1,"total_tokens":12},'
        b'"request_id":"' + RID.encode() + b'"}\n\n'
    )
    assert enc.delta(Delta()) == b""
    last = enc.finish("length", USAGE)
    assert last.startswith(b"id:2\nevent:result\n:HTTP_STATUS/200\ndata:{")
    assert events(last)[0]["output"]["choices"][0] == {
        "message": {"role": "assistant", "content": "", "reasoning_content": ""},
        "finish_reason": "length",
    }
    assert events(last)[0]["usage"] == {
        "input_tokens": 11,
        "output_tokens": 7,
        "total_tokens": 18,
        "prompt_tokens_details": {"cached_tokens": 4},
        "output_tokens_details": {"reasoning_tokens": 3},
    }


@pytest.mark.parametrize("multimodal", [False, True])
@pytest.mark.parametrize("thinking", [False, True])
@pytest.mark.parametrize("result_format", ["text", "message"])
def test_non_stream_bodies_match_the_published_models(multimodal: bool, thinking: bool, result_format: str) -> None:
    options = NativeOptions(result_format=result_format, multimodal=multimodal, thinking=thinking)
    body = completion_to_response(
        Completion(content="hi", finish_reason="stop", usage=USAGE), request_id=RID, options=options
    )
    parsed = wire.GenerationResponse.model_validate_json(body)
    doc = orjson.loads(body)
    assert "code" not in doc and doc["request_id"] == RID
    if result_format == "text":
        assert doc["output"] == {"finish_reason": "stop", "text": "hi"}
        return
    message = doc["output"]["choices"][0]["message"]
    assert message["content"] == ([{"text": "hi"}] if multimodal else "hi")
    assert ("reasoning_content" in message) is thinking
    assert parsed.usage.cached_tokens == (4 if multimodal else None)


def test_openapi_schemas_build() -> None:
    for model in (wire.GenerationRequest, wire.GenerationResponse, wire.StreamChunk, wire.ErrorBody):
        assert model.model_json_schema()["title"] == model.__name__


# ---------------------------------------------------------------- properties

texts = st.text(st.characters(codec="utf-8"), max_size=12)
pieces = st.lists(st.tuples(st.booleans(), texts), max_size=8)
modes = st.sampled_from(
    [(i, m, t, f) for i in (True, False) for m in (True, False) for t in (True, False) for f in ("text", "message")]
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pieces, modes)
def test_any_stream_parses_and_reassembles(parts: list[tuple[bool, str]], mode: tuple[bool, bool, bool, str]) -> None:
    """Whatever the text (newlines, U+2028, CR, quotes...), every event is one SSE event the SDK
    parses, matches the published model, and the stream reassembles to exactly the answer."""
    incremental, multimodal, thinking, fmt = mode
    if multimodal or thinking:
        fmt = "message"
    options = NativeOptions(
        stream=True, incremental=incremental, result_format=fmt, multimodal=multimodal, thinking=thinking
    )
    deltas = [Delta(reasoning=t) if is_reasoning else Delta(content=t) for is_reasoning, t in parts]
    enc = EventEncoder(RID, options, input_tokens=3)
    raw = b"".join(enc.delta(d) for d in deltas) + enc.finish("stop", USAGE)
    assert raw.count(b"\n\n") == raw.count(b"data:") == raw.count(b"event:result")
    # No [DONE] sentinel line (the answer's own text may say "[DONE]" inside the JSON).
    assert not any(line.strip() in (b"data:[DONE]", b"data: [DONE]") for line in raw.splitlines())
    answer = "".join(t for r, t in parts if not r)
    reasoning = "".join(t for r, t in parts if r)
    got_answer = got_reasoning = ""
    response = requests.Response()
    response.status_code = 200
    response.headers = CaseInsensitiveDict({"content-type": "text/event-stream"})
    response.raw = io.BytesIO(raw)
    cls = MultiModalConversationResponse if multimodal else GenerationResponse
    chunks = [cls.from_api_response(r) for _, r in _handle_http_stream_response(response)]
    assert len(chunks) == raw.count(b"data:")
    for chunk in chunks:
        assert chunk.status_code == 200
        if fmt == "text":
            got_answer = got_answer + chunk.output.text if incremental else chunk.output.text
            continue
        message = chunk.output.choices[0].message
        content = message.content
        if multimodal:
            content = content[0]["text"] if content else ""
        if incremental:
            got_answer += content
            got_reasoning += message.get("reasoning_content") or ""
        else:
            got_answer, got_reasoning = content, message.get("reasoning_content") or ""
        if thinking:  # the guide's loop needs both, as strings, on every chunk
            assert isinstance(message.reasoning_content, str)
            assert isinstance(message.content, list if multimodal else str)
    assert got_answer == answer
    assert got_reasoning == ("" if fmt == "text" else reasoning)
    for data in events(raw):
        wire.StreamChunk.model_validate(data)


roles = st.sampled_from(["system", "user", "assistant"])
native_items = st.one_of(
    texts.map(lambda t: ({"text": t}, TextPart(t))),
    texts.map(lambda t: ({"type": "text", "text": t}, TextPart(t))),
    texts.map(lambda u: ({"image": u, "max_pixels": 1024}, ImagePart(u))),
    texts.map(lambda u: ({"audio": u}, AudioPart(url=u))),
    texts.map(lambda u: ({"video": u, "fps": 2}, VideoPart(url=u))),
    st.lists(texts, max_size=3).map(lambda fs: ({"video": fs}, VideoPart(frames=tuple(fs)))),
)
native_messages = st.tuples(
    roles,
    st.one_of(
        texts.map(lambda t: (t, (TextPart(t),) if t else ())),
        st.lists(native_items, max_size=4).map(lambda xs: ([x[0] for x in xs], tuple(x[1] for x in xs))),
    ),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(native_messages, min_size=1, max_size=6), st.booleans())
def test_any_valid_request_parses_and_validates(
    messages: list[tuple[str, tuple[Any, tuple[Any, ...]]]], multimodal: bool
) -> None:
    """Every message list made of documented items parses to the parts it names, in order, and
    every body ``parse_request`` accepts also validates against the published request model."""
    wire_messages = [{"role": role, "content": content} for role, (content, _) in messages]
    wire_messages.append({"role": "user", "content": "last"})
    body = {"model": "qwen-plus", "input": {"messages": wire_messages}, "parameters": {"incremental_output": True}}
    request, options = parse_request(orjson.dumps(body), {}, multimodal=multimodal)
    assert [m.role for m in request.messages] == [role for role, _ in messages] + ["user"]
    assert [m.content for m in request.messages[:-1]] == [parts for _, (_, parts) in messages]
    assert options.incremental
    wire.GenerationRequest.model_validate(body)
