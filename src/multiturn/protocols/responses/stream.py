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
    response.completed (or response.incomplete when ``max_output_tokens`` cut the answer)

Reasoning streams as ``response.reasoning_text.*`` (Model Studio's choice for thinking models)
in a ``reasoning`` item that precedes the message. A failure after the first event is an
``error`` event followed by ``response.failed``; nothing follows them. No ``[DONE]``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import orjson

from ...types import Delta, FinishReason, Usage
from ..openai_chat.errors import describe
from .translate import (
    ItemStatus,
    ResponseState,
    message_item,
    output_text,
    reasoning_item,
    response_object,
)


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
        self._open: str | None = None  # "reasoning" | "message" while that item is streaming
        self._output: list[dict[str, Any]] = []

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
        return out

    def finish(self, finish_reason: FinishReason | None, usage: Usage | None) -> bytes:
        incomplete = finish_reason == "length"
        out = b""
        if self._open != "message" and not self._text:
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
