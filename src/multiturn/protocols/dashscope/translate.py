"""DashScope native <-> canonical types: request bytes in, response bytes, SSE events and error
bodies out. Pure: no I/O, no clock, no randomness (the caller supplies the request id).

Choices (wire-protocols.md §2; the SDK is the judge):
- Streaming is chosen by headers only: ``X-DashScope-SSE: enable`` (any case) or an ``Accept``
  containing ``text/event-stream``. The SDK never sends ``stream`` in the body.
- ``incremental_output`` absent means **cumulative** (false), qwen-plus's documented default, so
  curl users get what Model Studio gives them. The dashscope 2.x SDK turns an explicit ``False``
  into ``true`` on the wire and merges the pieces itself, so SDK users are served either way.
- ``result_format`` absent means ``"text"`` on the text endpoint, ``"message"`` when thinking or
  tools are on (they cannot be expressed as text); the multimodal endpoint always answers
  ``"message"`` (VL models ignore the field). An explicit ``"text"`` with thinking or tools is a
  400, as on Model Studio.
- Media are never fetched: ``{"image": url}`` becomes ``ImagePart(url)`` whatever the scheme
  (``https:``, ``data:``, ``oss:``, ``file:``), likewise audio and video.
- Request errors carry Model Studio's exact texts (its error-code page). Range checks here are
  model-independent; a model's own limits (max output, window) are checked further in. The bounds
  are those of ``wire`` and ``protocols.limits``; the history rules are ``protocols.history``'s,
  shared with the OpenAI route (a tool message needs a ``tool_call_id`` answering a call of the
  assistant message before it; a tool call needs an id and a name: none is made up).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

import orjson

from multiturn.errors import (
    InvalidInput,
)
from multiturn.protocols.cost import cost_fields
from multiturn.protocols.dashscope import wire as w
from multiturn.protocols.dashscope.errors import NativeInvalidInput, classify
from multiturn.protocols.dashscope.errors import error_to_wire as error_to_wire  # re-exported: one door per protocol
from multiturn.protocols.history import check_history
from multiturn.protocols.limits import (
    DEFAULT_LIMITS,
    INT32_MAX,
    MAX_FUNCTION_NAME_CHARS,
    MAX_NAME_CHARS,
    MAX_STOP,
    MAX_TEXT_CHARS,
    MAX_TOOLS,
    InvalidParameter,
    Limits,
    check_items,
    check_passthrough,
)
from multiturn.types import (
    AudioPart,
    ChatRequest,
    Completion,
    Delta,
    GenerationParams,
    ImagePart,
    Message,
    Part,
    TextPart,
    ToolCall,
    ToolCallDelta,
    ToolSpec,
    Usage,
    VideoPart,
)

_BOOLS: Final = ("enable_thinking", "parallel_tool_calls")
_CONSUMED: Final = frozenset({"result_format", "incremental_output", "stream"})


@dataclass(frozen=True, slots=True)
class NativeOptions:
    """How to answer a native request; everything here is decided by ``parse_request``."""

    stream: bool = False
    incremental: bool = False
    result_format: Literal["text", "message"] = "message"
    multimodal: bool = False
    thinking: bool = False


# ---------------------------------------------------------------- requests


def parse_request(
    body: bytes, headers: Mapping[str, str], *, multimodal: bool, limits: Limits = DEFAULT_LIMITS
) -> tuple[ChatRequest, NativeOptions]:
    """Read a text- (``multimodal=False``) or multimodal-generation request body.

    Raises ``InvalidInput`` (with Model Studio's message) for anything Model Studio rejects, or
    beyond ``limits``.
    """
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise InvalidInput(w.BODY_INVALID) from None
    if not isinstance(doc, dict):
        raise InvalidInput(w.BODY_INVALID)
    model = doc.get("model")
    if model is None or model == "":
        raise NativeInvalidInput(w.MODEL_MISSING, "BadRequest.EmptyModel")
    inp = doc.get("input")
    if inp is None:
        raise NativeInvalidInput(w.INPUT_MISSING, "BadRequest.EmptyInput")
    params = doc.get("parameters")
    params = {} if params is None else params
    if not isinstance(model, str) or not isinstance(inp, dict) or not isinstance(params, dict):
        raise InvalidInput(w.BODY_INVALID)
    if len(model) > MAX_NAME_CHARS:
        raise InvalidParameter(f"Invalid 'model': longer than {MAX_NAME_CHARS} characters.", param="model")
    messages = _messages(inp, limits)
    gen = _params(params)
    thinking = gen.enable_thinking is True
    asked = params.get("result_format")
    fmt: Literal["text", "message"]
    if multimodal or (asked is None and (thinking or gen.tools)) or asked == "message":
        fmt = "message"
    elif asked is None or asked == "text":
        fmt = "text"
    else:
        raise InvalidInput('The result_format parameter must be "text" or "message"')
    if fmt == "text" and thinking:
        raise InvalidInput(w.THINKING_NEEDS_MESSAGE)
    if fmt == "text" and gen.tools:
        raise InvalidInput(w.TOOLS_NEED_MESSAGE)
    incremental = params.get("incremental_output")
    if incremental is not None and not isinstance(incremental, bool):
        raise InvalidInput("'incremental_output' must be Boolean")
    options = NativeOptions(
        stream=wants_stream(headers),
        incremental=incremental is True,
        result_format=fmt,
        multimodal=multimodal,
        thinking=thinking,
    )
    return ChatRequest(model=model, messages=messages, params=gen), options


def wants_stream(headers: Mapping[str, str]) -> bool:
    """SSE iff ``X-DashScope-SSE: enable`` (any case) or ``Accept`` names ``text/event-stream``."""
    sse = accept = ""
    for key, value in headers.items():
        low = key.lower()
        if low == "x-dashscope-sse":
            sse = value
        elif low == "accept":
            accept = value
    return sse.strip().lower() == "enable" or "text/event-stream" in accept.lower()


def _messages(inp: dict[str, Any], limits: Limits) -> tuple[Message, ...]:
    raw, prompt = inp.get("messages"), inp.get("prompt")
    if raw is None and prompt is None:
        raise InvalidInput(w.NO_INPUT)
    out: list[Message] = []
    if raw is not None:
        if not isinstance(raw, list):
            raise InvalidInput(w.BAD_MESSAGE)
        if not raw:
            raise InvalidInput("[] is too short")
        check_items(len(raw), limits, "input.messages")
        out.extend(_message(i, m) for i, m in enumerate(raw))
    else:
        history = inp.get("history") or []
        if not isinstance(history, list):
            raise InvalidInput(w.BODY_INVALID)
        check_items(2 * len(history) + 1, limits, "input.history")
        for turn in history:
            if not (isinstance(turn, dict) and isinstance(turn.get("user"), str) and isinstance(turn.get("bot"), str)):
                raise InvalidInput(w.BODY_INVALID)
            out += (Message.of("user", turn["user"]), Message.of("assistant", turn["bot"]))
    if prompt is not None:
        if not isinstance(prompt, str):
            raise InvalidInput(w.BODY_INVALID)
        out.append(Message.of("user", _text(prompt, "input.prompt")))
    if not any(m.role == "user" for m in out):
        raise InvalidInput(w.NO_USER)
    check_history(out, lambda i: f"input.messages[{i}]")
    return tuple(out)


def _text(text: str, param: str) -> str:
    if len(text) > MAX_TEXT_CHARS:
        raise InvalidParameter(
            f"Invalid '{param}': string too long. Expected a string with maximum length {MAX_TEXT_CHARS}, "
            f"but got a string with length {len(text)} instead.",
            param=param,
        )
    return text


def _message(i: int, m: Any) -> Message:
    if not isinstance(m, dict):
        raise InvalidInput(w.BAD_MESSAGE)
    raw_role = m.get("role")
    role = w.ROLES.get(raw_role) if isinstance(raw_role, str) else None
    if role is None:
        allowed = "['user', 'assistant', 'system', 'function', 'plugin', 'tool']"
        raise InvalidInput(f"{raw_role} is not one of {allowed} - 'input.messages.[{i}].role'")
    content = m.get("content")
    parts: tuple[Part, ...]
    if isinstance(content, str):
        parts = (TextPart(_text(content, f"input.messages[{i}].content")),) if content else ()
    elif isinstance(content, list):
        parts = tuple(_item(x, f"input.messages[{i}].content[{j}]") for j, x in enumerate(content))
    elif content is None and role == "assistant":
        parts = ()
    elif content is None:
        raise InvalidInput(w.NO_CONTENT)
    else:
        raise InvalidInput(w.BODY_INVALID)
    reasoning, call_id, name = m.get("reasoning_content"), m.get("tool_call_id"), m.get("name")
    return Message(
        role=role,
        content=parts,
        reasoning=reasoning if isinstance(reasoning, str) and reasoning else None,
        tool_calls=_tool_calls(m.get("tool_calls"), f"input.messages[{i}].tool_calls"),
        tool_call_id=call_id if isinstance(call_id, str) else None,
        name=name if isinstance(name, str) else None,
    )


_ITEM_NUMBERS: Final[dict[str, tuple[bool, float, float, str]]] = {
    "min_pixels": (True, 1, INT32_MAX, f"[1, {INT32_MAX}]"),
    "max_pixels": (True, 1, INT32_MAX, f"[1, {INT32_MAX}]"),
    "fps": (False, 0, 1000, "(0, 1000]"),
}
"""Hints a content item may carry (read by Model Studio, not passed on here): checked all the same."""


def _item(x: Any, param: str) -> Part:
    if isinstance(x, dict):
        for key, (integer, low, high, bounds) in _ITEM_NUMBERS.items():
            value = x.get(key)
            if value is not None and (
                isinstance(value, bool)
                or not isinstance(value, int if integer else (int, float))
                or not (low <= value <= high if integer else low < value <= high)
            ):
                raise InvalidParameter(f"Invalid '{param}.{key}': expected a number in {bounds}", param=param)
        kind = x.get("type")
        if "text" in x and kind in (None, "text") and isinstance(x["text"], str):
            return TextPart(_text(x["text"], param))
        if isinstance(x.get("image"), str):
            return ImagePart(url=x["image"])
        if isinstance(x.get("audio"), str):
            return AudioPart(url=x["audio"])
        video = x.get("video")
        if isinstance(video, str):
            return VideoPart(url=video)
        if isinstance(video, list) and all(isinstance(f, str) for f in video):
            return VideoPart(frames=tuple(video))
    raise InvalidInput(w.BAD_ITEM)


def _invalid(name: str) -> InvalidInput:
    return InvalidInput(f"Required parameter({name}) missing or invalid, please check the request parameters.")


def _tool_calls(raw: Any, param: str) -> tuple[ToolCall, ...]:
    """An assistant message's tool calls as sent; one without an id or a name is refused by
    ``check_history`` (none is made up: a tool message could not name it)."""
    if not raw:
        return ()
    if not isinstance(raw, list):
        raise _invalid("tool_calls")
    calls = []
    for i, call in enumerate(raw):
        fn = call.get("function") if isinstance(call, dict) else None
        name, cid = (fn.get("name", ""), call.get("id", "")) if isinstance(fn, dict) else (None, None)
        if not isinstance(name, str) or not isinstance(cid, str | None) or len(name) > MAX_FUNCTION_NAME_CHARS:
            raise _invalid("tool_calls")
        args = fn.get("arguments") or "" if isinstance(fn, dict) else ""
        if not isinstance(args, str):
            check_passthrough(f"{param}[{i}].function.arguments", args)
            args = orjson.dumps(args).decode()
        calls.append(ToolCall(id=cid or "", name=name, arguments=args))
    return tuple(calls)


def _params(p: dict[str, Any]) -> GenerationParams:
    kw: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, value in p.items():
        if value is None or key in _CONSUMED:
            continue
        rule = w.PARAMETER_RANGES.get(key)
        if rule is not None:
            integer, accepts, message = rule
            if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)):
                raise InvalidInput(f"'{key}' must be {'Integer' if integer else 'Float'}")
            if not accepts(value):
                raise InvalidInput(message)
            top = w.PARAMETER_MAXIMA.get(key)
            if top is not None and value > top:
                raise InvalidParameter(f"Range of {key} should be [0, {top}]", param=key)
            # top_logprobs is no canonical parameter: checked here, passed on as it came
            (extra if key == "top_logprobs" else kw)[key] = value if integer else float(value)
        elif key in _BOOLS:
            if not isinstance(value, bool):
                raise InvalidInput(f"'{key}' must be Boolean")
            kw[key] = value
        elif key == "stop":
            stop = _stop(value)
            if stop is None:
                extra["stop"] = value  # token-id stops: not canonical, passed on as they came
            else:
                kw["stop"] = stop
        elif key == "tools":
            kw["tools"] = _tools(value)
        elif key == "tool_choice":
            if value not in ("auto", "none") and not isinstance(value, dict):
                raise InvalidInput('tool_choice is one of the strings that should be ["none", "auto"]')
            kw["tool_choice"] = value
        elif key == "response_format":
            kind = value.get("type") if isinstance(value, dict) else value
            if not isinstance(value, dict) or kind not in ("text", "json_object", "json_schema"):
                raise InvalidInput(
                    "Unknown format of response_format, response_format should be a dict, includes 'type' and an "
                    f"optional key 'json_schema'. The response_format type from user is {kind}."
                )
            kw["response_format"] = value
        else:
            extra[key] = value
    for key in ("tool_choice", "response_format"):
        check_passthrough(key, kw.get(key))
    for key, value in extra.items():
        check_passthrough(key, value)
    return GenerationParams(**kw, extra=extra)


def _stop(value: Any) -> tuple[str, ...] | None:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list):
        if len(value) > MAX_STOP:
            raise InvalidParameter(f"Invalid 'stop': at most {MAX_STOP} stop sequences", param="stop")
        if all(isinstance(s, str) for s in value):
            return tuple(value)
        if all(_is_int(s) for s in value) or all(isinstance(s, list) and all(map(_is_int, s)) for s in value):
            return None
    raise InvalidInput(w.STOP_TYPES)


def _is_int(x: Any) -> bool:
    """A token id: an integer in [0, 2**31 - 1]."""
    return isinstance(x, int) and not isinstance(x, bool) and 0 <= x <= INT32_MAX


def _tools(value: Any) -> tuple[ToolSpec, ...]:
    if not isinstance(value, list) or len(value) > MAX_TOOLS:
        raise _invalid("tools")
    specs = []
    for i, tool in enumerate(value):
        fn = tool.get("function") if isinstance(tool, dict) else None
        kind = tool.get("type", "function") if isinstance(tool, dict) else None
        if kind != "function" or not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise _invalid("tools")
        desc, schema, strict = fn.get("description"), fn.get("parameters"), fn.get("strict")
        if not isinstance(desc, str | None) or not isinstance(schema, dict | None):
            raise _invalid("tools")
        if not isinstance(strict, bool | None):
            raise _invalid("tools")
        if not 1 <= len(fn["name"]) <= MAX_FUNCTION_NAME_CHARS:
            raise _invalid("tools")
        check_passthrough(f"tools[{i}].function.parameters", schema)
        specs.append(ToolSpec(name=fn["name"], description=desc, parameters=schema, strict=strict))
    return tuple(specs)


# ---------------------------------------------------------------- responses

_WIRE_FINISH: Final = frozenset({"stop", "length", "tool_calls", "content_filter"})


def _finish(reason: str | None, has_calls: bool = False) -> str:
    if reason in _WIRE_FINISH:
        return reason
    return "tool_calls" if reason is None and has_calls else "stop"


def _usage(u: Usage, multimodal: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "input_tokens": u.prompt_tokens,
        "output_tokens": u.completion_tokens,
        "total_tokens": u.total_tokens,
        "prompt_tokens_details": {"cached_tokens": u.cached_tokens},
        "output_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
    }
    if multimodal:
        out["cached_tokens"] = u.cached_tokens
    out.update(cost_fields(u.cost))
    return out


def completion_to_response(completion: Completion, *, request_id: str, options: NativeOptions) -> bytes:
    """The non-stream (HTTP 200, ``application/json``) body for a whole answer."""
    finish = _finish(completion.finish_reason, bool(completion.tool_calls))
    output: dict[str, Any]
    if options.result_format == "text":
        output = {"finish_reason": finish, "text": completion.content}
    else:
        text = completion.content
        message: dict[str, Any] = {"role": "assistant", "content": [{"text": text}] if options.multimodal else text}
        if options.thinking or completion.reasoning:
            message["reasoning_content"] = completion.reasoning
        if completion.tool_calls:
            message["tool_calls"] = [
                {"index": i, "id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                for i, c in enumerate(completion.tool_calls)
            ]
        output = {"choices": [{"finish_reason": finish, "message": message}]}
    usage = _usage(completion.usage, options.multimodal)
    return orjson.dumps({"output": output, "usage": usage, "request_id": request_id})


class EventEncoder:
    """Renders one stream's SSE events, in order; one instance per stream.

    ``delta`` renders a piece of text, reasoning or tool call as an intermediate event (an
    empty delta gives ``b""``: nothing to send; a delta's ``finish_reason`` is not rendered:
    call ``finish``). Usage is a running total on every event: ``input_tokens`` as given to the
    constructor (or by a delta's ``usage``), one output token counted per delta, replaced by the
    true totals in the ``finish`` event.
    """

    def __init__(self, request_id: str, options: NativeOptions, *, input_tokens: int = 0) -> None:
        self._request_id = request_id
        self._incremental = options.incremental
        self._multimodal = options.multimodal
        self._text_format = options.result_format == "text"
        self._show_reasoning = options.thinking
        self._n = 0
        self._input = input_tokens
        self._output = 0
        self._content = ""
        self._reasoning = ""
        self._calls: dict[int, list[str]] = {}  # index -> [id, name, arguments] (cumulative mode)
        self._named: set[int] = set()  # indexes whose id/name were sent (incremental mode)

    def delta(self, d: Delta) -> bytes:
        content, reasoning, pieces = d.content, d.reasoning, d.tool_calls
        if not (content or (not self._text_format and (reasoning or pieces))):
            return b""
        if d.usage is not None:
            self._input, self._output = d.usage.prompt_tokens, d.usage.completion_tokens
        else:
            self._output += 1
        if reasoning:
            self._show_reasoning = True
        calls: list[dict[str, Any]] | None = None
        if self._incremental:
            if pieces:
                calls = [self._piece(p) for p in pieces]
        else:
            self._content = content = self._content + content
            self._reasoning = reasoning = self._reasoning + reasoning
            for p in pieces:
                call = self._calls.setdefault(p.index, ["", "", ""])
                call[0], call[1] = call[0] or p.id or "", call[1] or p.name or ""
                call[2] += p.arguments
            calls = self._full_calls()
        usage = {"input_tokens": self._input, "output_tokens": self._output, "total_tokens": self._input + self._output}
        return self._event(content, reasoning, calls, "null", usage)

    def finish(self, finish_reason: str, usage: Usage) -> bytes:
        """The last event: the real finish reason and the true usage. In cumulative mode it
        carries the whole answer; in incremental mode an empty piece."""
        if self._incremental:
            content, reasoning, calls = "", "", None
        else:
            content, reasoning, calls = self._content, self._reasoning, self._full_calls()
        reason = _finish(finish_reason, bool(self._calls or self._named))
        return self._event(content, reasoning, calls, reason, _usage(usage, self._multimodal))

    def error(self, exc: BaseException) -> bytes:
        """An ``event:error`` with ``status:`` (the dashscope SDK stops there and reports it)."""
        status, code, message, _ = classify(exc)
        self._n += 1
        data = orjson.dumps({"code": code, "message": message, "request_id": self._request_id})
        return b"id:%d\nevent:error\nstatus:%d\n:HTTP_STATUS/%d\ndata:%b\n\n" % (self._n, status, status, data)

    def _piece(self, p: ToolCallDelta) -> dict[str, Any]:
        first = p.index not in self._named
        self._named.add(p.index)
        fn = {"name": p.name, "arguments": p.arguments} if first and p.name else {"arguments": p.arguments}
        return {"index": p.index, "id": (p.id or "") if first else "", "type": "function", "function": fn}

    def _full_calls(self) -> list[dict[str, Any]] | None:
        if not self._calls:
            return None
        return [
            {"index": i, "id": c[0], "type": "function", "function": {"name": c[1], "arguments": c[2]}}
            for i, c in sorted(self._calls.items())
        ]

    def _event(
        self, content: str, reasoning: str, calls: list[dict[str, Any]] | None, finish: str, usage: dict[str, Any]
    ) -> bytes:
        self._n += 1
        output: dict[str, Any]
        if self._text_format:
            output = {"finish_reason": finish, "text": content}
        else:
            message: dict[str, Any] = {
                "role": "assistant",
                "content": ([{"text": content}] if content else []) if self._multimodal else content,
            }
            if self._show_reasoning:
                message["reasoning_content"] = reasoning
            if calls:
                message["tool_calls"] = calls
            output = {"choices": [{"message": message, "finish_reason": finish}]}
        data = orjson.dumps({"output": output, "usage": usage, "request_id": self._request_id})
        return b"id:%d\nevent:result\n:HTTP_STATUS/200\ndata:%b\n\n" % (self._n, data)
