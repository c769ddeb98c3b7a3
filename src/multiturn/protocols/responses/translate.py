"""Responses and Conversations <-> canonical types. Pure functions, no I/O.

Requests: ``parse_create`` (a ``POST /v1/responses`` body -> ``ResponseCreate``; tools,
formats and refused fields in ``options``, input items in ``items``), ``parse_conversation_create``,
``parse_conversation_update``, ``parse_items``. Objects: ``response_object``, ``output_items``,
``item_objects``, ``conversation_object``, ``list_page``. Errors use the OpenAI shape
(``protocols.openai_chat.errors``): the Responses API shares it.

Ids: an item is shown under its stored id (``item_...``) everywhere, in a response's output, in
its input items and in a conversation's items; a reasoning item is ``rs_`` plus the id of the
answer it belongs to, a function call ``fc_`` plus that id and its position (``items``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError

from ...types import ContextReport, GenerationParams, Message, Usage, spans_text
from ..cost import cost_fields
from ..limits import DEFAULT_LIMITS, InvalidParameter, Limits, check_items, check_turn_bytes
from .items import (
    Inputs,
    ItemStatus,
    check_inputs,
    continued_by,
    item_object,
    item_objects,
    messages,
    output_items,
    stored_id,
)
from .options import refuse_unsupported, tool_options
from .wire import (
    ConversationCreateRequest,
    ConversationUpdateRequest,
    ForkRequest,
    ItemsCreateRequest,
    ResponseCreateRequest,
)

__all__ = [
    "ItemStatus",
    "check_inputs",
    "continued_by",
    "item_object",
    "item_objects",
    "output_items",
    "stored_id",
]

_M = TypeVar("_M", bound=BaseModel)
_TAGS = frozenset(
    (
        "str",
        "message",
        "input_text",
        "output_text",
        "input_image",
        "function_call",
        "function_call_output",
        "reasoning_item",
        "format_text",
        "format_json_object",
        "format_json_schema",
        "FunctionChoice",
        "AllowedToolsChoice",
    )
)
"""Union branch names pydantic puts in error locations; not part of the field's path."""
MALFORMED_BODY = "Required body invalid, please check the request body format."


@dataclass(frozen=True, slots=True)
class ResponseCreate:
    """A ``POST /v1/responses`` request in canonical form."""

    model: str
    inputs: tuple[Message, ...]
    """The input items as messages, in order; the last one is the user's message or a tool result."""
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
    """Request fields the response object repeats (temperature, top_p, truncation, tools...)."""
    positions: tuple[int, ...] = ()
    """The input item each of ``inputs`` starts at (``items.Inputs``)."""


@dataclass(frozen=True, slots=True)
class ConversationChange:
    """A conversations create/update body: initial items, metadata, the policy extension."""

    items: tuple[Message, ...] = ()
    metadata: dict[str, str] | None = None
    policy: str | None = None


def parse_create(body: bytes, limits: Limits = DEFAULT_LIMITS) -> ResponseCreate:
    """Validate a Responses body. Raises ``InvalidParameter`` (HTTP 400) naming the field: out of
    its bounds, not implemented (``options.refuse_unsupported``), a built-in tool, more input
    items than ``limits`` allows, (``store``) more bytes than a stored turn may hold, or an input
    that breaks the history rules (a tool result that answers no call: when the input opens
    with a result, the route checks it again with the stored items it continues)."""
    wire = _validate(ResponseCreateRequest, body)
    thinking = refuse_unsupported(wire)
    tools = tool_options(wire)
    if not isinstance(wire.input, str):
        check_items(len(wire.input), limits, "input")
        inputs = messages(wire.input, "input")
    else:
        inputs = Inputs((Message.of("user", wire.input),), (0,))
    if wire.store is not False:
        check_turn_bytes(inputs.messages, limits, "input", instructions=wire.instructions)
    if not inputs.messages:
        raise InvalidParameter("input must not be empty", param="input")
    if inputs.messages[-1].role not in ("user", "tool"):
        raise InvalidParameter("the last input item must be a user message or a function_call_output", param="input")
    conversation = wire.conversation if isinstance(wire.conversation, str | None) else wire.conversation.id
    if conversation is not None and wire.previous_response_id is not None:
        raise InvalidParameter(
            "previous_response_id and conversation cannot be used together", param="previous_response_id"
        )
    if inputs.messages[0].role != "tool" or (conversation is None and wire.previous_response_id is None):
        check_inputs((), inputs, "input", continued="input")
    policy = wire.context_policy
    if policy is None and wire.truncation is not None:
        policy = "window" if wire.truncation == "auto" else "full"
    params = GenerationParams(
        max_tokens=wire.max_output_tokens,
        temperature=wire.temperature,
        top_p=wire.top_p,
        enable_thinking=thinking,
        tools=tools.tools,
        tool_choice=tools.tool_choice,
        parallel_tool_calls=tools.parallel_tool_calls,
        response_format=tools.response_format,
    )
    echo = {
        "temperature": wire.temperature,
        "top_p": wire.top_p,
        "max_output_tokens": wire.max_output_tokens,
        "truncation": wire.truncation or ("disabled" if policy == "full" else "auto"),
        "context_policy": wire.context_policy,
        **({"reasoning": {"effort": "none", "summary": None}} if thinking is False and wire.reasoning else {}),
        **tools.echo,
    }
    return ResponseCreate(
        model=wire.model,
        inputs=inputs.messages,
        params=params,
        instructions=wire.instructions,
        previous_response_id=wire.previous_response_id,
        conversation_id=conversation,
        store=wire.store is not False,
        stream=bool(wire.stream),
        policy=policy,
        metadata=dict(wire.metadata or {}),
        echo=echo,
        positions=inputs.positions,
    )


def check_continued(ask: ResponseCreate, before: Sequence[Message], continued: str) -> None:
    """The history rules over the stored items a request continues (``continued_by``) and its
    input (``parse_create`` checked an input that does not open with a tool result alone)."""
    check_inputs(before, Inputs(ask.inputs, ask.positions), "input", continued=continued)


def parse_conversation_create(body: bytes, limits: Limits = DEFAULT_LIMITS) -> ConversationChange:
    wire = _validate(ConversationCreateRequest, body or b"{}")
    inputs = messages(wire.items or (), "items")
    check_items(len(inputs.messages), limits, "items")
    check_turn_bytes(inputs.messages, limits, "items")
    check_inputs((), inputs, "items", continued="items")
    return ConversationChange(inputs.messages, wire.metadata, wire.context_policy)


def parse_conversation_update(body: bytes) -> ConversationChange:
    wire = _validate(ConversationUpdateRequest, body)
    if wire.metadata is None and wire.context_policy is None:
        raise InvalidParameter("nothing to update: give metadata (or context_policy)", param="metadata")
    return ConversationChange(metadata=wire.metadata, policy=wire.context_policy)


def parse_items(body: bytes, limits: Limits = DEFAULT_LIMITS) -> Inputs:
    """Items to append to a conversation (the route checks the history rules with its head)."""
    inputs = messages(_validate(ItemsCreateRequest, body).items, "items")
    check_items(len(inputs.messages), limits, "items")
    check_turn_bytes(inputs.messages, limits, "items")
    return inputs


def parse_fork(body: bytes) -> str | None:
    """The item a fork starts from (None: the head)."""
    return _validate(ForkRequest, body or b"{}").item_id


def _validate(model: type[_M], body: bytes) -> _M:
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        raise _invalid(exc) from None


ITEM_TYPES = "message, function_call, function_call_output and reasoning items"


def _invalid(exc: ValidationError) -> InvalidParameter:
    errors = exc.errors(include_url=False)
    for err in errors:
        if err["type"] in ("json_invalid", "json_type") or (not err["loc"] and err["type"] == "model_type"):
            return InvalidParameter(MALFORMED_BODY, code="invalid_request_error")
    tool = next((e for e in errors if _is_tool_type(e["loc"])), None)
    if tool is not None:
        where = f"tools[{tool['loc'][1]}].type"
        return InvalidParameter(
            f"{where}: {tool.get('input')!r} is a built-in tool, which multiturn does not run; only "
            "function tools ({'type': 'function', 'name', 'parameters'}) are supported",
            param=where,
        )
    if any(e["loc"][:1] == ("tool_choice",) for e in errors):
        return InvalidParameter(
            "tool_choice: must be 'auto', 'none', 'required', {'type': 'function', 'name'} or "
            "{'type': 'allowed_tools', 'mode', 'tools'} (built-in tools are not supported)",
            param="tool_choice",
        )
    err = max(errors, key=lambda e: len(e["loc"]))  # the deepest is the most specific
    path = _path(err["loc"])
    param = str(err["loc"][0]) if err["loc"] else None
    if err["type"] == "missing":
        return InvalidParameter(
            f"Missing required parameter: '{path}'.", param=param, code="missing_required_parameter"
        )
    if err["type"] == "union_tag_invalid" and err["loc"][:1] in (("input",), ("items",)) and len(err["loc"]) == 3:
        kind = err.get("input", {}).get("type") if isinstance(err.get("input"), dict) else None
        return InvalidParameter(f"{path}: unsupported item type {kind!r} ({ITEM_TYPES} only)", param=param)
    if err["type"] in ("union_tag_invalid", "literal_error") and "type" in err["loc"][-1:]:
        kind = err.get("input")
        return InvalidParameter(f"{path}: unsupported item or part type {kind!r}", param=param)
    if err["type"] == "union_tag_invalid":
        found = err.get("input")
        kind = found.get("type") if isinstance(found, dict) else found
        return InvalidParameter(f"{path}: unsupported type {kind!r}", param=param)
    return InvalidParameter(f"{path}: {err['msg']}" if path else err["msg"], param=param)


def _is_tool_type(loc: tuple[int | str, ...]) -> bool:
    return len(loc) == 3 and loc[0] == "tools" and loc[2] == "type"


def _path(loc: tuple[int | str, ...]) -> str:
    return "".join(
        f"[{p}]" if isinstance(p, int) else f".{p}"
        for p in loc
        if not (isinstance(p, str) and (p.startswith(("list[", "function-", "literal[")) or p in _TAGS))
    ).lstrip(".")


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
    context_report: ContextReport | None = None


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
        "parallel_tool_calls": state.echo.get("parallel_tool_calls", True),
        "previous_response_id": state.previous_response_id,
        "conversation": {"id": state.conversation_id} if state.conversation_id else None,
        "reasoning": state.echo.get("reasoning"),
        "store": state.echo.get("store", True),
        "temperature": state.echo.get("temperature"),
        "text": state.echo.get("text", {"format": {"type": "text"}}),
        "tool_choice": state.echo.get("tool_choice", "auto"),
        "tools": list(state.echo.get("tools", ())),
        "top_p": state.echo.get("top_p"),
        "truncation": state.echo.get("truncation", "auto"),
        "usage": usage_object(state.usage) if state.usage is not None else None,
        "metadata": dict(state.metadata),
        "context_report": report_object(state.context_report) if state.context_report is not None else None,
    }


def usage_object(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {"cached_tokens": usage.cached_tokens, "cache_write_tokens": 0},
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.total_tokens,
        **cost_fields(usage.cost),
    }


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


def report_object(report: ContextReport) -> dict[str, Any]:
    """A context report as the API shows it (extension field ``context_report``): each fate as
    runs of positions in the response's input items, ascending (``"0,3-40"``), so its size does
    not grow with the conversation; policy, budget and tokens; ``error`` when the turn failed. A
    turn closed before it was planned shows its ``error`` alone."""
    if not report.planned:
        return {"error": report.error}
    out: dict[str, Any] = {
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
    if report.error is not None:
        out["error"] = report.error
    return out


def dumps(value: Any) -> bytes:
    return orjson.dumps(value)
