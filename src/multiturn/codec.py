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
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "cached_tokens": usage.cached_tokens,
        "reasoning_tokens": usage.reasoning_tokens,
    }


def decode_usage(data: Mapping[str, Any] | None) -> Usage | None:
    if data is None:
        return None
    return Usage(
        prompt_tokens=int(data.get("prompt_tokens", 0)),
        completion_tokens=int(data.get("completion_tokens", 0)),
        cached_tokens=int(data.get("cached_tokens", 0)),
        reasoning_tokens=int(data.get("reasoning_tokens", 0)),
    )


def encode_report(report: ContextReport, *, error: str | None = None) -> JSON:
    """A context report as stored with its answer (``error``: why the turn failed, if it did).
    Positions are runs written as text (``0,3-40``), so the stored report does not grow with the
    conversation."""
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
    if error is not None:
        data["error"] = error
    return data


def decode_report(data: Mapping[str, Any]) -> ContextReport | None:
    """The report ``encode_report`` stored; ``None`` for a record that holds only an error (a
    turn closed before it was planned) or a report in an older shape (lists of item ids, from
    before reports counted positions: its tokens are still read by ``report_tokens``).

    Raises:
        InvalidInput: a field of the wrong shape.
    """
    if "policy" not in data or not isinstance(data.get("kept"), str):
        return None
    try:
        return ContextReport(
            policy=str(data["policy"]),
            items=int(data.get("items") or 0),
            kept=parse_spans(data.get("kept") or ""),
            recalled=parse_spans(data.get("recalled") or ""),
            summarized=parse_spans(data.get("summarized") or ""),
            budget=data.get("budget"),
            tokens=int(data.get("tokens") or 0),
            tokens_by_part={str(k): int(v) for k, v in (data.get("tokens_by_part") or {}).items()},
            recalled_scores={int(k): float(v) for k, v in (data.get("recalled_scores") or {}).items()},
            over_budget=bool(data.get("over_budget", False)),
        )
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"malformed context report: {exc}") from exc
