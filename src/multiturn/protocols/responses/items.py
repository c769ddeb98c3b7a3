"""Responses items <-> canonical messages. Pure functions, no I/O.

In: ``messages`` turns input items into canonical messages. A ``function_call`` item is a tool
call of an assistant message: the calls in a row (and an assistant message right before them)
make one assistant message, as the model's answer was one. A ``function_call_output`` item is
a ``tool`` message whose ``tool_call_id`` is the item's ``call_id``. A ``reasoning`` item is the
reasoning of the assistant message or call that follows it. ``check_inputs`` applies the history
rules every protocol shares (``protocols/history.py``: a tool result answers a call of the
assistant message before it), with the stored items the input continues when it opens with a
call's output.

Out: a stored answer is, in order, its reasoning item (``rs_`` + the answer's id), its message
(under the answer's id; left out when the answer is only calls) and one ``function_call`` item
per call (``fc_`` + the answer's id + ``_`` + the call's position). A stored ``tool`` item is a
``function_call_output`` item under its own id. ``stored_id`` maps a shown id back to the item it
was made from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from pydantic import BaseModel

from ...types import ImagePart, Message, Part, Role, TextPart, ToolCall
from ..history import check_history
from ..limits import InvalidParameter
from .wire import (
    FunctionCallItem,
    FunctionCallOutputItem,
    InputImage,
    InputMessage,
    OutputText,
    ReasoningItem,
)

REASONING_PREFIX = "rs_"
CALL_PREFIX = "fc_"
ItemStatus = Literal["in_progress", "completed", "incomplete"]


@dataclass(frozen=True, slots=True)
class Inputs:
    """Input items as canonical messages; ``positions[i]`` is the index of the input item
    message ``i`` starts at (errors name the item the client sent)."""

    messages: tuple[Message, ...]
    positions: tuple[int, ...]


def messages(items: Sequence[BaseModel], where: str) -> Inputs:
    """Input items (parsed by ``wire``) as canonical messages. Raises ``InvalidParameter``: a
    reasoning item that no answer follows, or whose content is encrypted."""
    out: list[Message] = []
    positions: list[int] = []
    reasoning: tuple[int, str] | None = None  # a reasoning item waiting for its answer
    joins = False  # the last message is an assistant message the next calls belong to
    for i, item in enumerate(items):
        if isinstance(item, ReasoningItem):
            if item.encrypted_content is not None:
                raise InvalidParameter(
                    f"{where}[{i}]: encrypted reasoning cannot be read here; pass the reasoning as content",
                    param=where,
                )
            texts = [p.text for p in item.content or ()] or [p.text for p in item.summary]
            earlier = reasoning[1] if reasoning is not None else ""
            reasoning, joins = (i, earlier + "".join(texts)), False
            continue
        thought = reasoning[1] if reasoning is not None else None
        if isinstance(item, FunctionCallItem):
            call = ToolCall(id=item.call_id, name=item.name, arguments=item.arguments)
            if joins and thought is None:
                out[-1] = replace(out[-1], tool_calls=(*out[-1].tool_calls, call))
            else:
                out.append(Message(role="assistant", reasoning=thought or None, tool_calls=(call,)))
                positions.append(reasoning[0] if reasoning is not None else i)
            reasoning, joins = None, True
            continue
        if thought is not None and not (isinstance(item, InputMessage) and item.role == "assistant"):
            break
        if isinstance(item, FunctionCallOutputItem):
            content = (TextPart(item.output),) if isinstance(item.output, str) else _parts(item.output, f"{where}[{i}]")
            out.append(Message(role="tool", content=content, tool_call_id=item.call_id))
        else:
            assert isinstance(item, InputMessage)
            role: Role = "system" if item.role == "developer" else item.role
            text = item.content
            parts = (TextPart(text),) if isinstance(text, str) else _parts(text, f"{where}[{i}]")
            out.append(Message(role=role, content=parts, reasoning=thought or None))
        positions.append(reasoning[0] if reasoning is not None else i)
        reasoning, joins = None, out[-1].role == "assistant"
    if reasoning is not None:
        raise InvalidParameter(
            f"{where}[{reasoning[0]}]: a reasoning item must be followed by the assistant message or "
            "function_call it led to",
            param=where,
        )
    return Inputs(tuple(out), tuple(positions))


def check_inputs(before: Sequence[Message], inputs: Inputs, where: str, *, continued: str) -> None:
    """The history rules over ``before`` (the stored items the input continues: from the last
    one that is not a tool result) and the input. ``continued`` names what ``before`` came from
    (``previous_response_id``, ``conversation``)."""
    start = len(before)

    def param_of(n: int) -> str:
        return continued if n < start else f"{where}[{inputs.positions[n - start]}]"

    check_history([*before, *inputs.messages], param_of)


def continued_by(path: Sequence[Message]) -> list[Message]:
    """The end of a stored path that tool results sent next may answer: from its last message
    that is not a tool result."""
    start = len(path)
    while start > 0 and path[start - 1].role == "tool":
        start -= 1
    return list(path[max(start - 1, 0) :])


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


# --- out ---------------------------------------------------------------------------------------


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


def call_id_of(answer_id: str, n: int) -> str:
    """The id the ``n``-th call of an answer is shown under."""
    return f"{CALL_PREFIX}{answer_id}_{n}"


def function_call_item(answer_id: str, n: int, call: ToolCall, status: ItemStatus) -> dict[str, Any]:
    return {
        "id": call_id_of(answer_id, n),
        "type": "function_call",
        "call_id": call.id,
        "name": call.name,
        "arguments": call.arguments,
        "status": status,
    }


def output_text(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def output_items(
    answer_id: str,
    content: str,
    reasoning: str | None,
    status: ItemStatus,
    tool_calls: Sequence[ToolCall] = (),
) -> tuple[dict[str, Any], ...]:
    """A stored answer as output items: its reasoning (if any), its message (unless it is only
    calls), its calls."""
    items = [reasoning_item(answer_id, reasoning, status)] if reasoning else []
    if content or not tool_calls:
        items.append(message_item(answer_id, content, status))
    items += [function_call_item(answer_id, n, call, status) for n, call in enumerate(tool_calls)]
    return tuple(items)


def item_objects(
    item_id: str,
    role: Role,
    content: Sequence[Part],
    status: str,
    *,
    tool_calls: Sequence[ToolCall] = (),
    tool_call_id: str | None = None,
) -> list[dict[str, Any]]:
    """A stored item as conversation items / input items: a message, a function call output,
    or an assistant message and its calls (the message left out when it has no text)."""
    shown: ItemStatus = "completed" if status == "completed" else "incomplete"
    if role == "tool":
        text = "".join(p.text for p in content if isinstance(p, TextPart))
        output: Any = text if all(isinstance(p, TextPart) for p in content) else [_input_part(p) for p in content]
        return [
            {"id": item_id, "type": "function_call_output", "call_id": tool_call_id, "output": output, "status": shown}
        ]
    if role != "assistant":
        parts = [_input_part(p) for p in content]
        return [{"id": item_id, "type": "message", "role": role, "status": shown, "content": parts}]
    text = "".join(p.text for p in content if isinstance(p, TextPart))
    objects = [message_item(item_id, text, shown)] if text or not tool_calls else []
    return objects + [function_call_item(item_id, n, call, shown) for n, call in enumerate(tool_calls)]


def item_object(item_id: str, role: Role, content: Sequence[Part], status: str) -> dict[str, Any]:
    """A stored message (no tool calls) as one item."""
    return item_objects(item_id, role, content, status)[0]


def stored_id(shown_id: str) -> str:
    """The stored item a shown item id was made from (a call's or a reasoning item's answer)."""
    if shown_id.startswith(CALL_PREFIX):
        answer, _, n = shown_id[len(CALL_PREFIX) :].rpartition("_")
        if answer and n.isdigit():
            return answer
    if shown_id.startswith(REASONING_PREFIX) and len(shown_id) > len(REASONING_PREFIX):
        return shown_id[len(REASONING_PREFIX) :]
    return shown_id


def _input_part(part: Part) -> dict[str, Any]:
    if isinstance(part, TextPart):
        return {"type": "input_text", "text": part.text}
    if isinstance(part, ImagePart):
        return {"type": "input_image", "image_url": part.url, "detail": part.detail or "auto"}
    return {"type": "input_text", "text": f"[{part.type} omitted]"}
