"""Canonical types to and from JSON-safe dicts: the one shape multiturn stores and exports.

This is not a wire format. Stored content is a list of part dicts keyed by ``type``
(``text``, ``image``, ``audio``, ``video``); ``decode_*`` is the exact inverse of ``encode_*``
for every value, and refuses unknown shapes instead of guessing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .errors import InvalidInput
from .types import (
    AudioPart,
    ContextReport,
    Cost,
    ImagePart,
    Message,
    Part,
    TextPart,
    ToolCall,
    Usage,
    VideoPart,
    parse_spans,
    spans_text,
)

JSON = dict[str, Any]


def encode_part(part: Part) -> JSON:
    if isinstance(part, TextPart):
        return {"type": "text", "text": part.text}
    if isinstance(part, ImagePart):
        out: JSON = {"type": "image", "url": part.url}
        if part.detail is not None:
            out["detail"] = part.detail
        return out
    if isinstance(part, AudioPart):
        return {
            "type": "audio",
            **{k: v for k, v in (("url", part.url), ("data", part.data), ("format", part.format)) if v is not None},
        }
    if isinstance(part, VideoPart):
        out = {"type": "video"}
        if part.url is not None:
            out["url"] = part.url
        if part.frames:
            out["frames"] = list(part.frames)
        return out
    raise TypeError(f"not a content part: {part!r}")


def decode_part(data: Mapping[str, Any]) -> Part:
    kind = data.get("type")
    if kind == "text" and isinstance(data.get("text"), str):
        return TextPart(data["text"])
    if kind == "image" and isinstance(data.get("url"), str):
        return ImagePart(url=data["url"], detail=data.get("detail"))
    if kind == "audio" and _optional_strings(data, "url", "data", "format"):
        return AudioPart(url=data.get("url"), data=data.get("data"), format=data.get("format"))
    frames = data.get("frames") or []
    video = kind == "video" and _optional_strings(data, "url") and isinstance(frames, list)
    if video and all(isinstance(f, str) for f in frames):
        return VideoPart(url=data.get("url"), frames=tuple(frames))
    raise InvalidInput(f"unknown content part: {dict(data)!r}")


def _optional_strings(data: Mapping[str, Any], *keys: str) -> bool:
    return all(isinstance(data.get(k), str | None) for k in keys)


def encode_parts(parts: Iterable[Part]) -> list[JSON]:
    return [encode_part(p) for p in parts]


def decode_parts(data: Iterable[Mapping[str, Any]]) -> tuple[Part, ...]:
    return tuple(decode_part(p) for p in data)


def encode_tool_calls(calls: Iterable[ToolCall]) -> list[JSON]:
    return [{"id": c.id, "name": c.name, "arguments": c.arguments} for c in calls]


def decode_tool_calls(data: Iterable[Mapping[str, Any]] | None) -> tuple[ToolCall, ...]:
    try:
        return tuple(ToolCall(id=c["id"], name=c["name"], arguments=c["arguments"]) for c in data or ())
    except (KeyError, TypeError) as exc:
        raise InvalidInput(f"malformed tool call: {exc}") from exc


def encode_message(message: Message) -> JSON:
    """A message's replayable fields (reasoning included) as one JSON-safe dict."""
    data: JSON = {"role": message.role, "content": encode_parts(message.content)}
    if message.reasoning is not None:
        data["reasoning"] = message.reasoning
    if message.tool_calls:
        data["tool_calls"] = encode_tool_calls(message.tool_calls)
    if message.tool_call_id is not None:
        data["tool_call_id"] = message.tool_call_id
    return data


def encode_usage(usage: Usage) -> JSON:
    data: JSON = {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "cached_tokens": usage.cached_tokens,
        "reasoning_tokens": usage.reasoning_tokens,
    }
    if usage.cost is not None:
        data["cost"] = encode_cost(usage.cost)
    return data


def decode_usage(data: Mapping[str, Any] | None) -> Usage | None:
    """Raises:
    InvalidInput: a cost of the wrong shape."""
    if data is None:
        return None
    cost = data.get("cost")
    return Usage(
        prompt_tokens=int(data.get("prompt_tokens", 0)),
        completion_tokens=int(data.get("completion_tokens", 0)),
        cached_tokens=int(data.get("cached_tokens", 0)),
        reasoning_tokens=int(data.get("reasoning_tokens", 0)),
        cost=decode_cost(cost) if cost is not None else None,
    )


def encode_cost(cost: Cost) -> JSON:
    """A cost as stored with its turn's usage, and as the API shows it (``cost_details``)."""
    return {
        "currency": cost.currency,
        "total": cost.total,
        "input": cost.input,
        "cached_input": cost.cached_input,
        "output": cost.output,
        "conversation": cost.conversation,
    }


def decode_cost(data: Mapping[str, Any]) -> Cost:
    """The inverse of ``encode_cost`` (``total`` is derived, not read).

    Raises:
        InvalidInput: a field of the wrong shape.
    """
    try:
        currency = data["currency"]
        if not isinstance(currency, str):
            raise TypeError(f"currency {currency!r} is not a string")
        conversation = data.get("conversation")
        return Cost(
            currency=currency,
            input=float(data.get("input", 0.0)),
            cached_input=float(data.get("cached_input", 0.0)),
            output=float(data.get("output", 0.0)),
            conversation=float(conversation) if conversation is not None else None,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInput(f"malformed cost: {exc}") from exc


def encode_report(report: ContextReport) -> JSON:
    """A context report as stored with its answer. Positions are runs written as text
    (``0,3-40``), so the stored report does not grow with the conversation. A report of a turn
    that was never planned is its ``error`` alone."""
    if not report.planned:
        return {"error": report.error or ""}
    data: JSON = {
        "policy": report.policy,
        "items": report.items,
        "kept": spans_text(report.kept),
        "recalled": spans_text(report.recalled),
        "summarized": spans_text(report.summarized),
        "budget": report.budget,
        "tokens": report.tokens,
        "tokens_by_part": dict(report.tokens_by_part),
        "recalled_scores": {str(n): score for n, score in report.recalled_scores.items()},
        "over_budget": report.over_budget,
    }
    if report.error is not None:
        data["error"] = report.error
    return data


def decode_report(data: Mapping[str, Any]) -> ContextReport:
    """The report ``encode_report`` stored.

    A record holding only an error is an unplanned report (``ContextReport.unplanned``). A
    report in the shape stored before reports counted positions (lists of item ids, December
    2026 development builds) keeps its policy, budget, tokens and error but names no position
    (``items`` 0): its fates cannot be told from it.

    Raises:
        InvalidInput: anything else, or a field of the wrong shape.
    """
    error = data.get("error")
    if error is not None and not isinstance(error, str):
        raise InvalidInput(f"malformed context report: error {error!r} is not a string")
    if "policy" not in data:
        if error is None:
            raise InvalidInput(f"malformed context report: no policy and no error in {sorted(data)!r}")
        return ContextReport.unplanned(error)
    try:
        legacy = not isinstance(data.get("kept", ""), str)
        return ContextReport(
            policy=str(data["policy"]),
            items=0 if legacy else int(data.get("items") or 0),
            kept=() if legacy else parse_spans(data.get("kept") or ""),
            recalled=() if legacy else parse_spans(data.get("recalled") or ""),
            summarized=() if legacy else parse_spans(data.get("summarized") or ""),
            budget=int(data["budget"]) if data.get("budget") is not None else None,
            tokens=int(data.get("tokens") or 0),
            tokens_by_part={str(k): int(v) for k, v in (data.get("tokens_by_part") or {}).items()},
            recalled_scores={}
            if legacy
            else {int(k): float(v) for k, v in (data.get("recalled_scores") or {}).items()},
            over_budget=bool(data.get("over_budget", False)),
            error=error,
        )
    except (TypeError, ValueError, AttributeError) as exc:
        raise InvalidInput(f"malformed context report: {exc}") from exc
