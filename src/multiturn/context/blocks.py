"""A round as it would be sent: its messages, which of its items they carry, and what it costs.

``build_block`` turns a round's items into messages under the rules every policy keeps: failed
and empty answers are left out, an ``incomplete`` answer is sent as far as it got, a tool call
and its result travel together (a result without its call, or a call without its result in the
round, is left out: an upstream rejects either), reasoning is sent back only as the policy's
``reasoning_replay`` says, and the media of a round older than the media boundary become
placeholders (``[image omitted]``...). A block also records what the window's replay needs: its
tokens when it was the new input (``arrival``: its user message alone) and the bytes of media it
sends inline.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from ..records import ItemRecord
from ..settings import ReasoningReplay
from ..types import AudioPart, ImagePart, Message, Part, TextPart, VideoPart

_OMITTED = {ImagePart: "[image omitted]", AudioPart: "[audio omitted]", VideoPart: "[video omitted]"}


@dataclass(frozen=True, slots=True)
class Block:
    """One round as it would be sent: its messages, which of its items they carry, its tokens."""

    messages: tuple[Message, ...]
    kept: tuple[str, ...]
    dropped: tuple[str, ...]
    tokens: int
    arrival: int
    """Tokens of the round when it was the new input: its user message alone."""
    media_bytes: int = 0
    """Bytes of the media it sends inline (``data:`` URLs, inline audio)."""


def omit_media(message: Message) -> Message:
    """``message`` with its images, audio and video as placeholders (``[image omitted]``...)."""
    if all(isinstance(p, TextPart) for p in message.content):
        return message
    parts = tuple(p if isinstance(p, TextPart) else TextPart(_OMITTED[type(p)]) for p in message.content)
    return replace(message, content=parts)


def replayed(message: Message, replay: ReasoningReplay) -> Message:
    """``message`` with its reasoning as ``replay`` says, for a message of the newest round
    (``tool_chain`` keeps the reasoning of an assistant message with tool calls)."""
    if message.reasoning is None or replay == "keep" or (replay == "tool_chain" and message.tool_calls):
        return message
    return replace(message, reasoning=None)


def build_block(
    items: Sequence[ItemRecord], *, replay: ReasoningReplay, omit: bool, count: Callable[[Message], int]
) -> Block:
    """A round's messages, with every tool call paired (see the module docstring). ``replay`` as
    for ``replayed``: the caller passes ``tool_chain`` for the newest round only; ``omit``
    replaces the round's media by placeholders; ``count`` gives a message's tokens."""
    answered = {item.tool_call_id for item in items if item.role == "tool" and item.status != "failed"}
    called: set[str] = set()
    messages: list[Message] = []
    kept: list[str] = []
    dropped: list[str] = []
    for item in items:
        message = item.to_message()
        if message.tool_calls:
            calls = tuple(call for call in message.tool_calls if call.id in answered)
            message = replace(message, tool_calls=calls)
        if (
            item.status == "failed"
            or (item.role == "assistant" and not message.content and not message.tool_calls)
            or (item.role == "tool" and item.tool_call_id not in called)
        ):
            dropped.append(item.id)
            continue
        called.update(call.id for call in message.tool_calls)
        message = replayed(message, replay)
        messages.append(omit_media(message) if omit else message)
        kept.append(item.id)
    costs = [count(m) for m in messages]
    opened_by_user = bool(kept) and kept[0] == items[0].id and items[0].role == "user"
    arrival = costs[0] if opened_by_user else sum(costs)
    inline = sum(inline_bytes(part) for m in messages for part in m.content)
    return Block(tuple(messages), tuple(kept), tuple(dropped), sum(costs), arrival, inline)


def inline_bytes(part: Part) -> int:
    """Bytes a part carries inline: a ``data:`` URL's length (its base64 text is what is sent)."""
    if isinstance(part, ImagePart):
        return len(part.url) if part.url.startswith("data:") else 0
    if isinstance(part, AudioPart):
        return len(part.data or "") + (len(part.url) if part.url and part.url.startswith("data:") else 0)
    if isinstance(part, VideoPart):
        urls = (*part.frames, *([part.url] if part.url else []))
        return sum(len(url) for url in urls if url.startswith("data:"))
    return 0
