"""What a Responses request asks of the answer beyond its input: tools, ``tool_choice``,
``parallel_tool_calls``, ``text.format`` (canonical ``GenerationParams`` fields and what the
response object repeats), and the fields multiturn does not implement. Pure functions.

No silent yes: every field of OpenAI's ``POST /v1/responses`` is honoured, accepted because its
value changes nothing in the answer (``HARMLESS``), or refused with a 400 naming it when set
(``REFUSED``). A field nobody declared is refused as OpenAI refuses it ("Unknown parameter"), not
ignored as Model Studio does: a misspelt ``max_tokens`` would otherwise be a silent yes. A null
value is "not set" and always accepted. ``docs/architecture.md`` has the table.

- ``tools``: function tools become ``ToolSpec``s; a built-in tool (``web_search``,
  ``file_search``, ``mcp``...) is a 400 naming ``tools[i].type`` (``translate`` maps the
  validation error).
- ``tool_choice``: ``auto``, ``none``, ``required``, ``{"type": "function", "name"}`` (the
  chat shape the backends read), ``{"type": "allowed_tools", "mode", "tools"}`` (the tools
  offered become the allowed ones; ``mode`` is the choice). A choice naming no tool of the
  request is a 400 here, before anything is stored.
- ``text.format``: ``text`` (the default), ``json_object``, ``json_schema`` -> the chat
  ``response_format`` (``{"type": "json_schema", "json_schema": {"name", "schema", "strict"}}``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from ...types import ToolSpec
from ..limits import InvalidParameter, check_passthrough
from .wire import AllowedToolsChoice, FormatJsonObject, FormatJsonSchema, FunctionChoice, ResponseCreateRequest

HARMLESS: Final[Mapping[str, str]] = {
    "user": "an end-user id for the provider's abuse monitoring: the answer does not depend on it",
    "safety_identifier": "the same, under its newer name",
    "prompt_cache_key": "routes requests to a provider's prompt cache: multiturn reuses the model's cache by itself",
    "prompt_cache_retention": "how long a provider keeps its prompt cache: the answer does not depend on it",
    "service_tier": "auto and default only: the one tier multiturn has (flex, scale, priority are refused)",
    "stream_options": "include_obfuscation false only (multiturn pads no events; true is refused)",
    "background": "false only: multiturn answers synchronously (true is refused)",
    "top_logprobs": "0 only: no log probabilities are produced (more is refused)",
    "include": "message.input_image.image_url only (input items show image URLs anyway); others are refused",
}
"""Fields accepted although multiturn does nothing with them, and why (the value they may take)."""

REFUSED: Final[Mapping[str, str]] = {
    "max_tool_calls": "caps calls to built-in tools, which multiturn does not run; not a cap on function calls",
    "prompt": "a prompt template stored at OpenAI: multiturn has none",
    "prompt_cache_options": "prewarm (no answer) and cache breakpoints are not implemented",
    "context_management": "OpenAI's compaction settings; multiturn's context_policy (extension) chooses compaction",
    "moderation": "no moderation runs",
    "background_options": "no background mode",
    "access_programs": "not implemented",
    "conversation_options": "not implemented",
}
"""Fields refused when set (not null), and why; any other field multiturn does not know is refused too."""

INCLUDABLE: Final = frozenset({"message.input_image.image_url"})
SERVICE_TIERS: Final = frozenset({"auto", "default"})


@dataclass(frozen=True, slots=True)
class ToolOptions:
    """The canonical tools, choice, parallelism and response format, and what the response
    object repeats (``echo``: ``tools``, ``tool_choice``, ``parallel_tool_calls``, ``text``)."""

    tools: tuple[ToolSpec, ...]
    tool_choice: str | dict[str, Any] | None
    parallel_tool_calls: bool | None
    response_format: dict[str, Any] | None
    echo: dict[str, Any]


def refuse_unsupported(wire: ResponseCreateRequest) -> bool | None:
    """Raise ``InvalidParameter`` for the first field set that multiturn does not implement (see
    the module docstring). Returns the ``enable_thinking`` that ``reasoning`` maps to
    (``effort: none`` -> False; None when ``reasoning`` says nothing)."""
    for name, value in (wire.model_extra or {}).items():
        if value is None:
            continue
        if name in REFUSED:
            raise InvalidParameter(f"{name}: not supported ({REFUSED[name]}); leave it out", param=name)
        raise InvalidParameter(
            f"Unknown parameter: '{name}'. multiturn does not implement it (OpenAI refuses unknown parameters "
            "too); leave it out",
            param=name,
            code="unknown_parameter",
        )
    if wire.background:
        _refuse("background", "true is not supported: multiturn answers synchronously (stream for early output)")
    if wire.top_logprobs:
        _refuse("top_logprobs", "log probabilities are not produced; leave it out or send 0")
    if wire.service_tier is not None and wire.service_tier not in SERVICE_TIERS:
        _refuse("service_tier", f"{wire.service_tier!r} is not supported: only 'auto' or 'default'")
    if wire.stream_options is not None and wire.stream_options.include_obfuscation:
        _refuse("stream_options.include_obfuscation", "true is not supported: events are not padded")
    for i, value in enumerate(wire.include or ()):
        if value not in INCLUDABLE:
            _refuse(f"include[{i}]", f"{value!r} cannot be produced; supported: {', '.join(sorted(INCLUDABLE))}")
    if wire.text is not None and wire.text.verbosity not in (None, "medium"):
        _refuse("text.verbosity", f"{wire.text.verbosity!r} is not supported: only 'medium' (the default)")
    return _thinking(wire)


def _thinking(wire: ResponseCreateRequest) -> bool | None:
    reasoning = wire.reasoning
    if reasoning is None:
        return wire.enable_thinking
    for name in ("summary", "generate_summary"):
        if getattr(reasoning, name) is not None:
            _refuse(f"reasoning.{name}", "reasoning summaries are not produced (reasoning comes as reasoning_text)")
    if reasoning.effort is None:
        return wire.enable_thinking
    if reasoning.effort != "none":
        _refuse(
            "reasoning.effort",
            f"{reasoning.effort!r} has no equivalent here: send 'none' (no thinking), or enable_thinking "
            "(Model Studio's switch) for a model that thinks",
        )
    if wire.enable_thinking:
        _refuse("enable_thinking", "true contradicts reasoning.effort 'none'")
    return False


def tool_options(wire: ResponseCreateRequest) -> ToolOptions:
    """The request's tools, choice and format (see the module docstring). Raises
    ``InvalidParameter`` naming the field."""
    sent = wire.tools or []
    for i, tool in enumerate(sent):
        check_passthrough(f"tools[{i}].parameters", tool.parameters)
    names = [tool.name for tool in sent]
    specs = tuple(
        ToolSpec(
            name=t.name,
            description=t.description,
            parameters=t.parameters,
            strict=t.strict if t.strict is not None else True,  # OpenAI's default for Responses tools
        )
        for t in sent
    )
    choice = wire.tool_choice
    canonical: str | dict[str, Any] | None
    if choice is None or isinstance(choice, str):
        canonical = choice
        if choice == "required" and not sent:
            _refuse("tool_choice", "'required' asks for a tool call, but the request has no tools")
        shown_choice: Any = choice or "auto"
    elif isinstance(choice, FunctionChoice):
        if choice.name not in names:
            _refuse("tool_choice", f"names the function {choice.name!r}, which is not one of the request's tools")
        canonical = {"type": "function", "function": {"name": choice.name}}
        shown_choice = {"type": "function", "name": choice.name}
    else:
        assert isinstance(choice, AllowedToolsChoice)
        allowed = [t.name for t in choice.tools]
        for j, name in enumerate(allowed):
            if name not in names:
                _refuse(f"tool_choice.tools[{j}]", f"names {name!r}, which is not one of the request's tools")
        specs = tuple(spec for spec in specs if spec.name in allowed)
        canonical = choice.mode
        shown_choice = {"type": "allowed_tools", "mode": choice.mode, "tools": [t.model_dump() for t in choice.tools]}
    parallel = wire.parallel_tool_calls
    if parallel is None and sent:
        parallel = True  # OpenAI's default, said to every backend (Model Studio's differs)
    response_format, shown_format = _format(wire)
    echo = {
        "tools": [
            {
                "type": "function",
                "name": t.name,
                "description": t.description,
                "parameters": t.parameters,
                "strict": t.strict if t.strict is not None else True,
            }
            for t in sent
        ],
        "tool_choice": shown_choice,
        "parallel_tool_calls": parallel if parallel is not None else True,
        "text": {"format": shown_format},
    }
    return ToolOptions(specs, canonical, parallel, response_format, echo)


def _format(wire: ResponseCreateRequest) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """The canonical response format and the ``text.format`` the response object shows."""
    shape = wire.text.format if wire.text is not None else None
    if isinstance(shape, FormatJsonObject):
        return {"type": "json_object"}, {"type": "json_object"}
    if isinstance(shape, FormatJsonSchema):
        check_passthrough("text.format.schema", shape.schema_)
        spec: dict[str, Any] = {"name": shape.name, "schema": shape.schema_}
        if shape.strict is not None:
            spec["strict"] = shape.strict
        shown = {"type": "json_schema", "description": shape.description, **spec, "strict": bool(shape.strict)}
        return {"type": "json_schema", "json_schema": spec}, shown
    return None, {"type": "text"}


def _refuse(param: str, why: str) -> None:
    raise InvalidParameter(f"{param}: {why}", param=param)
