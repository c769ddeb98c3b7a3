"""``ResponseEventEncoder``: canonical deltas -> the Responses API's server-sent events.

Each event is ``event: <type>`` and ``data: <json>`` with a ``sequence_number`` counting from 0.
The order, as OpenAI and Model Studio send it:

    response.created · response.in_progress
    [reasoning]  response.output_item.added · response.content_part.added (reasoning_text)
                 response.reasoning_text.delta … · response.reasoning_text.done
                 response.content_part.done · response.output_item.done
    [message]    response.output_item.added · response.content_part.added (output_text)
                 response.output_text.delta … · response.output_text.done
                 response.content_part.done · response.output_item.done
    [each call]  response.output_item.added (a function_call item, arguments "")
                 response.function_call_arguments.delta … · response.function_call_arguments.done
                 response.output_item.done
    response.completed (or response.incomplete when ``max_output_tokens`` cut the answer)

Reasoning streams as ``response.reasoning_text.*`` (Model Studio's choice for thinking models)
in a ``reasoning`` item that precedes the message. An answer that is only calls has no message
item. ``output_index`` counts the items in the order they open. A failure after the first event is an
``error`` event followed by ``response.failed``; nothing follows them. No ``[DONE]``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import orjson

from ...types import Delta, FinishReason, ToolCall, ToolCallDelta, Usage
from ..openai_chat.errors import describe
from .items import ItemStatus, call_id_of, function_call_item, message_item, output_text, reasoning_item
from .translate import ResponseState, response_object


def response_error_code(status: int) -> str:
    """``response.error.code`` is one of OpenAI's fixed codes: the closest for an HTTP status."""
    if status == 429:
        return "rate_limit_exceeded"
    return "invalid_prompt" if 400 <= status < 500 else "server_error"


class ResponseEventEncoder:
    """Renders one response's stream. ``start()`` once, ``delta(d)`` per delta, then
    ``finish(reason, usage)`` or ``error(exc)``. ``state`` is the response as created (status
    ``in_progress``); ``answer_id`` is the id the answer is stored under."""

    def __init__(self, state: ResponseState, answer_id: str) -> None:
        self._state = state
        self._answer = answer_id
        self._seq = 0
        self._reasoning: list[str] = []
        self._text: list[str] = []
        self._open: str | None = None  # "reasoning" | "message" | "call" while that item is streaming
        self._output: list[dict[str, Any]] = []
        self._calls = 0  # the calls opened so far
        self._call: ToolCall | None = None  # the call streaming (its arguments so far)
        self._call_index: int | None = None  # its index in the deltas

    def _event(self, kind: str, body: dict[str, Any]) -> bytes:
        data = orjson.dumps({"type": kind, **body, "sequence_number": self._seq})
        self._seq += 1
        return b"event: " + kind.encode() + b"\ndata: " + data + b"\n\n"

    def start(self) -> bytes:
        response = response_object(self._state)
        return self._event("response.created", {"response": response}) + self._event(
            "response.in_progress", {"response": response}
        )

    def delta(self, d: Delta) -> bytes:
        out = b""
        if d.reasoning:
            if self._open != "reasoning":
                out += self._close() + self._open_item("reasoning")
            self._reasoning.append(d.reasoning)
            out += self._event("response.reasoning_text.delta", {**self._where(), "delta": d.reasoning})
        if d.content:
            if self._open != "message":
                out += self._close() + self._open_item("message")
            self._text.append(d.content)
            out += self._event("response.output_text.delta", {**self._where(), "delta": d.content, "logprobs": []})
        for piece in d.tool_calls:
            out += self._call_piece(piece)
        return out

    def _call_piece(self, piece: ToolCallDelta) -> bytes:
        out = b""
        if self._open != "call" or piece.index != self._call_index:
            out += self._close()
            self._open, self._call_index = "call", piece.index
            self._call = ToolCall(id=piece.id or f"call_{piece.index}", name=piece.name or "", arguments="")
            item = function_call_item(self._answer, self._calls, self._call, "in_progress")
            out += self._event("response.output_item.added", {"output_index": len(self._output), "item": item})
        assert self._call is not None
        if piece.arguments:
            self._call = replace(self._call, arguments=self._call.arguments + piece.arguments)
            where = {"item_id": call_id_of(self._answer, self._calls), "output_index": len(self._output)}
            out += self._event("response.function_call_arguments.delta", {**where, "delta": piece.arguments})
        return out

    def finish(self, finish_reason: FinishReason | None, usage: Usage | None) -> bytes:
        incomplete = finish_reason == "length"
        out = b""
        if not self._text and not self._calls and self._open not in ("message", "call"):
            out += self._close() + self._open_item("message")  # an empty answer is still a message
        out += self._close(status="incomplete" if incomplete else "completed")
        state = replace(
            self._state,
            status="incomplete" if incomplete else "completed",
            output=tuple(self._output),
            usage=usage or Usage(),
            incomplete_reason="max_output_tokens" if incomplete else None,
        )
        kind = "response.incomplete" if incomplete else "response.completed"
        return out + self._event(kind, {"response": response_object(state)})

    def error(self, exc: BaseException) -> bytes:
        detail = describe(exc)
        out = self._event("error", {"code": detail.code, "message": detail.message, "param": detail.param})
        state = replace(
            self._state,
            status="failed",
            output=tuple(self._output),
            error={"code": response_error_code(detail.status), "message": detail.message},
        )
        return out + self._event("response.failed", {"response": response_object(state)})

    # -- items -----------------------------------------------------------------------------

    def _where(self) -> dict[str, Any]:
        item_id = self._item_id(self._open or "message")
        return {"item_id": item_id, "output_index": len(self._output), "content_index": 0}

    def _item_id(self, kind: str) -> str:
        return reasoning_item(self._answer, "", "in_progress")["id"] if kind == "reasoning" else self._answer

    def _open_item(self, kind: str) -> bytes:
        self._open = kind
        if kind == "reasoning":
            item = reasoning_item(self._answer, "", "in_progress")
            item["content"] = []
            part: dict[str, Any] = {"type": "reasoning_text", "text": ""}
        else:
            item = message_item(self._answer, "", "in_progress")
            item["content"] = []
            part = output_text("")
        where = self._where()
        added = self._event("response.output_item.added", {"output_index": where["output_index"], "item": item})
        return added + self._event("response.content_part.added", {**where, "part": part})

    def _close(self, status: ItemStatus = "completed") -> bytes:
        if self._open is None:
            return b""
        if self._open == "call":
            return self._close_call(status)
        where = self._where()
        if self._open == "reasoning":
            text = "".join(self._reasoning)
            item = reasoning_item(self._answer, text, status)
            done = self._event("response.reasoning_text.done", {**where, "text": text})
            part: dict[str, Any] = {"type": "reasoning_text", "text": text}
        else:
            text = "".join(self._text)
            item = message_item(self._answer, text, status)
            done = self._event("response.output_text.done", {**where, "text": text, "logprobs": []})
            part = output_text(text)
        done += self._event("response.content_part.done", {**where, "part": part})
        done += self._event("response.output_item.done", {"output_index": where["output_index"], "item": item})
        self._output.append(item)
        self._open = None
        return done

    def _close_call(self, status: ItemStatus) -> bytes:
        assert self._call is not None
        index = len(self._output)
        item = function_call_item(self._answer, self._calls, self._call, status)
        where = {"item_id": item["id"], "output_index": index}
        done = self._event(
            "response.function_call_arguments.done",
            {**where, "name": self._call.name, "arguments": self._call.arguments},
        )
        done += self._event("response.output_item.done", {"output_index": index, "item": item})
        self._output.append(item)
        self._calls += 1
        self._open, self._call, self._call_index = None, None, None
        return done
