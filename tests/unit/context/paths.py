"""Conversation paths for the context tests: a builder for hand-written ones, a hypothesis
strategy for generated ones (tool exchanges, failed and empty answers, reasoning, images)."""

from __future__ import annotations

import base64
import struct
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

from multiturn.records import ItemRecord
from multiturn.types import ImagePart, Part, Role, TextPart, ToolCall


def png_url(width: int, height: int) -> str:
    """A ``data:`` URL holding the header of a ``width`` x ``height`` PNG (enough to size it)."""
    header = b"\x89PNG\r\n\x1a\n" + struct.pack(">I4sII", 13, b"IHDR", width, height) + b"\x08\x02\x00\x00\x00"
    return "data:image/png;base64," + base64.b64encode(header).decode()


PNG_280 = png_url(280, 280)
"""A 280 x 280 image: 100 Qwen-VL patches."""


@dataclass
class PathBuilder:
    """Appends items with ids ``i0``, ``i1``... in path order (``prefix`` instead of ``i``)."""

    items: list[ItemRecord] = field(default_factory=list)
    prefix: str = "i"

    def add(self, role: Role, text: str | None = None, **extra: Any) -> ItemRecord:
        content: tuple[Part, ...] = extra.pop("content", () if text is None else (TextPart(text),))
        fields: dict[str, Any] = {
            "id": f"{self.prefix}{len(self.items)}",
            "conversation_id": "conv",
            "parent_id": self.items[-1].id if self.items else None,
            "role": role,
            "content": content,
            "status": "completed",
            "created_at": len(self.items),
        }
        fields.update(extra)
        item = ItemRecord(**fields)
        self.items.append(item)
        return item

    def round(self, user: str, answer: str | None = "ok", **answer_extra: Any) -> None:
        self.add("user", user)
        if answer is not None:
            self.add("assistant", answer, **answer_extra)


_words = st.lists(st.sampled_from(["alpha", "beta", "gamma", "delta", "paris", "42", "你好", "🙂"]), max_size=40)
_text = _words.map(" ".join)


@st.composite
def rounds(draw: st.DrawFn, builder: PathBuilder, *, newest: bool) -> None:
    """One round appended to ``builder``; the newest round stops at its user item (or tool results)."""
    image = draw(st.booleans()) and draw(st.booleans())
    content: tuple[Part, ...] = (TextPart(draw(_text)),) + ((ImagePart(PNG_280),) if image else ())
    builder.add("user", content=content)
    if draw(st.integers(0, 3)) == 0:  # a tool exchange: call(s), results (maybe one missing)
        calls = tuple(
            ToolCall(id=f"call_{len(builder.items)}_{k}", name="lookup", arguments='{"q": 1}')
            for k in range(draw(st.integers(1, 2)))
        )
        builder.add("assistant", None, tool_calls=calls, reasoning=draw(st.none() | _text))
        for call in calls:
            if draw(st.integers(0, 5)) > 0:
                builder.add("tool", draw(_text), tool_call_id=call.id)
        if newest:
            return
    if newest:
        return
    kind = draw(st.sampled_from(["ok", "ok", "ok", "reasoning", "failed", "empty", "incomplete", "none"]))
    if kind == "ok":
        builder.add("assistant", draw(_text))
    elif kind == "reasoning":
        builder.add("assistant", draw(_text), reasoning=draw(_text))
    elif kind == "failed":
        builder.add("assistant", None, status="failed")
    elif kind == "empty":
        builder.add("assistant", None)
    elif kind == "incomplete":
        builder.add("assistant", draw(_text), status="incomplete")


@st.composite
def conversations(draw: st.DrawFn, *, max_rounds: int = 25) -> list[ItemRecord]:
    """A path: maybe a preamble (a system item, a greeting), then rounds; the last is the new input."""
    builder = PathBuilder()
    if draw(st.booleans()) and draw(st.booleans()):
        builder.add("system", "Answer in French.")
    if draw(st.booleans()) and draw(st.booleans()):
        builder.add("assistant", "Bonjour!")
    n = draw(st.integers(1, max_rounds))
    for i in range(n):
        draw(rounds(builder, newest=i == n - 1))
    return builder.items
