"""Limits (issue 17, part 5) against a real ``multiturn serve`` in front of the fake upstream:
per-key request rate and concurrent streams (429 in each protocol's shape with Retry-After),
the upstream first-byte timeout (504 before the response, an error event inside a stream, the
stored turn failed, the upstream connection dropped), and SSE keep-alive comments that the
official SDKs skip."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dashscope
import httpx
import openai
import pytest

from support.fake_upstream import FakeUpstream
from support.serve import Server, start_serve

NATIVE = "/api/v1/services/aigc/text-generation/generation"
HELLO = [{"role": "user", "content": "one two three"}]
MODELS = ("qwen-plus", "hang", "delay-0.6", "delay-3", "mute-3", "stall-30", "stall-0.5")


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeUpstream]:
    with FakeUpstream() as server:
        yield server


@pytest.fixture
def serve(fake: FakeUpstream, tmp_path: Path) -> Iterator[Callable[..., Server]]:
    started: list[Server] = []

    def start(**env: str) -> Server:
        models = {m: {"backend": "upstream", "base_url": fake.base_url, "capabilities": ["text"]} for m in MODELS}
        settings = {"MULTITURN_EMBEDDER": "none", "MULTITURN_UPSTREAM_RETRIES": "0", "MULTITURN_SSE_KEEPALIVE": "0"}
        server = start_serve("limits", tmp_path / f"gateway-{len(started)}", models=models, env=settings | env)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def _sdk(server: Server, key: str = "sk-any") -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.base}/v1", api_key=key, max_retries=0)


def _rows(server: Server, sql: str) -> list[sqlite3.Row]:
    with sqlite3.connect(server.home / "gateway.db") as db:
        db.row_factory = sqlite3.Row
        return list(db.execute(sql))


def _until(check: Callable[[], bool], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def _native(server: Server, key: str, *, stream: bool = False, model: str = "qwen-plus") -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"}
    if stream:
        headers |= {"accept": "text/event-stream", "x-dashscope-sse": "enable"}
    body = {"model": model, "input": {"messages": HELLO}}
    return httpx.post(f"{server.base}{NATIVE}", json=body, headers=headers, timeout=30)


# --- request rate ---------------------------------------------------------------------------


def test_each_key_has_its_own_request_rate_in_each_protocol(serve: Callable[..., Server]) -> None:
    keys = ["k-openai", "k-native", "k-responses", "k-other"]
    server = serve(MULTITURN_API_KEYS=json.dumps(keys), MULTITURN_RATE_LIMIT_REQUESTS="2")

    chat = _sdk(server, "k-openai")
    for _ in range(2):
        assert chat.chat.completions.create(model="qwen-plus", messages=HELLO).choices[0].message.content
    with pytest.raises(openai.RateLimitError) as caught:
        chat.chat.completions.create(model="qwen-plus", messages=HELLO)
    assert 1 <= int(caught.value.response.headers["retry-after"]) <= 60
    assert caught.value.response.json()["error"]["code"] == "limit_requests"

    assert [_native(server, "k-native").status_code for _ in range(2)] == [200, 200]
    refused = _native(server, "k-native")
    assert refused.status_code == 429
    assert refused.json() == {
        "request_id": refused.headers["x-request-id"],
        "code": "Throttling.RateQuota",
        "message": refused.json()["message"],
    }
    assert int(refused.headers["retry-after"]) >= 1

    responses = _sdk(server, "k-responses")
    for _ in range(2):
        assert responses.responses.create(model="qwen-plus", input="hi").output_text == "You said: hi"
    with pytest.raises(openai.RateLimitError) as caught:
        responses.responses.create(model="qwen-plus", input="refused")
    assert int(caught.value.response.headers["retry-after"]) >= 1
    assert len(_rows(server, "SELECT id FROM responses")) == 2  # the refused one stored nothing

    # Another key is not limited by the others' use.
    assert _sdk(server, "k-other").chat.completions.create(model="qwen-plus", messages=HELLO).choices


def test_without_keys_every_request_shares_one_bucket(serve: Callable[..., Server]) -> None:
    server = serve(MULTITURN_RATE_LIMIT_REQUESTS="1")

    assert _sdk(server, "sk-a").chat.completions.create(model="qwen-plus", messages=HELLO).choices
    with pytest.raises(openai.RateLimitError):
        _sdk(server, "sk-b").chat.completions.create(model="qwen-plus", messages=HELLO)


def test_limits_are_off_unless_configured(serve: Callable[..., Server]) -> None:
    server = serve()
    client = _sdk(server)
    for _ in range(12):
        assert client.chat.completions.create(model="qwen-plus", messages=HELLO).choices
    with httpx.stream(
        "POST", f"{server.base}/v1/chat/completions", json={"model": "stall-30", "messages": HELLO, "stream": True}
    ) as held:
        assert held.status_code == 200
        chunks = held.iter_raw()
        next(chunks)
        streamed = client.chat.completions.create(model="qwen-plus", messages=HELLO, stream=True)
        assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == "You said: one two three"


# --- concurrent streams ---------------------------------------------------------------------


def test_concurrent_streams_are_limited_per_key_until_a_stream_ends(
    serve: Callable[..., Server], fake: FakeUpstream
) -> None:
    server = serve(MULTITURN_MAX_CONCURRENT_STREAMS="1")
    client = _sdk(server)
    body = {"model": "stall-30", "messages": HELLO, "stream": True}
    with httpx.stream("POST", f"{server.base}/v1/chat/completions", json=body, timeout=30) as held:
        assert held.status_code == 200
        chunks = held.iter_raw()  # kept referenced: a collected iterator closes the response
        next(chunks)  # the stream is open and waits on the upstream

        with pytest.raises(openai.RateLimitError) as caught:
            client.chat.completions.create(model="qwen-plus", messages=HELLO, stream=True)
        assert caught.value.response.headers["retry-after"] == "1"

        native = _native(server, "sk-any", stream=True)
        assert native.status_code == 429
        assert native.json()["code"] == "Throttling.RateQuota"
        assert native.headers["retry-after"] == "1"

        with pytest.raises(openai.RateLimitError):
            client.responses.create(model="qwen-plus", input="refused", stream=True)
        assert _rows(server, "SELECT id FROM responses") == []

        # What is not a stream is not counted.
        assert client.chat.completions.create(model="qwen-plus", messages=HELLO).choices

    # The held stream ended when its client left: the slot is free again.
    def streams() -> bool:
        try:
            chunks = client.chat.completions.create(model="qwen-plus", messages=HELLO, stream=True)
            return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "You said: one two three"
        except openai.RateLimitError:
            return False

    _until(streams)


# --- upstream first-byte timeout ------------------------------------------------------------


def _generic_timeout(rid: str) -> str:
    return f"the upstream model service did not answer in time (request {rid})"


def test_an_upstream_silent_past_the_first_byte_timeout_is_a_504(
    serve: Callable[..., Server], fake: FakeUpstream
) -> None:
    server = serve(MULTITURN_UPSTREAM_FIRST_BYTE_TIMEOUT="0.5")
    client = _sdk(server)

    for model, stream in (("hang", True), ("mute-3", True), ("delay-3", True)):
        sent = len(fake.requests)
        started = time.monotonic()
        with pytest.raises(openai.APIStatusError) as caught:
            reply = client.chat.completions.create(model=model, messages=HELLO, stream=stream)
            list(reply) if stream else None
        assert time.monotonic() - started < 2.5
        response = caught.value.response
        assert response.status_code == 504, (model, stream)
        assert response.json()["error"]["message"] == _generic_timeout(response.headers["x-request-id"])
        assert response.json()["error"]["code"] == "timeout"
        _until(lambda sent=sent: sent in fake.disconnects)  # the upstream connection was dropped

    native = _native(server, "sk-any", model="hang", stream=True)
    assert native.status_code == 504
    assert native.json()["code"] == "RequestTimeOut"

    # A non-streamed upstream call sends its first byte with its whole answer: a long answer is
    # not a silent upstream, and only the read timeout bounds it.
    slow = client.chat.completions.create(model="delay-3", messages=HELLO)
    assert slow.choices[0].message.content

    body = {"model": "hang", "input": "slow", "stream": True}
    stored = httpx.post(f"{server.base}/v1/responses", json=body, timeout=30)
    assert stored.status_code == 504
    [row] = _rows(server, "SELECT status, error FROM responses")
    assert row["status"] == "failed"
    assert json.loads(row["error"])["message"] == _generic_timeout(stored.headers["x-request-id"])
    assert "sent no byte within 0.5 s" in server.log()


# --- keep-alive -----------------------------------------------------------------------------


def test_a_silent_upstream_gets_keep_alive_comments_that_the_sdks_skip(
    serve: Callable[..., Server], fake: FakeUpstream
) -> None:
    server = serve(MULTITURN_SSE_KEEPALIVE="0.2", MULTITURN_UPSTREAM_FIRST_BYTE_TIMEOUT="1.5")
    client = _sdk(server)

    for model in ("stall-0.5", "delay-0.6"):
        body = {"model": model, "messages": HELLO, "stream": True}
        started = time.monotonic()
        with httpx.stream("POST", f"{server.base}/v1/chat/completions", json=body, timeout=30) as raw:
            headers_after = time.monotonic() - started
            data = raw.read()
        assert raw.status_code == 200
        assert b"\n\n: keep-alive\n\n" in data, data
        assert data.rstrip().endswith(b"data: [DONE]")
        if model.startswith("delay"):
            assert headers_after < 0.55  # headers after one keep-alive interval, not after the upstream's 0.6 s

        chunks = client.chat.completions.create(model=model, messages=HELLO, stream=True)
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "You said: one two three"

    with client.responses.stream(model="stall-0.5", input="one two three") as events:
        assert events.get_final_response().output_text == "You said: one two three"

    dashscope_chunks = dashscope.Generation.call(
        model="stall-0.5",
        messages=HELLO,
        result_format="message",
        stream=True,
        incremental_output=True,
        api_key="sk-any",
        base_address=f"{server.base}/api/v1",
    )
    pieces = []
    for chunk in dashscope_chunks:
        assert chunk.status_code == 200, chunk
        pieces.append(chunk.output.choices[0].message.content)
    assert "".join(pieces) == "You said: one two three"


def test_a_first_byte_timeout_after_the_stream_started_is_an_error_event(
    serve: Callable[..., Server], fake: FakeUpstream
) -> None:
    server = serve(MULTITURN_SSE_KEEPALIVE="0.2", MULTITURN_UPSTREAM_FIRST_BYTE_TIMEOUT="0.7")
    client = _sdk(server)
    sent = len(fake.requests)

    body: dict[str, Any] = {"model": "hang", "input": "anyone?", "stream": True}
    with httpx.stream("POST", f"{server.base}/v1/responses", json=body, timeout=30) as raw:
        data = raw.read().decode()
        rid = raw.headers["x-request-id"]
    assert raw.status_code == 200
    assert ": keep-alive" in data
    failed = json.loads(data.strip().split("\n\n")[-1].split("data: ", 1)[1])
    assert failed["type"] == "response.failed"
    assert failed["response"]["error"]["message"] == _generic_timeout(rid)
    _until(lambda: sent in fake.disconnects)
    [row] = _rows(server, "SELECT status FROM responses")
    assert row["status"] == "failed"

    with pytest.raises(openai.APIError, match="did not answer in time"):
        list(client.chat.completions.create(model="hang", messages=HELLO, stream=True))
