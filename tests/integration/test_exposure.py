"""Exposure (issue 17, part 4) against a real ``multiturn serve`` in front of the fake upstream:
POST bodies only as JSON (415 in each protocol's shape, nothing stored), CORS off unless origins
are configured, and upstream failures shown to clients as a generic message with the request id
(the URL and the HTTP library's words only in the server log)."""

from __future__ import annotations

import json
import socket
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dashscope
import httpx
import openai
import pytest

from support.fake_upstream import FakeUpstream
from support.serve import Server, start_serve

NATIVE = "/api/v1/services/aigc/text-generation/generation"
UNREACHABLE = "closed-port"
FAILING = "error-500"
RESET = "reset-after-3"


def _closed_port() -> int:
    with socket.socket() as sock:  # nobody listens on it once closed
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeUpstream]:
    with FakeUpstream() as server:
        yield server


@pytest.fixture(scope="module")
def closed_url() -> str:
    return f"http://127.0.0.1:{_closed_port()}/v1"


def _models(fake: FakeUpstream, closed_url: str) -> dict[str, Any]:
    def alias(base: str, **more: Any) -> dict[str, Any]:
        return {"backend": "upstream", "base_url": base, "capabilities": ["text"], **more}

    return {
        "qwen-plus": alias(fake.base_url),
        FAILING: alias(fake.base_url),
        RESET: alias(fake.base_url),
        UNREACHABLE: alias(closed_url, model="qwen-plus"),
    }


@pytest.fixture(scope="module")
def server(fake: FakeUpstream, closed_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    started = start_serve(
        "exposure",
        tmp_path_factory.mktemp("exposure"),
        models=_models(fake, closed_url),
        env={"MULTITURN_EMBEDDER": "none", "MULTITURN_UPSTREAM_RETRIES": "0"},
    )
    try:
        yield started
    finally:
        started.stop()


def _rows(server: Server, sql: str) -> list[sqlite3.Row]:
    with sqlite3.connect(server.home / "gateway.db") as db:
        db.row_factory = sqlite3.Row
        return list(db.execute(sql))


# --- 415 ------------------------------------------------------------------------------------

BODIES = {
    "/v1/chat/completions": {"model": "qwen-plus", "messages": [{"role": "user", "content": "hi"}]},
    "/compatible-mode/v1/chat/completions": {"model": "qwen-plus", "messages": [{"role": "user", "content": "hi"}]},
    "/v1/responses": {"model": "qwen-plus", "input": "hi"},
    "/v1/conversations": {"items": [{"type": "message", "role": "user", "content": "hi"}]},
    NATIVE: {"model": "qwen-plus", "input": {"messages": [{"role": "user", "content": "hi"}]}},
}
REFUSED_TYPES = [
    "text/plain",
    "text/plain;charset=UTF-8",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    None,
    "application/jsonx",
    "application/+json",
]


@pytest.mark.parametrize("path", list(BODIES))
@pytest.mark.parametrize("content_type", REFUSED_TYPES)
def test_a_body_not_declared_json_is_415_in_the_protocol_shape_and_nothing_is_stored(
    server: Server, fake: FakeUpstream, path: str, content_type: str | None
) -> None:
    upstream_calls = len(fake.requests)
    headers = {"content-type": content_type} if content_type else {}
    reply = httpx.post(f"{server.base}{path}", content=json.dumps(BODIES[path]), headers=headers, timeout=30)

    assert reply.status_code == 415, reply.text
    body = reply.json()
    if path.startswith("/api/"):
        assert set(body) == {"request_id", "code", "message"}
        assert body["request_id"] == reply.headers["x-request-id"]
    else:
        assert set(body["error"]) == {"message", "type", "param", "code"}
    assert "application/json" in str(body)
    assert len(fake.requests) == upstream_calls
    assert _rows(server, "SELECT id FROM conversations") == []
    assert _rows(server, "SELECT id FROM responses") == []


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "application/json; charset=utf-8", "Application/JSON", "application/vnd.api+json"],
)
def test_json_media_types_are_accepted(server: Server, content_type: str) -> None:
    path = "/v1/chat/completions"
    reply = httpx.post(
        f"{server.base}{path}", content=json.dumps(BODIES[path]), headers={"content-type": content_type}, timeout=30
    )

    assert reply.status_code == 200, reply.text
    assert reply.json()["choices"][0]["message"]["content"] == "You said: hi"


def test_the_official_sdks_still_work(server: Server) -> None:
    client = openai.OpenAI(base_url=f"{server.base}/v1", api_key="sk-any", max_retries=0)
    chat = client.chat.completions.create(model="qwen-plus", messages=[{"role": "user", "content": "hello"}])
    assert chat.choices[0].message.content == "You said: hello"
    conversation = client.conversations.create()
    response = client.responses.create(model="qwen-plus", input="again", conversation=conversation.id)
    assert response.output_text == "You said: again"
    native = dashscope.Generation.call(
        model="qwen-plus",
        messages=[{"role": "user", "content": "native"}],
        result_format="message",
        api_key="sk-any",
        base_address=f"{server.base}/api/v1",
    )
    assert native.status_code == 200, native
    assert native.output.choices[0].message.content == "You said: native"


# --- CORS -----------------------------------------------------------------------------------

ORIGIN = "https://app.example"


def _preflight(server: Server) -> httpx.Response:
    return httpx.options(
        f"{server.base}/v1/chat/completions",
        headers={
            "origin": ORIGIN,
            "access-control-request-method": "POST",
            "access-control-request-headers": "content-type,authorization",
        },
        timeout=30,
    )


def test_cors_is_off_unless_origins_are_configured(
    server: Server, fake: FakeUpstream, closed_url: str, tmp_path: Path
) -> None:
    off = _preflight(server)
    assert "access-control-allow-origin" not in off.headers
    simple = httpx.post(
        f"{server.base}/v1/chat/completions", json=BODIES["/v1/chat/completions"], headers={"origin": ORIGIN}
    )
    assert "access-control-allow-origin" not in simple.headers

    configured = start_serve(
        "cors",
        tmp_path / "cors",
        models=_models(fake, closed_url),
        env={"MULTITURN_EMBEDDER": "none", "MULTITURN_CORS_ORIGINS": json.dumps([ORIGIN])},
    )
    try:
        on = _preflight(configured)
        assert on.status_code == 200
        assert on.headers["access-control-allow-origin"] == ORIGIN
        other = httpx.options(
            f"{configured.base}/v1/chat/completions",
            headers={"origin": "https://evil.example", "access-control-request-method": "POST"},
        )
        assert "access-control-allow-origin" not in other.headers
    finally:
        configured.stop()


# --- upstream failures ----------------------------------------------------------------------


def _assert_hidden(text: str, server: Server, closed_url: str, fake: FakeUpstream) -> None:
    for secret in (closed_url, closed_url.split("//")[1].split("/")[0], fake.base_url, f"127.0.0.1:{fake.port}"):
        assert secret not in text
    for words in (
        "Cannot connect",
        "Connection refused",
        "internal error has occured",
        "mid-stream",
        "upstream error 500",
    ):
        assert words not in text


def _assert_logged(server: Server, rid: str, *needles: str) -> None:
    lines = [line for line in server.log().splitlines() if rid in line]
    assert lines, f"no log line names request {rid}"
    assert any(all(n in line for n in needles) for line in lines), lines


def _generic(rid: str) -> str:
    return f"the upstream model service failed (request {rid})"


@pytest.mark.parametrize("model", [UNREACHABLE, FAILING])
def test_a_failed_upstream_is_a_generic_502_on_chat_completions(
    server: Server, fake: FakeUpstream, closed_url: str, model: str
) -> None:
    client = openai.OpenAI(base_url=f"{server.base}/v1", api_key="sk-any", max_retries=0)
    for stream in (False, True):
        with pytest.raises(openai.InternalServerError) as caught:
            reply = client.chat.completions.create(
                model=model, messages=[{"role": "user", "content": "hi"}], stream=stream
            )
            if stream:
                list(reply)
        response = caught.value.response
        rid = response.headers["x-request-id"]
        assert response.status_code == 502
        assert response.json()["error"]["message"] == _generic(rid)
        _assert_hidden(response.text, server, closed_url, fake)
        detail = ("Cannot connect", closed_url.split("//")[1].split("/")[0]) if model == UNREACHABLE else ("500",)
        _assert_logged(server, rid, *detail)


def test_a_stream_the_upstream_breaks_ends_with_a_generic_error_event(
    server: Server, fake: FakeUpstream, closed_url: str
) -> None:
    body = {"model": RESET, "messages": [{"role": "user", "content": "one two three four"}], "stream": True}
    with httpx.stream("POST", f"{server.base}/v1/chat/completions", json=body, timeout=30) as reply:
        raw = reply.read().decode()
        rid = reply.headers["x-request-id"]
    assert reply.status_code == 200
    error = json.loads(raw.strip().split("\n\n")[-1].removeprefix("data: "))["error"]
    assert error["message"] == _generic(rid)
    _assert_hidden(raw, server, closed_url, fake)
    _assert_logged(server, rid, "mid-stream")

    client = openai.OpenAI(base_url=f"{server.base}/v1", api_key="sk-any", max_retries=0)
    with pytest.raises(openai.APIError, match=r"the upstream model service failed \(request "):
        list(client.chat.completions.create(**body))


@pytest.mark.parametrize("model", [UNREACHABLE, FAILING, RESET])
def test_dashscope_native_shows_the_generic_message(
    server: Server, fake: FakeUpstream, closed_url: str, model: str
) -> None:
    body = {"model": model, "input": {"messages": [{"role": "user", "content": "one two three"}]}}
    if model != RESET:
        reply = httpx.post(f"{server.base}{NATIVE}", json=body, timeout=30)
        rid = reply.headers["x-request-id"]
        assert reply.status_code == 502
        assert reply.json() == {"request_id": rid, "code": "InternalError", "message": _generic(rid)}
        _assert_hidden(reply.text, server, closed_url, fake)
        _assert_logged(server, rid, "UpstreamError")
    headers = {"accept": "text/event-stream", "x-dashscope-sse": "enable"}
    with httpx.stream("POST", f"{server.base}{NATIVE}", json=body, headers=headers, timeout=30) as streamed:
        raw = streamed.read().decode()
        rid = streamed.headers["x-request-id"]
    assert _generic(rid) in raw
    _assert_hidden(raw, server, closed_url, fake)
    _assert_logged(server, rid, "UpstreamError")


@pytest.mark.parametrize("model", [UNREACHABLE, FAILING])
def test_a_stored_response_keeps_the_generic_message(
    server: Server, fake: FakeUpstream, closed_url: str, model: str
) -> None:
    reply = httpx.post(f"{server.base}/v1/responses", json={"model": model, "input": "stored"}, timeout=30)
    rid = reply.headers["x-request-id"]
    assert reply.status_code == 502
    assert reply.json()["error"]["message"] == _generic(rid)
    _assert_hidden(reply.text, server, closed_url, fake)
    _assert_logged(server, rid, "UpstreamError")
    stored = [json.loads(row["error"]) for row in _rows(server, "SELECT error FROM responses WHERE status = 'failed'")]
    assert {"code": "server_error", "message": _generic(rid)} in stored
    for error in stored:
        _assert_hidden(json.dumps(error), server, closed_url, fake)


@pytest.mark.parametrize("store", [True, False])
def test_a_streamed_response_the_upstream_breaks_shows_and_keeps_the_generic_message(
    server: Server, fake: FakeUpstream, closed_url: str, store: bool
) -> None:
    body = {"model": RESET, "input": "one two three four", "stream": True, "store": store}
    with httpx.stream("POST", f"{server.base}/v1/responses", json=body, timeout=30) as reply:
        raw = reply.read().decode()
        rid = reply.headers["x-request-id"]
    events = [json.loads(e.split("data: ", 1)[1]) for e in raw.strip().split("\n\n") if "data: " in e]
    failed = events[-1]
    assert failed["type"] == "response.failed"
    assert failed["response"]["error"]["message"] == _generic(rid)
    _assert_hidden(raw, server, closed_url, fake)
    _assert_logged(server, rid, "mid-stream")
    if store:
        again = httpx.get(f"{server.base}/v1/responses/{failed['response']['id']}", timeout=30)
        assert again.json()["error"]["message"] == _generic(rid)
        _assert_hidden(again.text, server, closed_url, fake)

    client = openai.OpenAI(base_url=f"{server.base}/v1", api_key="sk-any", max_retries=0)
    with client.responses.stream(model=RESET, input="one two three four", store=store) as sdk_stream:
        kinds = [event.type for event in sdk_stream]
    assert kinds[-1] == "response.failed"


def test_an_upstream_refusing_the_gateways_key_is_a_502_not_the_clients_401(tmp_path: Path) -> None:
    with FakeUpstream(api_key="sk-upstream-right") as guarded:
        alias = {"backend": "upstream", "base_url": guarded.base_url, "api_key": "sk-upstream-wrong"}
        configured = start_serve(
            "wrong-upstream-key", tmp_path / "gw", models={"qwen-plus": alias}, env={"MULTITURN_EMBEDDER": "none"}
        )
        try:
            client = openai.OpenAI(base_url=f"{configured.base}/v1", api_key="sk-any", max_retries=0)
            with pytest.raises(openai.InternalServerError) as caught:
                client.chat.completions.create(model="qwen-plus", messages=[{"role": "user", "content": "hi"}])
            response = caught.value.response
            rid = response.headers["x-request-id"]
            assert response.status_code == 502
            assert response.json()["error"]["message"] == _generic(rid)
            assert "Incorrect API key" not in response.text
            _assert_logged(configured, rid, "401", "Incorrect API key")
        finally:
            configured.stop()
