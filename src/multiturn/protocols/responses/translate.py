"""Responses and Conversations <-> canonical types. Pure functions, no I/O.

Requests: ``parse_create`` (a ``POST /v1/responses`` body -> ``ResponseCreate``),
``parse_conversation_create``, ``parse_conversation_update``, ``parse_items``. Objects:
``response_object``, ``output_items``, ``item_object``, ``conversation_object``, ``list_page``.
Errors use the OpenAI shape (``protocols.openai_chat.errors``): the Responses API shares it.

Ids: an item is shown under its stored id (``item_...``) everywhere, in a response's output, in
its input items and in a conversation's items; a reasoning item is ``rs_`` plus the id of the
answer it belongs to.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import orjson
from pydantic import BaseModel, ValidationError

from ... import codec
from ...types import ContextReport, GenerationParams, ImagePart, Message, Part, Role, TextPart, Usage, spans_text
from ..limits import DEFAULT_LIMITS, InvalidParameter, Limits, check_items, check_turn_bytes
from .wire import (
    ConversationCreateRequest,
    ConversationUpdateRequest,
    ForkRequest,
    InputImage,
    InputMessage,
    ItemsCreateRequest,
    OutputText,
    ResponseCreateRequest,
)

_M = TypeVar("_M", bound=BaseModel)
_TAGS = frozenset(("str", "message", "input_text", "output_text", "input_image"))
"""Union branch names pydantic puts in error locations; not part of the field's path."""
MALFORMED_BODY = "Required body invalid, please check the request body format."
REASONING_PREFIX = "rs_"
ItemStatus = Literal["in_progress", "completed", "incomplete"]


@dataclass(frozen=True, slots=True)
class ResponseCreate:
    """A ``POST /v1/responses`` request in canonical form."""

    model: str
    inputs: tuple[Message, ...]
    """The input items in order; the last one is the user's message."""
    params: GenerationParams
    instructions: str | None = None
    previous_response_id: str | None = None
    conversation_id: str | None = None
    store: bool = True
    stream: bool = False
    policy: str | None = None
    """The context policy asked for: ``context_policy``, else ``truncation`` (``auto`` ->
    ``window``, ``disabled`` -> ``full``), else None (the usual choice applies)."""
    metadata: dict[str, str] = field(default_factory=dict)
    echo: dict[str, Any] = field(default_factory=dict)
    """Request fields the response object repeats (temperature, top_p, truncation...)."""


@dataclass(frozen=True, slots=True)
class ConversationChange:
    """A conversations create/update body: initial items, metadata, the policy extension."""

    items: tuple[Message, ...] = ()
    metadata: dict[str, str] | None = None
    policy: str | None = None


def parse_create(body: bytes, limits: Limits = DEFAULT_LIMITS) -> ResponseCreate:
    """Validate a Responses body. Raises ``InvalidParameter`` (HTTP 400) naming the field: out of
    its bounds, more input items than ``limits`` allows, or (``store``) more bytes than a stored
    turn may hold."""
    wire = _validate(ResponseCreateRequest, body)
    if not isinstance(wire.input, str):
        check_items(len(wire.input), limits, "input")
    inputs = (Message.of("user", wire.input),) if isinstance(wire.input, str) else _messages(wire.input, "input")
    if wire.store is not False:
        check_turn_bytes(inputs, limits, "input", instructions=wire.instructions)
    if not inputs:
        raise InvalidParameter("input must not be empty", param="input")
    if inputs[-1].role != "user":
        raise InvalidParameter("the last input item must be a user message", param="input")
    conversation = wire.conversation if isinstance(wire.conversation, str | None) else wire.conversation.id
    if conversation is not None and wire.previous_response_id is not None:
        raise InvalidParameter(
            "previous_response_id and conversation cannot be used together", param="previous_response_id"
        )
    policy = wire.context_policy
    if policy is None and wire.truncation is not None:
        policy = "window" if wire.truncation == "auto" else "full"
    params = GenerationParams(
        max_tokens=wire.max_output_tokens,
        temperature=wire.temperature,
        top_p=wire.top_p,
        enable_thinking=wire.enable_thinking,
    )
    echo = {
        "temperature": wire.temperature,
        "top_p": wire.top_p,
        "max_output_tokens": wire.max_output_tokens,
        "truncation": wire.truncation or ("disabled" if policy == "full" else "auto"),
        "context_policy": wire.context_policy,
    }
    return ResponseCreate(
        model=wire.model,
        inputs=inputs,
        params=params,
        instructions=wire.instructions,
        previous_response_id=wire.previous_response_id,
        conversation_id=conversation,
        store=wire.store is not False,
        stream=bool(wire.stream),
        policy=policy,
        metadata=dict(wire.metadata or {}),
        echo=echo,
    )


def parse_conversation_create(body: bytes, limits: Limits = DEFAULT_LIMITS) -> ConversationChange:
    wire = _validate(ConversationCreateRequest, body or b"{}")
    items = _messages(wire.items or (), "items")
    check_items(len(items), limits, "items")
    check_turn_bytes(items, limits, "items")
    return ConversationChange(items, wire.metadata, wire.context_policy)


def parse_conversation_update(body: bytes) -> ConversationChange:
    wire = _validate(ConversationUpdateRequest, body)
    if wire.metadata is None and wire.context_policy is None:
        raise InvalidParameter("nothing to update: give metadata (or context_policy)", param="metadata")
    return ConversationChange(metadata=wire.metadata, policy=wire.context_policy)


def parse_items(body: bytes, limits: Limits = DEFAULT_LIMITS) -> tuple[Message, ...]:
    items = _messages(_validate(ItemsCreateRequest, body).items, "items")
    check_items(len(items), limits, "items")
    check_turn_bytes(items, limits, "items")
    return items


def parse_fork(body: bytes) -> str | None:
    """The item a fork starts from (None: the head)."""
    return _validate(ForkRequest, body or b"{}").item_id


def _validate(model: type[_M], body: bytes) -> _M:
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        raise _invalid(exc) from None


def _invalid(exc: ValidationError) -> InvalidParameter:
    errors = exc.errors(include_url=False)
    for err in errors:
        if err["type"] in ("json_invalid", "json_type") or (not err["loc"] and err["type"] == "model_type"):
            return InvalidParameter(MALFORMED_BODY, code="invalid_request_error")
    err = max(errors, key=lambda e: len(e["loc"]))  # the deepest is the most specific
    path = "".join(
        f"[{p}]" if isinstance(p, int) else f".{p}"
        for p in err["loc"]
        if not (isinstance(p, str) and (p.startswith(("list[", "function-")) or p in _TAGS))
    ).lstrip(".")
    param = str(err["loc"][0]) if err["loc"] else None
    if err["type"] == "missing":
        return InvalidParameter(
            f"Missing required parameter: '{path}'.", param=param, code="missing_required_parameter"
        )
    if err["type"] in ("union_tag_invalid", "literal_error") and "type" in err["loc"][-1:]:
        kind = err.get("input")
        return InvalidParameter(f"{path}: unsupported item or part type {kind!r} (messages only)", param=param)
    if err["type"] == "union_tag_invalid":
        return InvalidParameter(f"{path}: unsupported part type {err.get('input', {}).get('type')!r}", param=param)
    return InvalidParameter(f"{path}: {err['msg']}" if path else err["msg"], param=param)


def _messages(items: Sequence[InputMessage], where: str) -> tuple[Message, ...]:
    out: list[Message] = []
    for i, item in enumerate(items):
        role: Role = "system" if item.role == "developer" else item.role
        parts = (TextPart(item.content),) if isinstance(item.content, str) else _parts(item.content, f"{where}[{i}]")
        out.append(Message(role=role, content=parts))
    return tuple(out)


def _parts(parts: Sequence[BaseModel], where: str) -> tuple[Part, ...]:
    out: list[Part] = []
    for j, part in enumerate(parts):
        if isinstance(part, InputImage):
            if not part.image_url:
                raise InvalidParameter(
                    f"{where}.content[{j}]: input_image needs an image_url (file ids are not supported)",
                    param=where,
                )
            out.append(ImagePart(url=part.image_url, detail=part.detail))
        elif isinstance(part, OutputText) or hasattr(part, "text"):
            out.append(TextPart(str(getattr(part, "text", ""))))
    return tuple(out)


# --- objects -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ResponseState:
    """What a response object shows, gathered by the server from the store and the turn."""

    id: str
    created_at: int
    """Unix seconds."""
    model: str
    status: str
    output: tuple[dict[str, Any], ...] = ()
    usage: Usage | None = None
    previous_response_id: str | None = None
    conversation_id: str | None = None
    instructions: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    echo: Mapping[str, Any] = field(default_factory=dict)
    error: Mapping[str, Any] | None = None
    incomplete_reason: str | None = None
    context_report: Mapping[str, Any] | None = None


def response_object(state: ResponseState) -> dict[str, Any]:
    """The ``response`` object (``GET /v1/responses/{id}``, the body of a create, and the
    payload of the stream's lifecycle events)."""
    return {
        "id": state.id,
        "object": "response",
        "created_at": state.created_at,
        "status": state.status,
        "error": dict(state.error) if state.error else None,
        "incomplete_details": {"reason": state.incomplete_reason} if state.incomplete_reason else None,
        "instructions": state.instructions,
        "max_output_tokens": state.echo.get("max_output_tokens"),
        "model": state.model,
        "output": list(state.output),
        "parallel_tool_calls": False,
        "previous_response_id": state.previous_response_id,
        "conversation": {"id": state.conversation_id} if state.conversation_id else None,
        "reasoning": None,
        "store": state.echo.get("store", True),
        "temperature": state.echo.get("temperature"),
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": state.echo.get("top_p"),
        "truncation": state.echo.get("truncation", "auto"),
        "usage": usage_object(state.usage) if state.usage is not None else None,
        "metadata": dict(state.metadata),
        "context_report": dict(state.context_report) if state.context_report is not None else None,
    }


def usage_object(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {"cached_tokens": usage.cached_tokens, "cache_write_tokens": 0},
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.total_tokens,
    }


def reasoning_item(answer_id: str, text: str, status: ItemStatus) -> dict[str, Any]:
    return {
        "id": REASONING_PREFIX + answer_id,
        "type": "reasoning",
        "summary": [],
        "content": [{"type": "reasoning_text", "text": text}],
        "status": status,
    }


def message_item(answer_id: str, text: str, status: ItemStatus) -> dict[str, Any]:
    return {
        "id": answer_id,
        "type": "message",
        "role": "assistant",
        "status": status,
        "content": [output_text(text)],
    }


def output_text(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def output_items(answer_id: str, content: str, reasoning: str | None, status: ItemStatus) -> tuple[dict[str, Any], ...]:
    """A stored answer as output items: its reasoning (if any), then its message."""
    items = (reasoning_item(answer_id, reasoning, status),) if reasoning else ()
    return (*items, message_item(answer_id, content, status))


def item_object(item_id: str, role: Role, content: Sequence[Part], status: str) -> dict[str, Any]:
    """A stored item as a conversation item / input item (a message)."""
    shown: ItemStatus = "completed" if status == "completed" else "incomplete"
    if role == "assistant":
        parts = [output_text("".join(p.text for p in content if isinstance(p, TextPart)))]
    else:
        parts = [_input_part(p) for p in content]
    return {"id": item_id, "type": "message", "role": role, "status": shown, "content": parts}


def _input_part(part: Part) -> dict[str, Any]:
    if isinstance(part, TextPart):
        return {"type": "input_text", "text": part.text}
    if isinstance(part, ImagePart):
        return {"type": "input_image", "image_url": part.url, "detail": part.detail or "auto"}
    return {"type": "input_text", "text": f"[{part.type} omitted]"}


def conversation_object(conversation_id: str, created_at_ms: int, metadata: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": conversation_id,
        "object": "conversation",
        "created_at": created_at_ms // 1000,
        "metadata": dict(metadata),
    }


def list_page(data: Sequence[Mapping[str, Any]], *, has_more: bool) -> dict[str, Any]:
    return {
        "object": "list",
        "data": list(data),
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": has_more,
    }


def report_object(report: ContextReport | Mapping[str, Any]) -> dict[str, Any]:
    """A context report as the API shows it (extension field ``context_report``): each fate as
    runs of positions in the response's input items, ascending (``"0,3-40"``), so its size does
    not grow with the conversation; policy, budget and tokens. A stored report of an older shape
    is shown as it was stored."""
    if isinstance(report, Mapping):
        decoded = codec.decode_report(report)
        if decoded is None:
            keys = ("policy", "budget", "tokens", "tokens_by_part", "error")
            return {k: report[k] for k in keys if k in report}
        report = decoded
    return {
        "policy": report.policy,
        "budget": report.budget,
        "tokens": report.tokens,
        "tokens_by_part": dict(report.tokens_by_part),
        "items": report.items,
        "kept": spans_text(report.kept),
        "recalled": spans_text(report.recalled),
        "summarized": spans_text(report.summarized),
        "dropped": spans_text(report.dropped),
    }


def dumps(value: Any) -> bytes:
    return orjson.dumps(value)
