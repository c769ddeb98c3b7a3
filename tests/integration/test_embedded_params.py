"""No silent yes on the embedded model: a parameter it cannot honour is refused with a 400 in the
protocol's shape naming it, before anything is generated or stored (``n`` above 1, log
probabilities, thinking on a model that does not think, an unknown backend-specific field); the
labels that change no answer (``user``, ``metadata``) pass. An upstream alias passes every
parameter on: the server behind it answers for them."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Any

import dashscope
import httpx
import openai
import pytest

from support.fake_upstream import FakeUpstream
from support.serve import Server, serving

pytestmark = pytest.mark.model

ASK = [{"role": "user", "content": "Say hi."}]
SHORT: dict[str, Any] = {"max_tokens": 4, "temperature": 0}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, upstream: FakeUpstream) -> Iterator[Server]:
    models = {
        "qwen-plus": {"backend": "embedded"},
        "remote": {"backend": "upstream", "base_url": upstream.base_url, "model": "qwen-plus"},
    }
    with serving("params", tmp_path_factory.mktemp("params"), models=models) as started:
        yield started


@pytest.fixture(scope="module")
def client(server: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.base}/v1", api_key="any", max_retries=0)


def _stored(server: Server) -> tuple[int, int]:
    with sqlite3.connect(server.home / "gateway.db") as db:
        return (
            db.execute("SELECT count(*) FROM items").fetchone()[0],
            db.execute("SELECT count(*) FROM responses").fetchone()[0],
        )


REFUSED: list[tuple[str, dict[str, Any]]] = [
    ("n", {"n": 2}),
    ("logprobs", {"logprobs": True}),
    ("top_logprobs", {"logprobs": True, "top_logprobs": 2}),
    ("enable_thinking", {"extra_body": {"enable_thinking": True}}),
    ("thinking_budget", {"extra_body": {"thinking_budget": 100}}),
    ("enable_search", {"extra_body": {"enable_search": True}}),
    ("service_tier", {"service_tier": "flex"}),
]


@pytest.mark.parametrize(("param", "extra"), REFUSED, ids=[p for p, _ in REFUSED])
@pytest.mark.parametrize("stream", [False, True])
def test_a_parameter_the_embedded_model_cannot_honour_is_refused(
    client: openai.OpenAI, param: str, extra: dict[str, Any], stream: bool
) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        reply = client.chat.completions.create(model="qwen-plus", messages=ASK, stream=stream, **SHORT, **extra)
        list(reply) if stream else None
    assert refused.value.param == param or (param == "top_logprobs" and refused.value.param == "logprobs")
    assert "embedded" in refused.value.message


def test_a_stored_turn_with_such_a_parameter_stores_nothing(server: Server, client: openai.OpenAI) -> None:
    conversation = client.conversations.create()
    before = _stored(server)
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(
            model="qwen-plus", messages=ASK, n=2, extra_body={"conversation": conversation.id}, **SHORT
        )
    with pytest.raises(openai.BadRequestError):
        client.responses.create(model="qwen-plus", input="hi", extra_body={"enable_thinking": True})
    assert _stored(server) == before


def test_labels_that_change_no_answer_pass(client: openai.OpenAI) -> None:
    done = client.chat.completions.create(
        model="qwen-plus", messages=ASK, user="someone", n=1, extra_body={"enable_thinking": False}, **SHORT
    )
    assert done.choices[0].message.content


def test_dashscope_native_refuses_in_its_own_shape(server: Server) -> None:
    body = {"model": "qwen-plus", "input": {"messages": ASK}, "parameters": {"enable_search": True, "max_tokens": 4}}
    refused = httpx.post(f"{server.native}/services/aigc/text-generation/generation", json=body, timeout=60)
    assert refused.status_code == 400
    assert refused.json()["code"] == "InvalidParameter" and "enable_search" in refused.json()["message"]
    dashscope.base_http_api_url = server.native
    thinking = dashscope.Generation.call(
        api_key="any", model="qwen-plus", messages=ASK, enable_thinking=True, result_format="message", max_tokens=4
    )
    assert thinking.status_code == 400 and "enable_thinking" in thinking.message


def test_an_upstream_alias_passes_every_parameter_on(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    seen = len(upstream.requests)
    client.chat.completions.create(
        model="remote", messages=ASK, n=1, extra_body={"enable_thinking": True, "enable_search": True}
    )
    [sent] = [r.body for r in upstream.requests[seen:] if r.path.endswith("/chat/completions")]
    assert sent["enable_thinking"] is True and sent["enable_search"] is True


@pytest.mark.parametrize(("param", "extra"), [("n", {"n": 2}), ("logprobs", {"logprobs": True})])
def test_what_multiturn_cannot_bring_back_from_an_upstream_is_refused(
    client: openai.OpenAI, upstream: FakeUpstream, param: str, extra: dict[str, Any]
) -> None:
    seen = len(upstream.requests)
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model="remote", messages=ASK, **extra)
    assert refused.value.param == param
    assert len(upstream.requests) == seen  # refused before the upstream was asked


def test_a_schema_the_grammar_cannot_express_is_refused_before_anything_is_stored(
    server: Server, client: openai.OpenAI
) -> None:
    before = _stored(server)
    odd = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "foo"}}}
    with pytest.raises(openai.BadRequestError) as chat:
        client.chat.completions.create(model="qwen-plus", messages=ASK, response_format=odd, **SHORT)  # type: ignore[arg-type]
    assert chat.value.param == "response_format" and "cannot be enforced" in chat.value.message
    fmt = {"format": {"type": "json_schema", "name": "x", "schema": {"type": "foo"}}}
    with pytest.raises(openai.BadRequestError) as stored:
        client.responses.create(model="qwen-plus", input="hi", text=fmt)  # type: ignore[arg-type]
    assert "cannot be enforced" in stored.value.message
    assert _stored(server) == before
