"""Recalled rounds as the planner receives them, and how they are placed in a request.

A retriever (lexical + dense ranking over the conversation's indexed rounds) picks rounds outside
the window that match the new input and hands them over as ``Recalled`` values with their
scores. The planner keeps the best that fit, puts them back in chronological order, and quotes
them at the start of the new input (``with_recalled``): headed ``RECALLED_HEADER``, each round
rendered as plain ``role: text`` lines (``render_items``), closed by ``RECALLED_END``, so they read
as quotations of the past, not as turns to continue. ``render_items`` is also the text a round
is indexed under.

Why in the new input and not in a system message before the window: recalled rounds change with
almost every question, and everything after the first changed token must be evaluated again (the
backend's prefix cache); placed last they leave the window's prefix cached. And current chat
templates (Qwen3.5 and later, among others) reject a system message anywhere but first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from ..records import ItemRecord
from ..types import AudioPart, ImagePart, Message, TextPart, VideoPart

RECALLED_HEADER = "Earlier in this conversation (recalled):"
RECALLED_END = "(End of the recalled rounds. The new message follows.)"


@dataclass(frozen=True, slots=True)
class Recalled:
    """One recalled round: its item ids (in path order), its retrieval score, and optionally
    its text as already rendered (``None``: the planner renders the path's items)."""

    item_ids: tuple[str, ...]
    score: float
    text: str | None = None


_PLACEHOLDERS = {ImagePart: "[image]", AudioPart: "[audio]", VideoPart: "[video]"}


def render_items(items: Sequence[ItemRecord]) -> str:
    """A round as ``role: text`` lines: no reasoning, media as ``[image]``, tool calls as
    ``assistant: [called name(arguments)]``, failed items left out."""
    lines: list[str] = []
    for item in items:
        if item.status == "failed":
            continue
        text = "".join(p.text if isinstance(p, TextPart) else _PLACEHOLDERS[type(p)] for p in item.content)
        calls = " ".join(f"[called {call.name}({call.arguments})]" for call in item.tool_calls)
        body = " ".join(piece for piece in (text, calls) if piece)
        if body:
            lines.append(f"{item.role}: {body}")
    return "\n".join(lines)


def with_recalled(message: Message, blocks: Sequence[str]) -> Message:
    """``message`` (the new input) with the recalled rounds (already in chronological order)
    quoted before its own text; an input that opens with media gets the quotation as a text
    part of its own in front."""
    quoted = "\n\n".join((RECALLED_HEADER, *blocks, RECALLED_END))
    first = message.content[0] if message.content else None
    if isinstance(first, TextPart):
        return replace(message, content=(TextPart(f"{quoted}\n\n{first.text}"), *message.content[1:]))
    return replace(message, content=(TextPart(quoted), *message.content))


def recalled_part(text: str) -> str:
    """The quotation ``with_recalled`` put at the start of ``text``, or ``""``."""
    if not text.startswith(RECALLED_HEADER) or RECALLED_END not in text:
        return ""
    return text[: text.index(RECALLED_END) + len(RECALLED_END)]
