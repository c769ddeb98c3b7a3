"""The OpenAI and DashScope routes refuse the same invalid histories, each with a 400 in its own
error shape (and the Responses API where the concept exists); a valid tool round passes both."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from compat.upstreams import PatientFakeUpstream

from .edge import CHAT, MODEL, RESPONSES, TEXT, Edge, serving

USER = {"role": "user", "content": "weather?"}
CALL = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
ASKS = {"role": "assistant", "content": "", "tool_calls": [CALL]}
RESULT = {"role": "tool", "content": "sunny", "tool_call_id": "call_1"}


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edge]:
    home: Path = tmp_path_factory.mktemp("histories")
    with PatientFakeUpstream() as fake, serving("sqlite", fake, home) as gateway:
        yield gateway


def without(d: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k != key}


HISTORIES: list[tuple[str, list[Any]]] = [
    ("tool-without-tool_call_id", [USER, ASKS, without(RESULT, "tool_call_id")]),
    ("tool-with-empty-tool_call_id", [USER, ASKS, {**RESULT, "tool_call_id": ""}]),
    ("tool-call-id-not-a-string", [USER, ASKS, {**RESULT, "tool_call_id": 1}]),
    ("tool-answering-no-call", [USER, RESULT]),
    ("tool-after-a-plain-answer", [USER, {"role": "assistant", "content": "hello"}, RESULT]),
    ("tool-answering-another-call", [USER, ASKS, {**RESULT, "tool_call_id": "call_2"}]),
    ("tool-after-the-next-user-message", [USER, ASKS, RESULT, USER, RESULT]),
    ("tool-call-without-id", [USER, {**ASKS, "tool_calls": [without(CALL, "id")]}, RESULT]),
    (
        "tool-call-without-name",
        [USER, {**ASKS, "tool_calls": [{**CALL, "function": {"arguments": "{}"}}]}, RESULT],
    ),
    ("empty-messages", []),
    ("unknown-role", [{"role": "robot", "content": "beep"}, USER]),
    ("content-a-number", [{"role": "user", "content": 5}]),
    ("content-an-object", [{"role": "user", "content": {"text": "hi"}}]),
    ("message-not-an-object", ["hi"]),
    ("user-without-content", [{"role": "user"}]),
]


@pytest.mark.parametrize("messages", [h for _, h in HISTORIES], ids=[name for name, _ in HISTORIES])
def test_both_routes_refuse_an_invalid_history(edge: Edge, messages: list[Any]) -> None:
    before = edge.rows()
    status, answer = edge.post(CHAT, {"model": MODEL, "messages": messages})
    assert status == 400, answer
    assert set(answer) == {"error", "request_id"} and answer["error"]["type"] == "invalid_request_error"
    assert answer["error"]["param"] is not None and answer["error"]["param"].startswith("messages")
    status, answer = edge.post(TEXT, {"model": MODEL, "input": {"messages": messages}})
    assert status == 400, answer
    assert set(answer) == {"request_id", "code", "message"} and answer["code"] == "InvalidParameter"
    assert edge.rows() == before


RESPONSES_INPUTS: list[tuple[str, list[Any]]] = [
    ("empty-input", []),
    ("unknown-role", [{"role": "robot", "content": "beep"}, {"role": "user", "content": "hi"}]),
    ("content-a-number", [{"role": "user", "content": 5}]),
    ("content-an-object", [{"role": "user", "content": {"text": "hi"}}]),
    ("item-not-an-object", ["hi"]),
    ("user-without-content", [{"role": "user"}]),
]


@pytest.mark.parametrize("items", [h for _, h in RESPONSES_INPUTS], ids=[name for name, _ in RESPONSES_INPUTS])
def test_responses_refuses_the_same_invalid_inputs(edge: Edge, items: list[Any]) -> None:
    before = edge.rows()
    status, answer = edge.post(RESPONSES, {"model": MODEL, "input": items})
    assert status == 400, answer
    assert answer["error"]["param"] == "input"
    assert edge.rows() == before


def test_both_routes_accept_a_valid_tool_round(edge: Edge) -> None:
    """The control: the histories above differ from this one by the one fault each names."""
    messages = [USER, ASKS, RESULT, {**RESULT, "content": "windy"}]
    status, answer = edge.post(CHAT, {"model": MODEL, "messages": messages})
    assert status == 200, answer
    status, answer = edge.post(TEXT, {"model": MODEL, "input": {"messages": messages}})
    assert status == 200, answer
