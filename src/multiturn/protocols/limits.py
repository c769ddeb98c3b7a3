"""The bounds every protocol's request fields are held to at the edge, and the caps on a request's
input items and on what one turn stores.

Static bounds (a field's range, a string's or a list's length) are constants here, used by the
pydantic wire models of each protocol (``Field(ge=..., le=...)``); a value out of range is an
``InvalidParameter`` (HTTP 400 in the protocol's own error shape, ``param`` naming the field)
before anything is stored or sent upstream. The two caps an operator sets (``Limits``: the
settings ``max_input_items`` and ``max_turn_bytes``) are checked by each protocol's ``translate``
once the body is parsed: ``check_items`` on every request, ``check_turn_bytes`` on the requests
that store a turn.

Fields a protocol passes on to an upstream as they came (unknown parameters, JSON schemas, tool
parameters) must be JSON an upstream body can carry: ``check_passthrough`` refuses integers
outside 64 bits and nesting deeper than the serializer takes, which were 500s before.
docs/architecture.md ("Validation at the edge") has the table of every field and its bound.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Final

import orjson
from pydantic import Field, StringConstraints

from ..errors import InvalidParameter as InvalidParameter  # where the protocols import it from
from ..types import AudioPart, ImagePart, Message, TextPart, VideoPart

INT32_MAX: Final = 2**31 - 1
INT64_MAX: Final = 2**63 - 1
MAX_TOKENS_CAP: Final = INT32_MAX
"""Upper bound of ``max_tokens`` / ``max_output_tokens`` / ``thinking_budget`` at the edge; the
backend enforces the model's real limit further in."""
MAX_TEXT_CHARS: Final = 10_485_760
"""OpenAI's maximum length of a message's text or of ``input`` (10 Mi characters)."""
MAX_ID_CHARS: Final = 128
"""Ids a client names (responses, conversations, items): ours are under 40 characters."""
MAX_NAME_CHARS: Final = 256
"""Model names and context policy names."""
MAX_FUNCTION_NAME_CHARS: Final = 64
"""OpenAI's limit on a function's name."""
MAX_TOOLS: Final = 128
"""OpenAI's limit on the functions of one request."""
MAX_STOP: Final = 16
"""Stop sequences of one request."""
MAX_METADATA_PAIRS: Final = 16
MAX_METADATA_KEY_CHARS: Final = 64
MAX_METADATA_VALUE_CHARS: Final = 512
"""OpenAI's metadata: 16 pairs, keys up to 64 characters, values up to 512."""
MAX_JSON_DEPTH: Final = 254
"""Nesting of a passed-on JSON value: the JSON serializer of upstream bodies (orjson) stops there."""

DEFAULT_MAX_INPUT_ITEMS: Final = 10_000
DEFAULT_MAX_TURN_BYTES: Final = 16 * 1024 * 1024

Metadata = Annotated[
    dict[
        Annotated[str, StringConstraints(max_length=MAX_METADATA_KEY_CHARS)],
        Annotated[str, StringConstraints(max_length=MAX_METADATA_VALUE_CHARS)],
    ],
    Field(max_length=MAX_METADATA_PAIRS, description="up to 16 pairs; keys up to 64 characters, values up to 512"),
]
Text = Annotated[str, StringConstraints(max_length=MAX_TEXT_CHARS)]
Id = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID_CHARS)]
Name = Annotated[str, StringConstraints(max_length=MAX_NAME_CHARS)]
FunctionName = Annotated[str, StringConstraints(min_length=1, max_length=MAX_FUNCTION_NAME_CHARS)]


@dataclass(frozen=True, slots=True)
class Limits:
    """The caps an operator sets (settings ``max_input_items``, ``max_turn_bytes``)."""

    max_input_items: int = DEFAULT_MAX_INPUT_ITEMS
    """Messages (input items) one request may carry, whatever the protocol."""
    max_turn_bytes: int = DEFAULT_MAX_TURN_BYTES
    """Bytes of text and media one stored turn's input items may hold (``turn_bytes``)."""


DEFAULT_LIMITS: Final = Limits()
"""The settings' defaults."""


def check_items(count: int, limits: Limits, param: str) -> None:
    """Refuse a request with more input items than ``limits.max_input_items``."""
    if count > limits.max_input_items:
        raise InvalidParameter(
            f"Invalid '{param}': array too long. Expected an array with maximum length "
            f"{limits.max_input_items}, but got an array with length {count} instead.",
            param=param,
        )


def turn_bytes(messages: Iterable[Message], instructions: str | None = None) -> int:
    """What a turn's input items store, in bytes: their text (UTF-8), media references (URLs,
    inline data), tool calls and tool call ids, and the turn's instructions."""
    size = len(instructions.encode()) if instructions else 0
    for m in messages:
        for part in m.content:
            if isinstance(part, TextPart):
                size += len(part.text.encode())
            elif isinstance(part, ImagePart):
                size += len(part.url)
            elif isinstance(part, AudioPart):
                size += len(part.url or "") + len(part.data or "")
            elif isinstance(part, VideoPart):
                size += len(part.url or "") + sum(len(f) for f in part.frames)
        for call in m.tool_calls:
            size += len(call.id) + len(call.name.encode()) + len(call.arguments.encode())
        if m.tool_call_id:
            size += len(m.tool_call_id)
    return size


def check_turn_bytes(
    messages: Sequence[Message], limits: Limits, param: str, *, instructions: str | None = None
) -> None:
    """Refuse a turn whose input items would store more than ``limits.max_turn_bytes``."""
    size = turn_bytes(messages, instructions)
    if size > limits.max_turn_bytes:
        raise InvalidParameter(
            f"Invalid '{param}': the input items of this turn hold {size} bytes of text and media, "
            f"more than the {limits.max_turn_bytes} bytes a stored turn may hold (setting max_turn_bytes).",
            param=param,
        )


def check_passthrough(param: str, value: Any) -> None:
    """Refuse a value passed on to an upstream that its JSON body cannot carry: an integer outside
    64 bits, or nesting deeper than ``MAX_JSON_DEPTH``. ``param`` names the field."""
    try:
        orjson.dumps(value)
    except orjson.JSONEncodeError:
        raise InvalidParameter(
            f"Invalid '{param}': integers must fit in 64 bits and JSON values nest at most {MAX_JSON_DEPTH} levels.",
            param=param,
        ) from None
