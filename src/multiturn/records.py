"""Stored rows as values: a conversation and an item, with the identity the canonical types lack."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .types import ContextReport, Message, Part, Role, Status, TextPart, ToolCall, Usage


@dataclass(frozen=True, slots=True)
class ConversationRecord:
    id: str
    tenant_id: str
    created_at: int
    updated_at: int
    title: str | None
    model: str | None
    system_prompt: str | None
    head_item_id: str | None
    metadata: dict[str, Any] = field(default_factory=dict)
    erasures: int = 0
    """How many deletions have removed items from its tree (``store/erasure.py``)."""


@dataclass(frozen=True, slots=True)
class ItemRecord:
    """One node of a conversation tree. ``parent_id`` is ``None`` for a root."""

    id: str
    conversation_id: str
    parent_id: str | None
    role: Role
    content: tuple[Part, ...]
    status: Status
    created_at: int
    reasoning: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    model: str | None = None
    usage: Usage | None = None
    finish_reason: str | None = None
    token_count: int | None = None
    context_report: ContextReport | None = None
    _message: Message | None = field(default=None, init=False, repr=False, compare=False)
    """``to_message()``'s answer, made on first use (not a value of the item: never compared)."""

    @property
    def text(self) -> str:
        return "".join(p.text for p in self.content if isinstance(p, TextPart))

    def to_message(self) -> Message:
        """The canonical message this item contributes to a request (reasoning included;
        the context builder decides whether it is replayed). The same object every time: a
        stored conversation's planner, its caches and the wire translation's then hold one
        message per item, however often it is planned."""
        message = self._message
        if message is None:
            message = Message(
                role=self.role,
                content=self.content,
                reasoning=self.reasoning,
                tool_calls=self.tool_calls,
                tool_call_id=self.tool_call_id,
            )
            object.__setattr__(self, "_message", message)
        return message


@dataclass(frozen=True, slots=True)
class NewItem:
    """What the engine asks the store to write; the store assigns time, and the id unless the
    engine named it already (an answer a stream announced before it was written)."""

    role: Role
    content: tuple[Part, ...]
    status: Status = "completed"
    reasoning: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    model: str | None = None
    usage: Usage | None = None
    finish_reason: str | None = None
    token_count: int | None = None
    context_report: ContextReport | None = None
    id: str | None = None


@dataclass(frozen=True, slots=True)
class SummaryRecord:
    """A stored rolling summary.

    A conversation's summary covers its path up to and including ``through_item_id``. A summary
    made for a stateless request has no conversation: it is found by ``prefix_hash``, the hash
    of the messages it covers, so a resent array is not summarized again.
    """

    id: str
    tenant_id: str
    conversation_id: str | None
    through_item_id: str | None
    prefix_hash: str | None
    text: str
    token_count: int | None
    model: str | None
    created_at: int


@dataclass(frozen=True, slots=True)
class IndexEntry:
    """One item as the retrieval index holds it: its searchable text and, when an embedder ran,
    its vector (``vector_model`` names the embedder; the bytes are its own encoding)."""

    item_id: str
    text: str
    vector: bytes | None = None
    vector_model: str | None = None
