"""The Responses translation and event encoder, checked against the openai SDK's own models
(validated strictly, not constructed leniently as the SDK does at run time)."""

from __future__ import annotations

from typing import Annotated, Any, get_args, get_origin

import orjson
import pytest
from openai.types.conversations import Conversation, ConversationItemList
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import BaseModel

from multiturn.errors import BackendError, InvalidInput
from multiturn.protocols.responses import translate as wire
from multiturn.protocols.responses.stream import ResponseEventEncoder
from multiturn.types import ContextReport, Delta, ImagePart, Message, TextPart, Usage


def _by_type() -> dict[str, type[BaseModel]]:
    union = get_args(ResponseStreamEvent)[0] if get_origin(ResponseStreamEvent) is Annotated else ResponseStreamEvent
    return {get_args(m.model_fields["type"].annotation)[0]: m for m in get_args(union)}


EVENTS = _by_type()
STATE = wire.ResponseState(
    id="resp_1",
    created_at=1_700_000_000,
    model="qwen-plus",
    status="in_progress",
    conversation_id="conv_1",
    metadata={"k": "v"},
    echo={"temperature": 0.0, "truncation": "auto"},
    context_report=ContextReport(policy="window", items=1, kept=((0, 0),)),
)


def _events(raw: bytes) -> list[dict[str, Any]]:
    out = []
    for block in raw.decode().split("\n\n"):
        if not block:
            continue
        kind, data = block.split("\n")
        assert kind.startswith("event: ") and data.startswith("data: ")
        event = orjson.loads(data[len("data: ") :])
        assert kind == f"event: {event['type']}"
        EVENTS[event["type"]].model_validate(event)
        out.append(event)
    return out


def test_a_stream_with_reasoning_then_text() -> None:
    encoder = ResponseEventEncoder(STATE, "item_9")
    raw = encoder.start()
    raw += encoder.delta(Delta(reasoning="Let me "))
    raw += encoder.delta(Delta(reasoning="think."))
    raw += encoder.delta(Delta(content="Hello"))
    raw += encoder.delta(Delta(content=" world"))
    raw += encoder.finish("stop", Usage(prompt_tokens=10, completion_tokens=4, cached_tokens=6, reasoning_tokens=2))
    events = _events(raw)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert [e["type"] for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.reasoning_text.delta",
        "response.reasoning_text.delta",
        "response.reasoning_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert events[6]["text"] == "Let me think." and events[6]["output_index"] == 0
    assert events[13]["text"] == "Hello world" and events[13]["output_index"] == 1
    assert {e["item_id"] for e in events if e["type"] == "response.output_text.delta"} == {"item_9"}
    final = Response.model_validate(events[-1]["response"])
    assert final.status == "completed" and final.output_text == "Hello world"
    assert [o.type for o in final.output] == ["reasoning", "message"]
    assert final.usage is not None and final.usage.input_tokens_details.cached_tokens == 6
    assert final.usage.output_tokens_details.reasoning_tokens == 2 and final.usage.total_tokens == 14
    assert final.model_extra and final.model_extra["context_report"]["policy"] == "window"


def test_a_cut_answer_is_incomplete_and_an_empty_one_is_still_a_message() -> None:
    encoder = ResponseEventEncoder(STATE, "item_9")
    events = _events(encoder.start() + encoder.delta(Delta(content="abc")) + encoder.finish("length", None))
    assert events[-1]["type"] == "response.incomplete"
    final = Response.model_validate(events[-1]["response"])
    assert final.status == "incomplete" and final.incomplete_details is not None
    assert final.incomplete_details.reason == "max_output_tokens" and final.output_text == "abc"

    encoder = ResponseEventEncoder(STATE, "item_8")
    events = _events(encoder.start() + encoder.finish("stop", Usage()))
    assert Response.model_validate(events[-1]["response"]).output_text == ""
    assert [e["type"] for e in events][2:] == [
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]


def test_a_failure_mid_stream_is_an_error_event_then_response_failed() -> None:
    encoder = ResponseEventEncoder(STATE, "item_9")
    events = _events(encoder.start() + encoder.delta(Delta(content="ab")) + encoder.error(BackendError("boom")))
    assert [e["type"] for e in events][-2:] == ["error", "response.failed"]
    assert events[-2]["message"] == "boom"
    failed = Response.model_validate(events[-1]["response"])
    assert failed.status == "failed" and failed.error is not None and failed.error.message == "boom"


def test_parse_create_maps_inputs_truncation_and_params() -> None:
    body = {
        "model": "qwen-plus",
        "instructions": "Be brief.",
        "input": [
            {"role": "developer", "content": "Use French."},
            {"type": "message", "role": "assistant", "id": "msg_1", "status": "completed",
             "content": [{"type": "output_text", "text": "Bonjour", "annotations": []}]},
            {"role": "user", "content": [
                {"type": "input_text", "text": "Look"},
                {"type": "input_image", "image_url": "https://x/y.png", "detail": "low"},
            ]},
        ],
        "truncation": "disabled",
        "max_output_tokens": 32,
        "temperature": 0.5,
        "metadata": {"a": "b"},
        "store": False,
    }  # fmt: skip
    ask = wire.parse_create(orjson.dumps(body))
    assert ask.inputs == (
        Message.of("system", "Use French."),
        Message.of("assistant", "Bonjour"),
        Message(role="user", content=(TextPart("Look"), ImagePart(url="https://x/y.png", detail="low"))),
    )
    assert (ask.policy, ask.store, ask.instructions, ask.metadata) == ("full", False, "Be brief.", {"a": "b"})
    assert (ask.params.max_tokens, ask.params.temperature) == (32, 0.5)
    assert wire.parse_create(b'{"model": "m", "input": "hi", "truncation": "auto"}').policy == "window"
    explicit = wire.parse_create(b'{"model": "m", "input": "hi", "truncation": "auto", "context_policy": "summary"}')
    assert explicit.policy == "summary"
    assert wire.parse_create(b'{"model": "m", "input": "hi", "conversation": {"id": "conv_1"}}').conversation_id == (
        "conv_1"
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{", "Required body invalid"),
        (b'{"input": "hi"}', "Missing required parameter: 'model'"),
        (b'{"model": "m", "input": []}', "input must not be empty"),
        (b'{"model": "m", "input": "hi", "top_p": 0}', "top_p"),
        (b'{"model": "m", "input": [{"role": "user", "content": [{"type": "input_image"}]}]}', "image_url"),
        (b'{"model": "m", "input": [{"type": "item_reference", "id": "x"}]}', "'item_reference'"),
    ],
)
def test_parse_create_refuses_bad_bodies_with_one_line(body: bytes, message: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        wire.parse_create(body)
    assert message in str(raised.value) and "\n" not in str(raised.value)


def test_items_and_conversations_match_the_sdk_models() -> None:
    user = wire.item_object("item_1", "user", (TextPart("hi"), ImagePart(url="data:image/png;base64,AA")), "completed")
    answer = wire.item_object("item_2", "assistant", (TextPart("hello"),), "incomplete")
    page = ConversationItemList.model_validate(wire.list_page([user, answer], has_more=False))
    assert (page.first_id, page.last_id) == ("item_1", "item_2")
    assert page.data[1].status == "incomplete"  # type: ignore[union-attr]
    conversation = Conversation.model_validate(wire.conversation_object("conv_1", 1_700_000_000_123, {"a": "b"}))
    assert conversation.created_at == 1_700_000_000 and conversation.metadata == {"a": "b"}
    stored = wire.response_object(
        wire.ResponseState(
            id="resp_1",
            created_at=1,
            model="m",
            status="completed",
            output=wire.output_items("item_2", "hello", None, "completed"),
            usage=Usage(prompt_tokens=3, completion_tokens=1),
        )
    )
    assert Response.model_validate(stored).output_text == "hello"
