"""Validation at the edge, on a real gateway (SQLite and PostgreSQL): every out-of-range or
overflowing field is a 400 in the protocol's own error shape naming the field, and nothing is
stored; more input items than ``max_input_items`` or more bytes than ``max_turn_bytes`` likewise;
10,000 input items are one stored turn, in order, and a fork copies them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest

from compat.calls import close_clients, openai_client
from compat.upstreams import PatientFakeUpstream
from support.fake_upstream import FakeUpstream

from .edge import CHAT, CONVERSATIONS, MODEL, MULTIMODAL, RESPONSES, TEXT, TURN_BYTES, Edge, serving

HUGE = 2**70
USER = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeUpstream]:
    with PatientFakeUpstream() as server:
        yield server


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def edge(
    request: pytest.FixtureRequest, fake: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Edge]:
    with serving(request.param, fake, tmp_path_factory.mktemp(f"edge-{request.param}")) as gateway:
        yield gateway
    close_clients()


def chat(**fields: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": USER, **fields}


def native(**parameters: Any) -> dict[str, Any]:
    return {"model": MODEL, "input": {"messages": USER}, "parameters": parameters}


def response(**fields: Any) -> dict[str, Any]:
    return {"model": MODEL, "input": "hi", **fields}


def image(**hints: Any) -> list[dict[str, Any]]:
    return [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/a.png"}, **hints}]}]


DEEP: list[Any] = []
for _ in range(300):  # deeper than an upstream body can carry (orjson reads 1,024 levels, writes 254)
    DEEP = [DEEP]
PAIRS_17 = {f"k{i}": "v" for i in range(17)}
TOOLS_129 = [{"type": "function", "function": {"name": f"f{i}"}} for i in range(129)]
INFINITE = b'{"model": "qwen-plus", "messages": [{"role": "user", "content": "hi"}], "temperature": 1e400}'

OPENAI_CASES: list[tuple[str, str, Any, str]] = [
    # chat completions
    ("chat-max_tokens-overflow", CHAT, chat(max_tokens=HUGE), "max_tokens"),
    ("chat-max_completion_tokens-zero", CHAT, chat(max_completion_tokens=0), "max_completion_tokens"),
    ("chat-top_k-overflow", CHAT, chat(top_k=HUGE), "top_k"),
    ("chat-thinking_budget-overflow", CHAT, chat(thinking_budget=HUGE), "thinking_budget"),
    ("chat-seed-overflow", CHAT, chat(seed=2**64), "seed"),
    ("chat-n", CHAT, chat(n=5), "n"),
    ("chat-top_logprobs", CHAT, chat(top_logprobs=6), "top_logprobs"),
    ("chat-temperature-infinite", CHAT, INFINITE, "temperature"),
    ("chat-stop-17", CHAT, chat(stop=[str(i) for i in range(17)]), "stop"),
    ("chat-tools-129", CHAT, chat(tools=TOOLS_129), "tools"),
    ("chat-tool-name-65", CHAT, chat(tools=[{"type": "function", "function": {"name": "f" * 65}}]), "tools"),
    ("chat-metadata-17", CHAT, chat(metadata=PAIRS_17), "metadata"),
    ("chat-unknown-field-overflow", CHAT, chat(vendor_knob=HUGE), "vendor_knob"),
    (
        "chat-json_schema-overflow",
        CHAT,
        chat(response_format={"type": "json_schema", "json_schema": {"maximum": HUGE}}),
        "response_format",
    ),
    ("chat-min_pixels-overflow", CHAT, chat(messages=image(min_pixels=HUGE)), "messages"),
    # Responses
    ("responses-max_output_tokens-overflow", RESPONSES, response(max_output_tokens=HUGE), "max_output_tokens"),
    ("responses-max_output_tokens-zero", RESPONSES, response(max_output_tokens=0), "max_output_tokens"),
    ("responses-temperature", RESPONSES, response(temperature=2), "temperature"),
    ("responses-top_p", RESPONSES, response(top_p=0), "top_p"),
    ("responses-metadata-17", RESPONSES, response(metadata=PAIRS_17), "metadata"),
    ("responses-metadata-key-65", RESPONSES, response(metadata={"k" * 65: "v"}), "metadata"),
    ("responses-metadata-value-513", RESPONSES, response(metadata={"k": "v" * 513}), "metadata"),
    ("responses-previous-id-129", RESPONSES, response(previous_response_id="r" * 129), "previous_response_id"),
    ("responses-model-257", RESPONSES, {"model": "m" * 257, "input": "hi"}, "model"),
    # Conversations
    ("conversations-metadata-17", CONVERSATIONS, {"metadata": PAIRS_17}, "metadata"),
    ("conversations-metadata-value-513", CONVERSATIONS, {"metadata": {"k": "v" * 513}}, "metadata"),
    ("conversations-items-21", CONVERSATIONS, {"items": [{"role": "user", "content": "x"}] * 21}, "items"),
    ("conversations-policy-257", CONVERSATIONS, {"context_policy": "p" * 257}, "context_policy"),
]


@pytest.mark.parametrize(("path", "body", "param"), [c[1:] for c in OPENAI_CASES], ids=[c[0] for c in OPENAI_CASES])
def test_out_of_range_is_a_400_naming_the_field_and_nothing_is_stored(
    edge: Edge, path: str, body: Any, param: str
) -> None:
    before = edge.rows()
    status, answer = edge.post(path, body, raw=body if isinstance(body, bytes) else None)
    assert status == 400, answer
    assert set(answer) == {"error", "request_id"}
    assert answer["error"]["type"] == "invalid_request_error"
    assert answer["error"]["param"] == param, answer
    assert edge.rows() == before


NATIVE_CASES: list[tuple[str, str, Any, str]] = [
    ("max_tokens-overflow", TEXT, native(max_tokens=HUGE), "max_tokens"),
    ("top_k-overflow", TEXT, native(top_k=HUGE), "top_k"),
    ("thinking_budget-overflow", TEXT, native(thinking_budget=HUGE), "thinking_budget"),
    ("seed-overflow", TEXT, native(seed=2**64), "seed"),
    ("n", TEXT, native(n=0), "n"),
    ("top_logprobs", TEXT, native(top_logprobs=6), "top_logprobs"),
    ("stop-17", TEXT, native(stop=[str(i) for i in range(17)]), "stop"),
    ("stop-token-overflow", TEXT, native(stop=[HUGE]), "stop"),
    ("unknown-parameter-too-deep", TEXT, native(vendor_knob=DEEP), "vendor_knob"),
    ("tool-parameters-too-deep", TEXT, native(tools=[{"function": {"name": "f", "parameters": {"x": DEEP}}}]), "tools"),
    ("tools-129", TEXT, native(tools=TOOLS_129), "tools"),
    (
        "multimodal-min_pixels-overflow",
        MULTIMODAL,
        {
            "model": MODEL,
            "input": {"messages": [{"role": "user", "content": [{"image": "https://x/a.png", "min_pixels": HUGE}]}]},
        },
        "min_pixels",
    ),
    ("model-257", TEXT, {**native(), "model": "m" * 257}, "model"),
]


@pytest.mark.parametrize(("path", "body", "word"), [c[1:] for c in NATIVE_CASES], ids=[c[0] for c in NATIVE_CASES])
def test_dashscope_out_of_range_is_a_native_400_and_nothing_is_stored(
    edge: Edge, path: str, body: Any, word: str
) -> None:
    before = edge.rows()
    status, answer = edge.post(path, body)
    assert status == 400, answer
    assert set(answer) == {"request_id", "code", "message"}
    assert answer["code"] == "InvalidParameter"
    assert word in answer["message"], answer
    assert edge.rows() == before


def test_openai_sdk_gets_a_bad_request_naming_the_field(edge: Edge) -> None:
    client = openai_client(edge.server.compat, edge.server.api_key, max_retries=0)
    before = edge.rows()
    with pytest.raises(openai.BadRequestError) as responses_error:
        client.responses.create(model=MODEL, input="hi", max_output_tokens=HUGE)
    assert responses_error.value.param == "max_output_tokens"
    with pytest.raises(openai.BadRequestError) as chat_error:
        client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}], extra_body={"top_k": HUGE}
        )
    assert chat_error.value.param == "top_k"
    with pytest.raises(openai.BadRequestError) as conversation_error:
        client.conversations.create(metadata={"k": "v" * 513})
    assert conversation_error.value.param == "metadata"
    assert edge.rows() == before


def items(n: int) -> list[dict[str, str]]:
    rows = [{"role": "user" if i % 2 == 0 else "assistant", "content": f"message number {i}"} for i in range(n - 1)]
    return [*rows, {"role": "user", "content": "Say hi."}]


def test_more_input_items_than_the_cap_are_refused_on_every_protocol(edge: Edge) -> None:
    over = items(10_001)
    before = edge.rows()
    status, answer = edge.post(RESPONSES, {"model": MODEL, "input": over})
    assert (status, answer["error"]["param"]) == (400, "input")
    assert "maximum length 10000" in answer["error"]["message"]
    status, answer = edge.post(CHAT, {"model": MODEL, "messages": over})
    assert (status, answer["error"]["param"]) == (400, "messages")
    status, answer = edge.post(TEXT, {"model": MODEL, "input": {"messages": over}})
    assert (status, answer["code"]) == (400, "InvalidParameter") and "input.messages" in answer["message"]
    assert edge.rows() == before


def test_ten_thousand_input_items_are_one_stored_turn_in_order_and_fork_copies_them(edge: Edge) -> None:
    given = items(10_000)
    status, answer = edge.post(RESPONSES, {"model": MODEL, "input": given})
    assert status == 200, answer
    conversation = answer["conversation"]["id"]
    stored = [r for r in edge.rows()["items"] if r["conversation_id"] == conversation]
    assert len(stored) == 10_001
    by_parent = {r["parent_id"]: r for r in stored}
    chain, at = [], None
    while at in by_parent:  # walk down from the root: one chain, in the order given
        chain.append(by_parent[at])
        at = chain[-1]["id"]
    assert len(chain) == 10_001
    assert [r["role"] for r in chain[:-1]] == [m["role"] for m in given]
    assert chain[-1]["id"] == answer["output"][-1]["id"]
    status, fork = edge.post(f"{CONVERSATIONS}/{conversation}/fork", {})
    assert status == 200, fork
    copied = [r for r in edge.rows()["items"] if r["conversation_id"] == fork["id"]]
    assert len(copied) == 10_001 and not {r["id"] for r in copied} & {r["id"] for r in stored}
    assert sorted(str(r["content"]) for r in copied) == sorted(str(r["content"]) for r in stored)


def test_a_turn_over_max_turn_bytes_is_refused_before_anything_is_stored(edge: Edge) -> None:
    big = "x" * (TURN_BYTES + 1)
    status, made = edge.post(CONVERSATIONS, {})
    assert status == 200
    before = edge.rows()
    status, answer = edge.post(RESPONSES, {"model": MODEL, "input": big})
    assert (status, answer["error"]["param"]) == (400, "input")
    assert str(TURN_BYTES) in answer["error"]["message"]
    status, answer = edge.post(CONVERSATIONS, {"items": [{"role": "user", "content": big}]})
    assert (status, answer["error"]["param"]) == (400, "items")
    status, answer = edge.post(f"{CONVERSATIONS}/{made['id']}/items", {"items": [{"role": "user", "content": big}]})
    assert (status, answer["error"]["param"]) == (400, "items")
    status, answer = edge.post(
        CHAT, {"model": MODEL, "messages": [{"role": "user", "content": big}], "conversation": made["id"]}
    )
    assert (status, answer["error"]["param"]) == (400, "messages")
    assert edge.rows() == before
    # nothing is stored without a conversation, so the cap does not apply there
    status, _ = edge.post(CHAT, {"model": MODEL, "messages": [{"role": "user", "content": big}]})
    assert status == 200
    status, _ = edge.post(RESPONSES, {"model": MODEL, "input": big, "store": False})
    assert status == 200
    assert edge.rows() == before
