"""The client direction of OpenAI chat completions: what an upstream server sends, read back into
canonical types. Pure, no I/O; the inverse of ``stream.ChunkEncoder``, ``completion_to_response``
and ``error_to_wire`` (a round-trip test pins that what those write, these read back).

- ``parse_chunk``: one ``chat.completion.chunk`` event -> ``Chunk`` (choice 0's text, reasoning
  and tool-call pieces as a ``Delta``, its finish reason, the usage). ``ChunkReader`` reads a whole
  stream: one ``Delta`` per chunk that carries something, and one last delta with the finish
  reason and the usage (an OpenAI stream sends the usage in a chunk *after* the finish).
- ``parse_completion``: a ``chat.completion`` body -> ``Completion``.
- ``parse_usage``: ``usage`` -> ``Usage`` (cached and reasoning tokens from their details).
- ``parse_error``: an HTTP error answer -> the canonical error (context overflow ->
  ``ContextTooLong``, 429 -> ``RateLimited``, others ``UpstreamError`` with status and code); an
  error event inside a stream is raised by ``parse_chunk`` as ``UpstreamError``.

Reasoning is read from ``reasoning_content`` (Model Studio, DeepSeek, vLLM before 0.10) or
``reasoning`` (vLLM, OpenRouter). Only choice 0 is read. Content given as parts
(``[{"text": ...}]``) is joined. Unknown fields are ignored.

The relay calls ``ChunkReader.feed`` once per upstream event, so the common chunk (one choice, a
text piece) takes a short path that builds the ``Delta`` without the general walk.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from ...errors import ContextTooLong, RateLimited, UpstreamError
from ...types import Completion, Delta, FinishReason, ToolCall, ToolCallDelta, Usage

__all__ = [
    "Chunk",
    "ChunkReader",
    "error_fields",
    "parse_chunk",
    "parse_completion",
    "parse_error",
    "parse_usage",
    "retry_after",
]

# Model Studio: "Range of input length should be [1, 129024]"; vLLM: "This model's maximum context
# length is 4096 tokens. However, you requested 5000 tokens ...".
_MS_RANGE = re.compile(r"Range of input length should be \[\d+,\s*(\d+)\]")
_VLLM_RANGE = re.compile(r"maximum context length is (\d+) tokens\. However, you requested (\d+) tokens")
FINISH: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}
"""Wire finish reasons -> canonical ones; any other is ``stop``."""


@dataclass(frozen=True, slots=True)
class Chunk:
    """One stream chunk, read: choice 0's pieces (``None`` when it has none), its finish reason
    and the usage, each as present."""

    delta: Delta | None = None
    finish_reason: FinishReason | None = None
    usage: Usage | None = None


def parse_chunk(data: str | bytes, event: str = "") -> Chunk:
    """Read one SSE event's ``data`` (``event`` is the SSE event name, if any).

    Raises:
        UpstreamError: the data is not JSON, or it is an error event (``{"error": ...}`` or
            ``event: error``); the error's code is kept.
    """
    return _read(_loads(data), event)


def _loads(data: str | bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise UpstreamError(f"upstream sent a malformed stream event: {data[:200]!r}") from exc


def _read(chunk: Any, event: str) -> Chunk:
    if not isinstance(chunk, dict):
        return Chunk()
    error = chunk.get("error")
    if error or event == "error":
        message, code = error_fields(error if isinstance(error, dict | str) else chunk)
        raise UpstreamError(f"upstream error mid-stream: {message or 'unknown error'}", code=code)
    delta: Delta | None = None
    finish: FinishReason | None = None
    choices = chunk.get("choices") or ()
    choice = next((c for c in choices if isinstance(c, dict) and c.get("index", 0) == 0), None)
    if choice is not None:
        piece = choice.get("delta") or choice.get("message") or {}
        content = _text(piece.get("content"))
        reasoning = _text(piece.get("reasoning_content")) or _text(piece.get("reasoning"))
        calls = tuple(_tool_call_delta(c) for c in piece.get("tool_calls") or () if isinstance(c, dict))
        if content or reasoning or calls:
            delta = Delta(content=content, reasoning=reasoning, tool_calls=calls)
        reason = choice.get("finish_reason")
        if reason:
            finish = FINISH.get(reason, "stop")
    usage = chunk.get("usage")
    return Chunk(delta, finish, parse_usage(usage) if isinstance(usage, dict) else None)


class ChunkReader:
    """Reads one stream: ``feed`` each event, then ``final`` at its end.

    The finish reason is held until the usage that follows it is known, so the last delta
    carries both (once).
    """

    __slots__ = ("finish", "sent", "usage")

    def __init__(self) -> None:
        self.finish: FinishReason | None = None
        self.usage: Usage | None = None
        self.sent = False

    def feed(self, event: str, data: str | bytes) -> list[Delta]:
        """The deltas of one event (often one, sometimes none, two when the finish is due).

        Raises:
            UpstreamError: as ``parse_chunk``.
        """
        try:  # inline, not _loads: this runs once per relayed chunk
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise UpstreamError(f"upstream sent a malformed stream event: {data[:200]!r}") from exc
        if type(chunk) is not dict:
            return []
        fast = _content_only(chunk, event)
        if fast is not None:
            return fast
        read = _read(chunk, event)
        deltas = [read.delta] if read.delta is not None else []
        if read.finish_reason is not None and self.finish is None:
            self.finish = read.finish_reason
        if read.usage is not None:
            self.usage = read.usage
        if self.finish is not None and self.usage is not None and not self.sent:
            self.sent = True
            deltas.append(Delta(finish_reason=self.finish, usage=self.usage))
        return deltas

    def final(self, done: bool) -> Delta | None:
        """The finish delta at the end of the body (``done``: ``[DONE]`` was seen), if not sent
        yet.

        Raises:
            UpstreamError: the body ended before a finish reason and without ``[DONE]``.
        """
        if self.sent:
            return None
        if self.finish is None and not done:
            raise UpstreamError("upstream stream ended before it finished")
        self.sent = True
        return Delta(finish_reason=self.finish or "stop", usage=self.usage)


def _content_only(chunk: dict[str, Any], event: str) -> list[Delta] | None:
    """The common chunk (one choice, a text piece, nothing else) without the general walk."""
    choices = chunk.get("choices")
    if event or chunk.get("usage") or "error" in chunk or type(choices) is not list or len(choices) != 1:
        return None
    choice = choices[0]
    if type(choice) is not dict or choice.get("finish_reason") or choice.get("index", 0) != 0:
        return None
    delta = choice.get("delta")
    if type(delta) is not dict or delta.get("reasoning_content") or delta.get("reasoning") or delta.get("tool_calls"):
        return None
    content = delta.get("content")
    if content is None or content == "":
        return []
    return [Delta(content=content)] if type(content) is str else None


def parse_completion(raw: bytes) -> Completion:
    """A non-streamed ``chat.completion`` body as a ``Completion``.

    Raises:
        UpstreamError: the body is not JSON or has no choice.
    """
    body = json_body(raw)
    choices = body.get("choices") if isinstance(body, dict) else None
    if not choices or not isinstance(choices[0], dict):
        raise UpstreamError(f"upstream sent a response without choices: {raw[:200]!r}")
    choice = choices[0]
    message = choice.get("message") or {}
    calls = tuple(
        ToolCall(id=c.get("id") or f"call_{i}", name=(c.get("function") or {}).get("name") or "",
                 arguments=(c.get("function") or {}).get("arguments") or "")
        for i, c in enumerate(message.get("tool_calls") or ())
        if isinstance(c, dict)
    )  # fmt: skip
    usage = body.get("usage")
    return Completion(
        content=_text(message.get("content")),
        reasoning=_text(message.get("reasoning_content")) or _text(message.get("reasoning")),
        tool_calls=calls,
        finish_reason=FINISH.get(choice.get("finish_reason") or "stop", "stop"),
        usage=parse_usage(usage) if isinstance(usage, dict) else Usage(),
    )


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):  # content as parts: [{"text": ...}]
        return "".join(p.get("text") or "" for p in value if isinstance(p, dict))
    return ""


def _tool_call_delta(call: dict[str, Any]) -> ToolCallDelta:
    function = call.get("function") or {}
    return ToolCallDelta(
        index=int(call.get("index") or 0),
        id=call.get("id") or None,
        name=function.get("name") or None,
        arguments=function.get("arguments") or "",
    )


def parse_usage(usage: Mapping[str, Any]) -> Usage:
    """A wire ``usage`` object; absent counts are 0."""
    prompt_details = usage.get("prompt_tokens_details") or {}
    completion_details = usage.get("completion_tokens_details") or {}
    return Usage(
        prompt_tokens=int(usage.get("prompt_tokens") or 0),
        completion_tokens=int(usage.get("completion_tokens") or 0),
        cached_tokens=int(prompt_details.get("cached_tokens") or 0),
        reasoning_tokens=int(completion_details.get("reasoning_tokens") or 0),
    )


# --- errors -------------------------------------------------------------------------------------


def parse_error(status: int, raw: bytes, headers: Mapping[str, str]) -> Exception:
    """The canonical error for an HTTP error answer (``status`` >= 400, its body and headers)."""
    message, code = error_fields(json_body(raw))
    message = message or raw[:300].decode(errors="replace").strip() or f"HTTP {status}"
    if status in (400, 413) and (match := _MS_RANGE.search(message)):
        limit = int(match.group(1))
        # The upstream does not say how long the prompt was, only that it is over the limit.
        return ContextTooLong(message, prompt_tokens=limit + 1, limit=limit)
    if status in (400, 413) and (match := _VLLM_RANGE.search(message)):
        return ContextTooLong(message, prompt_tokens=int(match.group(2)), limit=int(match.group(1)))
    if status == 429:
        return RateLimited(f"upstream rate limit: {message}", retry_after=retry_after(headers))
    return UpstreamError(f"upstream error {status}: {message}", status=status, code=code)


def json_body(raw: bytes) -> Any:
    """A body as JSON: plain, or SSE-framed (Model Studio sends ``data: {...}`` for streams);
    ``None`` when it is neither."""
    text = raw.strip()
    if text.startswith(b"data:"):
        text = text[5:].split(b"\n", 1)[0].strip()
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return None


def error_fields(body: Any) -> tuple[str, str | None]:
    """``(message, code)`` of ``{"error": {...}}``, ``{"error": "..."}`` or a flat ``{"code", "message"}``."""
    if isinstance(body, dict) and "error" in body:
        body = body["error"]
    if isinstance(body, str):
        return body, None
    if not isinstance(body, dict):
        return "", None
    code = body.get("code") or body.get("type")
    return str(body.get("message") or ""), None if code is None else str(code)


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``retry-after`` (an HTTP date is not honoured)."""
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is not None:
            try:
                return max(0.0, float(value) * scale)
            except ValueError:  # an HTTP date: not honoured
                return None
    return None
