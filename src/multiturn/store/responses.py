"""Responses API objects in the store: the record, the protocol, and the queries on its table.

A response is one turn of a conversation as ``/v1/responses`` made it: the ids of its input
items (stored in ``items`` like any other), the id of its output item, and what the request
asked for (model, instructions, metadata, sampling). It is written and finished by the turn's
lifecycle (``turns.py``: in the transactions that start and end the turn). The items belong to
the conversation's tree; the response only points at them. Deleting is ``erasure.py``'s:

- deleting a conversation deletes its responses (foreign key, cascade);
- deleting an item deletes it with its subtree, and the responses whose output was in it;
- deleting a response erases its turn: the row, and its input and output items, spliced out of
  the tree (what followed them now follows what preceded them), so later responses go on
  without its words. When it was the last response of a conversation that ``/v1/responses``
  created for its chain (metadata ``origin: responses``), the conversation goes too, so a
  chain's data goes with its last response.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeAlias, TypeGuard

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .. import codec
from ..errors import NotFound
from ..records import ConversationRecord
from ..types import Usage
from . import erasure
from .base import DEFAULT_TENANT
from .core import conversation_row
from .rows import conversation_record
from .schema import conversations, responses

ResponseStatus: TypeAlias = Literal["in_progress", "completed", "incomplete", "failed", "cancelled"]
ORIGIN_KEY = "origin"
ORIGIN_RESPONSES = "responses"
"""``metadata[ORIGIN_KEY]`` of a conversation ``/v1/responses`` created for a new chain."""


@dataclass(frozen=True, slots=True)
class ResponseRecord:
    id: str
    tenant_id: str
    conversation_id: str
    input_item_ids: tuple[str, ...]
    model: str
    status: ResponseStatus
    created_at: int
    previous_response_id: str | None = None
    output_item_id: str | None = None
    usage: Usage | None = None
    instructions: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    """What the request asked for: ``temperature``, ``top_p``, ``max_output_tokens``,
    ``truncation``, ``context_policy`` (echoed back in the response object)."""
    error: dict[str, Any] | None = None
    completed_at: int | None = None


class ResponseStore(Protocol):
    """The store's side of the stateful API (``SQLStore`` implements it)."""

    async def get_response(self, response_id: str, *, tenant_id: str = DEFAULT_TENANT) -> ResponseRecord:
        """Raises NotFound (also for another tenant's response)."""
        ...

    async def get_response_with_conversation(
        self, response_id: str, *, tenant_id: str = DEFAULT_TENANT
    ) -> tuple[ResponseRecord, ConversationRecord]:
        """A response and its conversation, in one read. Raises NotFound."""
        ...

    async def delete_response(self, response_id: str, *, tenant_id: str = DEFAULT_TENANT) -> None:
        """Raises NotFound."""
        ...

    async def delete_item(
        self, conversation_id: str, item_id: str, *, tenant_id: str = DEFAULT_TENANT
    ) -> ConversationRecord:
        """Delete an item and its subtree; returns the conversation after. Raises NotFound."""
        ...

    async def conversations_page(
        self, *, tenant_id: str = DEFAULT_TENANT, after: str | None = None, limit: int = 20, descending: bool = True
    ) -> list[ConversationRecord]:
        """A page of the tenant's conversations in creation order (id order), after ``after``."""
        ...

    async def answer_instructions(self, conversation_id: str, *, tenant_id: str = DEFAULT_TENANT) -> dict[str, str]:
        """The ``instructions`` of the conversation's Responses turns that had some, by the id of
        their answer: what their request sent in place of the conversation's system prompt."""
        ...


def keeps_responses(store: object) -> TypeGuard[ResponseStore]:
    return all(callable(getattr(store, name, None)) for name in ("get_response", "delete_response", "delete_item"))


# -- queries (SQLStore calls these inside its transactions) ------------------------------------


_INSERT = responses.insert()
_FINISH = responses.update().where(responses.c.id == sa.bindparam("b_response"))


def insert(conn: Connection, record: ResponseRecord) -> None:
    conn.execute(_INSERT, row(record))


def finish(conn: Connection, response_id: str, values: dict[str, Any]) -> None:
    conn.execute(_FINISH, {"b_response": response_id, **encoded(values)})


def encoded(values: dict[str, Any]) -> dict[str, Any]:
    """A response's new values as its columns hold them."""
    usage = values.get("usage")
    return {**values, "usage": codec.encode_usage(usage)} if isinstance(usage, Usage) else values


_SELECT = sa.select(responses).where(
    responses.c.id == sa.bindparam("b_response"), responses.c.tenant_id == sa.bindparam("b_tenant")
)


_JOINED = "c__"
"""The prefix of the conversation's columns beside a response's (its own names overlap)."""
_SELECT_WITH_CONVERSATION = (
    sa.select(responses, *(column.label(f"{_JOINED}{column.name}") for column in conversations.c))
    .join(conversations, conversations.c.id == responses.c.conversation_id)
    .where(responses.c.id == sa.bindparam("b_response"), responses.c.tenant_id == sa.bindparam("b_tenant"))
)


def select_with_conversation(
    conn: Connection, response_id: str, tenant_id: str
) -> tuple[ResponseRecord, ConversationRecord]:
    """A response and its conversation, in one query."""
    row = conn.execute(_SELECT_WITH_CONVERSATION, {"b_response": response_id, "b_tenant": tenant_id}).mappings().first()
    if row is None:
        raise NotFound(f"Response with id '{response_id}' not found.")
    conversation = conversation_record({k[len(_JOINED) :]: v for k, v in row.items() if k.startswith(_JOINED)})
    return _record(row), conversation


def instructions_by_answer(conn: Connection, conversation_id: str, tenant_id: str) -> dict[str, str]:
    query = sa.select(responses.c.output_item_id, responses.c.instructions).where(
        responses.c.conversation_id == conversation_id,
        responses.c.tenant_id == tenant_id,
        responses.c.output_item_id.is_not(None),
        responses.c.instructions.is_not(None),
    )
    return {row.output_item_id: row.instructions for row in conn.execute(query)}


def select(conn: Connection, response_id: str, tenant_id: str) -> ResponseRecord:
    row = conn.execute(_SELECT, {"b_response": response_id, "b_tenant": tenant_id}).mappings().first()
    if row is None:
        raise NotFound(f"Response with id '{response_id}' not found.")
    return _record(row)


def delete(conn: Connection, response_id: str, tenant_id: str) -> None:
    """Erase a response's turn (module docstring). Raises NotFound."""
    record = select(conn, response_id, tenant_id)
    conversation = conversation_row(conn, record.conversation_id, tenant_id, lock=True)
    conn.execute(responses.delete().where(responses.c.id == response_id))
    left = conn.execute(
        sa.select(sa.func.count()).select_from(responses).where(responses.c.conversation_id == conversation.id)
    )
    if not left.scalar_one() and conversation.metadata.get(ORIGIN_KEY) == ORIGIN_RESPONSES:
        erasure.erase_conversations(conn, [conversation.id])
        return
    turn = [*record.input_item_ids, *([record.output_item_id] if record.output_item_id else [])]
    head = erasure.erase_turn(conn, conversation.id, turn, conversation.head_item_id)
    if head != conversation.head_item_id:
        conn.execute(conversations.update().where(conversations.c.id == conversation.id).values(head_item_id=head))


def page_query(tenant_id: str, after: str | None, limit: int, descending: bool) -> sa.Select[Any]:
    query = sa.select(conversations).where(conversations.c.tenant_id == tenant_id)
    if after is not None:
        query = query.where(conversations.c.id < after if descending else conversations.c.id > after)
    order = conversations.c.id.desc() if descending else conversations.c.id.asc()
    return query.order_by(order).limit(limit)


def row(record: ResponseRecord) -> dict[str, Any]:
    """The record as its row's values."""
    row = {f.name: getattr(record, f.name) for f in dataclasses.fields(record)}
    row["input_item_ids"] = list(record.input_item_ids)
    row["usage"] = codec.encode_usage(record.usage) if record.usage else None
    return row


def _record(row: sa.RowMapping) -> ResponseRecord:
    values = {f.name: row[f.name] for f in dataclasses.fields(ResponseRecord)}
    values["input_item_ids"] = tuple(row["input_item_ids"] or ())
    values["usage"] = codec.decode_usage(row["usage"])
    values["metadata"] = dict(row["metadata"] or {})
    values["params"] = dict(row["params"] or {})
    return ResponseRecord(**values)
