"""``ChunkEncoder``: canonical deltas -> ``chat.completion.chunk`` SSE events, cheaply.

Every chunk is a precomputed prefix (id, object, created, model...), the delta JSON, and a
precomputed suffix, so the per-delta cost is one small ``orjson.dumps``. The shapes follow
Model Studio and the clients' traps (wire-protocols.md §1.4):

- every chunk that has a choice carries a string ``content`` or a string ``reasoning_content``
  (the guide's thinking loop adds ``delta.content`` whenever ``reasoning_content`` is null);
- ``usage`` is ``null`` on every chunk but the last one, which has ``choices: []`` and is sent only
  when the client asked for it (``stream_options.include_usage``);
- a tool call's ``id``, ``type`` and ``function.name`` appear once, in its first piece (the SDK's
  stream accumulator concatenates every string it sees again).
"""

from __future__ import annotations

from typing import Any

import orjson

from ...types import Completion, Delta, FinishReason, ToolCallDelta, Usage
from ..cost import cost_fields
from ..sse import DONE
from .errors import stream_error

_FINISH: dict[str | None, str] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "content_filter": "content_filter",
}


def finish_reason_wire(reason: FinishReason | None, *, tool_calls: bool = False) -> str:
    """The wire ``finish_reason``: ``cancelled``, ``error`` and none become ``stop`` (or
    ``tool_calls`` when the answer called tools); the others are the same."""
    return _FINISH.get(reason) or ("tool_calls" if tool_calls else "stop")


def finish_reason_out(c: Completion) -> str:
    return finish_reason_wire(c.finish_reason, tool_calls=bool(c.tool_calls))


def usage_out(*, prompt: int, completion: int, cached: int, reasoning: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached, "cache_creation_input_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": reasoning},
    }


def _usage(u: Usage) -> dict[str, Any]:
    out = usage_out(
        prompt=u.prompt_tokens, completion=u.completion_tokens, cached=u.cached_tokens, reasoning=u.reasoning_tokens
    )
    out.update(cost_fields(u.cost))
    return out


class ChunkEncoder:
    """Renders one stream. Call ``start()`` once, ``delta(d)`` per delta, then either
    ``finish(reason, usage)`` (finish chunk, usage chunk if asked, ``[DONE]``) or ``error(exc)``.

    ``thinking``: the stream may carry reasoning, so text chunks say ``"reasoning_content": null``
    and the role chunk ``"reasoning_content": ""`` (Model Studio's thinking-stream shape).
    """

    __slots__ = ("_calls_started", "_head", "_include_usage", "_open", "_reason_null", "_tail", "_thinking")

    def __init__(self, *, request_id: str, model: str, created: int, include_usage: bool, thinking: bool) -> None:
        self._open = (
            b'data: {"id":'
            + orjson.dumps(f"chatcmpl-{request_id}")
            + b',"object":"chat.completion.chunk","created":'
            + str(int(created)).encode()
            + b',"model":'
            + orjson.dumps(model)
            + b',"system_fingerprint":null,"choices":'
        )
        self._head = self._open + b'[{"index":0,"delta":'
        self._tail = b',"finish_reason":null,"logprobs":null}],"usage":null}\n\n'
        self._reason_null = b',"reasoning_content":null}' if thinking else b"}"
        self._include_usage = include_usage
        self._thinking = thinking
        self._calls_started: set[int] = set()

    def start(self) -> bytes:
        """The role chunk."""
        role = (
            b'{"role":"assistant","content":"","reasoning_content":""}'
            if self._thinking
            else b'{"role":"assistant","content":""}'
        )
        return self._head + role + self._tail

    def delta(self, d: Delta) -> bytes:
        """The chunks for one delta's text and tool-call pieces (``b""`` when it has none).
        ``finish_reason`` and ``usage`` are not rendered here: pass them to ``finish``."""
        out = b""
        if d.reasoning:
            out = self._head + b'{"content":null,"reasoning_content":' + orjson.dumps(d.reasoning) + b"}" + self._tail
        if d.tool_calls:
            calls = orjson.dumps([self._call(c) for c in d.tool_calls])
            text = b'{"content":' + orjson.dumps(d.content) + b',"tool_calls":' + calls
            out += self._head + text + self._reason_null + self._tail
        elif d.content:
            out += self._head + b'{"content":' + orjson.dumps(d.content) + self._reason_null + self._tail
        return out

    def _call(self, c: ToolCallDelta) -> dict[str, Any]:
        if c.index in self._calls_started:
            return {"index": c.index, "function": {"arguments": c.arguments}}
        self._calls_started.add(c.index)
        return {
            "index": c.index,
            "id": c.id or f"call_{c.index}",
            "type": "function",
            "function": {"name": c.name or "", "arguments": c.arguments},
        }

    def finish(self, finish_reason: FinishReason | None, usage: Usage | None) -> bytes:
        """The finish chunk, the usage chunk when asked for, and ``data: [DONE]``."""
        reason = finish_reason_wire(finish_reason, tool_calls=bool(self._calls_started))
        delta = b'{"content":""' + self._reason_null
        out = self._head + delta + b',"finish_reason":"' + reason.encode() + b'","logprobs":null}],"usage":null}\n\n'
        if self._include_usage:
            out += self._open + b'[],"usage":' + orjson.dumps(_usage(usage or Usage())) + b"}\n\n"
        return out + DONE

    def error(self, exc: BaseException) -> bytes:
        """The in-stream error event: the stream must end right after it."""
        return stream_error(exc)
