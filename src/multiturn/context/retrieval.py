"""Recalled rounds as the planner receives them, and how they are placed in a request.

A retriever (lexical + dense ranking over the conversation's indexed rounds) picks rounds outside
the window that match the new input and hands them over as ``Recalled`` values with their
scores. The planner keeps the best that fit, puts them back in chronological order, and quotes
them at the end of the leading system message (``with_recalled``), after the system prompt and
the summary: headed ``RECALLED_HEADER``, each round rendered as plain ``role: text`` lines
(``render_items``), so they read as quotations of the past, not as turns to continue.
``render_items`` is also the text a round is indexed under.

Why there: current chat templates (Qwen3.5 and later, among others) reject a system message
anywhere but first, so the planner adds none of its own; and before the window, because a
recalled set often stays the same for several turns (it changes mostly when the window drops
rounds, which changes the prompt there anyway), and then the whole prompt stays cached. Quoted
in the new input instead, the quotation was evaluated again on every turn: the cache benchmark
measured 25.6 % cached once full against 63.2 % over the same turns (see
``docs/architecture.md``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..records import ItemRecord
from ..types import AudioPart, ImagePart, Message, TextPart, VideoPart
from .summary import join_system

RECALLED_HEADER = "Earlier in this conversation (recalled):"


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


def with_recalled(head: Sequence[Message], blocks: Sequence[str]) -> list[Message]:
    """``head`` (the leading system messages) with the recalled rounds (already in
    chronological order) quoted at the end of the last of them."""
    return join_system(head, "\n\n".join((RECALLED_HEADER, *blocks)))
