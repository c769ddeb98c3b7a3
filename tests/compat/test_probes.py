"""The conformance probes of wire-protocols.md (Appendix) that apply to a server, not already
covered trap by trap in test_traps.py: request ids, SDK retries, in-stream errors, the
``.stream()`` helper, the async clients, the request relayed upstream, context overflow and
image parts on the embedded model, errors never HTML, ``/openapi.json``, ``/models``."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterator
from typing import Any

import dashscope
import openai
import pytest
from dashscope.api_entities.aio_session import close_shared_aio_session
from openai import AsyncOpenAI

from multiturn import catalog
from support.fake_upstream import Recorded
from support.serve import (
    CONTEXT_TOO_LONG,
    GATEWAY_KEY,
    RATE_LIMITED,
    RESET,
    STREAM_ERROR,
    Server,
    default_cache_dir,
    start_serve,
)

from . import wire
from .calls import ANSWER, HI, HI_NATIVE, MULTIMODAL_PATH, REASONING, SSE, TEXT_PATH, openai_client, sdk
from .upstreams import ResettingUpstream
from .wire import poll

GATEWAY_UPSTREAM_RETRIES = 2  # Settings.upstream_retries default: the gateway's own retries of a 429
UNPULLED = "smollm2-135m"  # a catalogue model the tests never pull


# --- request ids -------------------------------------------------------------------------------------------


def test_x_request_id_is_the_sdk_request_id(gateway: Server) -> None:
    client = sdk(gateway)
    raw = client.chat.completions.with_raw_response.create(model="qwen-plus", messages=HI)
    completion = raw.parse()
    rid = raw.headers["x-request-id"]
    assert completion._request_id == rid
    assert completion.id == f"chatcmpl-{rid}"

    with client.chat.completions.create(model="qwen-plus", messages=HI, stream=True) as stream:
        ids = {chunk.id for chunk in stream}
        assert ids == {f"chatcmpl-{stream.response.headers['x-request-id']}"}

    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="no-such-model", messages=HI)
    assert caught.value.request_id and caught.value.response.headers["x-request-id"] == caught.value.request_id


def test_native_request_id_is_the_header(gateway: Server) -> None:
    reply = wire.post(f"{gateway.native}{TEXT_PATH}", {"model": "qwen-plus", "input": HI_NATIVE}, key=GATEWAY_KEY)
    assert reply.status == 200 and reply.json()["request_id"] == reply.headers["x-request-id"]
    bad = wire.post(f"{gateway.native}{TEXT_PATH}", {"model": "no-such-model", "input": HI_NATIVE}, key=GATEWAY_KEY)
    assert bad.status == 400 and bad.json()["request_id"] == bad.headers["x-request-id"]


# --- retries ----------------------------------------------------------------------------------------------


def test_sdk_retries_a_429_end_to_end(gateway: Server, fake_since: Callable[[], list[Recorded]]) -> None:
    with pytest.raises(openai.RateLimitError):
        sdk(gateway, max_retries=2).chat.completions.create(model=RATE_LIMITED, messages=HI)

    # 3 SDK attempts, each relayed with the gateway's own retries: the 429 was retryable end to end.
    assert len(fake_since()) == 3 * (1 + GATEWAY_UPSTREAM_RETRIES)


def test_sdk_does_not_retry_what_cannot_succeed(gateway: Server, fake_since: Callable[[], list[Recorded]]) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        sdk(gateway, max_retries=2).chat.completions.create(model=CONTEXT_TOO_LONG, messages=HI)

    assert caught.value.response.headers["x-should-retry"] == "false"
    assert "Range of input length should be [1, 1024]" in caught.value.message
    assert len(fake_since()) == 1


def test_sdk_does_not_retry_a_5xx_marked_no_retry(gateway: Server) -> None:
    """A 5xx is retried by the SDK unless the server says ``x-should-retry: false``: a model that
    is not pulled cannot become available by asking again."""
    spec = catalog.find(UNPULLED)
    if catalog.is_pulled(spec, default_cache_dir() / "models"):
        pytest.skip(f"{UNPULLED} is pulled here: it would be served, not refused")

    def refusals() -> int:
        return gateway.log().count('"status":503')

    before = refusals()
    with pytest.raises(openai.InternalServerError) as caught:
        sdk(gateway, max_retries=2).chat.completions.create(model=UNPULLED, messages=HI)

    assert caught.value.status_code == 503
    assert caught.value.response.headers["x-should-retry"] == "false"
    assert "not pulled" in caught.value.message
    assert poll(lambda: refusals() == before + 1, within=5.0)  # the access log line is written after the answer
    assert refusals() == before + 1  # one attempt, no retry


# --- in-stream errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize("alias", [STREAM_ERROR, RESET])
def test_error_after_the_stream_started_raises_api_error(gateway: Server, alias: str) -> None:
    received = ""
    with pytest.raises(openai.APIError) as caught:
        for chunk in sdk(gateway).chat.completions.create(model=alias, messages=HI, stream=True):
            received += chunk.choices[0].delta.content or ""
    assert not isinstance(caught.value, openai.APIStatusError)  # in-stream, after a 200
    assert received.startswith("You ")
    if alias == STREAM_ERROR:
        assert "Output data may contain inappropriate content." in caught.value.message
        assert caught.value.code == "data_inspection_failed"


def test_compat_in_stream_error_event_shape(gateway: Server) -> None:
    stream = wire.open_stream(
        f"{gateway.compat}/chat/completions", {"model": STREAM_ERROR, "messages": HI, "stream": True}, key=GATEWAY_KEY
    )
    with stream:
        events = wire.events(stream.read_all())
    last = events[-1].lines
    assert len(last) == 1 and last[0].startswith('data: {"error":')
    assert all("[DONE]" not in line for e in events for line in e.lines)  # nothing may follow the error


# --- the .stream() helper and the async clients ------------------------------------------------------------


def test_stream_helper_accumulates_reasoning_and_content(gateway: Server) -> None:
    with sdk(gateway).chat.completions.stream(
        model="qwen-plus", messages=HI, extra_body={"enable_thinking": True}
    ) as stream:
        kinds = {event.type for event in stream}
        final = stream.get_final_completion()

    assert "content.delta" in kinds and "content.done" in kinds
    message = final.choices[0].message
    assert message.content == ANSWER
    assert (message.model_extra or {}).get("reasoning_content") == REASONING
    assert final.choices[0].finish_reason == "stop"


@pytest.mark.model
def test_stream_helper_on_the_embedded_model(embedded: Server) -> None:
    text = ""
    with sdk(embedded).chat.completions.stream(model="qwen-plus", messages=HI, max_tokens=3) as stream:
        for event in stream:
            if event.type == "content.delta":
                text += event.delta
        try:
            final = stream.get_final_completion()
        except openai.LengthFinishReasonError as exc:  # the helper's own rule for finish_reason "length"
            final = exc.completion
    assert final.choices[0].finish_reason in ("stop", "length")
    assert final.choices[0].message.content == text and text


async def test_async_openai_client(gateway: Server) -> None:
    async with AsyncOpenAI(api_key=GATEWAY_KEY, base_url=gateway.compat) as client:
        completion = await client.chat.completions.create(model="qwen-plus", messages=HI)
        assert completion.choices[0].message.content == ANSWER

        async def streamed(text: str) -> str:
            stream = await client.chat.completions.create(
                model="qwen-plus", messages=[{"role": "user", "content": text}], stream=True
            )
            return "".join([chunk.choices[0].delta.content or "" async for chunk in stream])

        answers = await asyncio.gather(*(streamed(f"question {i}") for i in range(4)))
        assert answers == [f"You said: question {i}" for i in range(4)]


async def test_async_dashscope_clients(gateway: Server) -> None:
    dashscope.base_http_api_url = gateway.native
    try:
        await _async_dashscope_calls()
    finally:
        await close_shared_aio_session()  # the SDK keeps one aiohttp session per event loop


async def _async_dashscope_calls() -> None:
    response = await dashscope.AioGeneration.call(
        api_key=GATEWAY_KEY, model="qwen-plus", messages=HI, result_format="message"
    )
    assert response.status_code == 200 and response.output.choices[0].message.content == ANSWER

    stream = await dashscope.AioGeneration.call(
        api_key=GATEWAY_KEY,
        model="qwen-plus",
        messages=HI,
        result_format="message",
        stream=True,
        incremental_output=True,
    )
    assert "".join([r.output.choices[0].message.content async for r in stream]) == ANSWER

    image = [{"role": "user", "content": [{"image": "https://example.com/a.png"}, {"text": "hi there"}]}]
    multimodal = await dashscope.AioMultiModalConversation.call(
        api_key=GATEWAY_KEY, model="qwen3-vl-plus", messages=image
    )
    assert multimodal.output.choices[0].message.content == [{"text": f"I see 1 image. {ANSWER}"}]


# --- what the gateway relays -------------------------------------------------------------------------------


def test_guide_style_parameters_reach_the_upstream(gateway: Server, fake_since: Callable[[], list[Recorded]]) -> None:
    """wire-protocols.md §1.1's captured request: every parameter arrives upstream as sent."""
    sent: dict[str, Any] = {
        "max_tokens": 10,
        "presence_penalty": 0.1,
        "seed": 1,
        "stop": ["x"],
        "temperature": 0.5,
        "top_p": 0.8,
    }
    extra = {"enable_thinking": True, "thinking_budget": 50, "top_k": 20}
    sdk(gateway).chat.completions.create(model="qwen-plus", messages=HI, n=1, **sent, extra_body=extra)

    (request,) = fake_since()
    assert {k: request.body.get(k) for k in [*sent, *extra]} == {**sent, **extra}
    assert request.body["messages"] == HI and request.body["model"] == "qwen-plus"


def test_native_parameters_reach_the_upstream(gateway: Server, fake_since: Callable[[], list[Recorded]]) -> None:
    dashscope.base_http_api_url = gateway.native
    response = dashscope.Generation.call(
        api_key=GATEWAY_KEY,
        model="qwen-plus",
        messages=HI,
        result_format="message",
        max_tokens=10,
        temperature=0.5,
        top_p=0.8,
        top_k=20,
        seed=1,
        stop=["x"],
        repetition_penalty=1.05,
    )
    assert response.status_code == 200

    (request,) = fake_since()
    relayed = {k: request.body.get(k) for k in ("max_tokens", "temperature", "top_p", "top_k", "seed", "stop")}
    assert relayed == {"max_tokens": 10, "temperature": 0.5, "top_p": 0.8, "top_k": 20, "seed": 1, "stop": ["x"]}
    assert request.body["repetition_penalty"] == 1.05


def test_native_legacy_prompt_and_text_format(gateway: Server) -> None:
    dashscope.base_http_api_url = gateway.native
    response = dashscope.Generation.call(api_key=GATEWAY_KEY, model="qwen-plus", prompt="hi there")

    assert response.status_code == 200, response
    assert response.output.text == ANSWER and response.output.finish_reason == "stop"


def test_dashscope_sdk_reports_401_and_unknown_model(gateway: Server) -> None:
    dashscope.base_http_api_url = gateway.native
    bad_key = dashscope.Generation.call(api_key="sk-wrong", model="qwen-plus", messages=HI, result_format="message")
    assert (bad_key.status_code, bad_key.code) == (401, "InvalidApiKey") and bad_key.request_id

    streamed = list(dashscope.Generation.call(api_key="sk-wrong", model="qwen-plus", messages=HI, stream=True))
    assert [(r.status_code, r.code) for r in streamed] == [(401, "InvalidApiKey")]

    unknown = dashscope.Generation.call(api_key=GATEWAY_KEY, model="no-such-model", messages=HI)
    assert (unknown.status_code, unknown.code, unknown.message) == (400, "InvalidParameter", "Model not exist.")


# --- the embedded model: context overflow, image parts ---------------------------------------------------------

LONG_PROMPT = "word " * 9000  # over the embedded model's default window (n_ctx 8192)
RANGE = re.compile(r"Range of input length should be \[1, (\d+)\]")


@pytest.mark.model
def test_context_too_long_on_the_embedded_model(embedded: Server) -> None:
    long_messages = [{"role": "user", "content": LONG_PROMPT}]
    with pytest.raises(openai.BadRequestError) as caught:
        sdk(embedded, max_retries=0).chat.completions.create(model="qwen-plus", messages=long_messages, stream=True)
    assert caught.value.status_code == 400
    match = RANGE.search(caught.value.message)
    assert match is not None and int(match.group(1)) == 8191, caught.value.message

    reply = wire.post(f"{embedded.native}{TEXT_PATH}", {"model": "qwen-plus", "input": {"prompt": LONG_PROMPT}})
    assert reply.status == 400
    assert reply.json()["code"] == "InvalidParameter"
    assert reply.json()["message"] == "Range of input length should be [1, 8191]"


@pytest.mark.model
def test_image_part_to_the_text_only_embedded_model(embedded: Server) -> None:
    image_part = {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}
    messages = [{"role": "user", "content": [image_part, {"type": "text", "text": "What is this?"}]}]
    with pytest.raises(openai.BadRequestError) as caught:
        sdk(embedded, max_retries=0).chat.completions.create(model="qwen-plus", messages=messages)
    assert caught.value.status_code == 400 and "image" in caught.value.message
    assert caught.value.response.json()["error"]["type"] == "invalid_request_error"

    dashscope.base_http_api_url = embedded.native
    response = dashscope.MultiModalConversation.call(
        api_key=embedded.api_key,
        model="qwen-vl-plus",  # a default alias: the embedded, text-only model
        messages=[{"role": "user", "content": [{"image": "https://example.com/a.png"}, {"text": "What is this?"}]}],
    )
    assert (response.status_code, response.code) == (400, "InvalidParameter") and "image" in response.message


# --- never HTML; openapi.json; models -----------------------------------------------------------------------

NOT_ROUTES = [  # "/" is a route: it leads to the web app (a redirect to /ui/)
    ("GET", "/nope"),
    ("POST", "/v1/nope"),
    ("GET", "/v1/chat/completions"),
    ("POST", "/compatible-mode/v1/responses/x/y/z"),
    ("GET", "/api/v1/nope"),
    ("GET", "/api/v1/services/aigc/text-generation/generation"),
]


@pytest.mark.parametrize(("method", "path"), NOT_ROUTES)
def test_never_html(gateway: Server, method: str, path: str) -> None:
    reply = wire.request(method, f"{gateway.base}{path}", key=GATEWAY_KEY)

    assert reply.status in (404, 405)
    assert reply.content_type.startswith("application/json") and b"<html" not in reply.body.lower()
    body = reply.json()
    if path.startswith("/api/"):
        assert {"code", "message", "request_id"} <= body.keys()
    else:
        assert {"message", "type", "code"} <= body["error"].keys()


def test_openapi_lists_the_routes(gateway: Server) -> None:
    reply = wire.request("GET", f"{gateway.base}/openapi.json", key=None)

    assert reply.status == 200 and reply.content_type.startswith("application/json")
    doc = reply.json()
    assert doc["openapi"].startswith("3.")
    assert {
        "/v1/chat/completions",
        "/compatible-mode/v1/chat/completions",
        "/v1/models",
        "/compatible-mode/v1/models",
        "/api/v1/services/aigc/text-generation/generation",
        "/api/v1/services/aigc/multimodal-generation/generation",
    } <= doc["paths"].keys()
    assert "post" in doc["paths"]["/compatible-mode/v1/chat/completions"]


def test_models_list(gateway: Server) -> None:
    ids = {m.id for m in sdk(gateway).models.list()}
    assert {"qwen-plus", "qwen3-vl-plus"} <= ids

    with pytest.raises(openai.AuthenticationError):
        openai_client(gateway.compat, "sk-wrong", max_retries=0).models.list()


def test_multimodal_endpoint_takes_openai_style_items(gateway: Server) -> None:
    """Native items in both forms, ``{"text"}`` and ``{"type": "text", "text"}``."""
    content = [{"image": "https://example.com/a.png"}, {"type": "text", "text": "hi there"}]
    reply = wire.post(
        f"{gateway.native}{MULTIMODAL_PATH}",
        {"model": "qwen3-vl-plus", "input": {"messages": [{"role": "user", "content": content}]}},
        key=GATEWAY_KEY,
    )
    assert reply.status == 200, reply.body
    assert reply.json()["output"]["choices"][0]["message"]["content"] == [{"text": f"I see 1 image. {ANSWER}"}]


def test_sse_is_chosen_by_header_only(gateway: Server) -> None:
    """Native: no SSE header -> one JSON body even with ``stream`` in the body; compat: ``Accept``
    is ignored, only ``"stream": true`` streams."""
    reply = wire.post(
        f"{gateway.native}{TEXT_PATH}", {"model": "qwen-plus", "input": HI_NATIVE, "stream": True}, key=GATEWAY_KEY
    )
    assert reply.status == 200 and reply.content_type.startswith("application/json"), reply.headers
    accept = wire.post(
        f"{gateway.native}{TEXT_PATH}",
        {"model": "qwen-plus", "input": HI_NATIVE},
        {"Accept": "text/event-stream"},
        key=GATEWAY_KEY,
    )
    assert accept.content_type.startswith("text/event-stream")
    disabled = wire.post(
        f"{gateway.native}{TEXT_PATH}",
        {"model": "qwen-plus", "input": HI_NATIVE},
        {"X-DashScope-SSE": "disable"},
        key=GATEWAY_KEY,
    )
    assert disabled.content_type.startswith("application/json")
    compat = wire.post(
        f"{gateway.compat}/chat/completions",
        {"model": "qwen-plus", "messages": HI},
        {"Accept": "text/event-stream"},
        key=GATEWAY_KEY,
    )
    assert compat.content_type.startswith("application/json")
    assert SSE  # the header the DashScope SDK sends


# --- a pooled upstream connection reset by the upstream ----------------------------------------------------


@pytest.fixture
def pooled_reset(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, ResettingUpstream]]:
    """A gateway whose ``qwen-plus`` goes to a ``ResettingUpstream``, after one answered request:
    its connection to the upstream now idles in the pool, and the upstream will reset it."""
    with ResettingUpstream() as upstream:
        models = {"qwen-plus": {"backend": "upstream", "base_url": upstream.base_url, "capabilities": ["text"]}}
        server = start_serve("resetting", tmp_path_factory.mktemp("resetting-serve"), models=models)
        try:
            url = f"{server.compat}/chat/completions"
            first = wire.post(url, {"model": "qwen-plus", "messages": HI})
            assert first.status == 200 and first.json()["choices"][0]["message"]["content"] == "pong", first.body
            assert (upstream.connections, upstream.resets) == (1, 0)
            yield url, upstream
        finally:
            server.stop()


def test_reset_of_a_pooled_connection_is_retried(pooled_reset: tuple[str, ResettingUpstream]) -> None:
    url, upstream = pooled_reset
    second = wire.post(url, {"model": "qwen-plus", "messages": HI})  # reuses the pooled connection: reset

    assert upstream.resets == 1
    assert second.status == 200, second.body  # nothing was answered: the request is safe to send again
    assert second.json()["choices"][0]["message"]["content"] == "pong"
    assert upstream.connections == 2
