"""Responses API objects in the store: the record, the protocol, and the queries on its table.

A response is one turn of a conversation as ``/v1/responses`` made it: the ids of its input
items (stored in ``items`` like any other), the id of its output item, and what the request
asked for (model, instructions, metadata, sampling). It is written and finished by the turn's
lifecycle (``turns.py``: in the transactions that start and end the turn). The items belong to
the conversation's tree; the response only points at them. So:

- deleting a conversation deletes its responses (foreign key, cascade);
- deleting an item deletes the responses whose output was in the deleted subtree (cascade);
- deleting a response deletes the row only: later responses may build on its items. When it
  was the last response of a conversation that ``/v1/responses`` created for its chain
  (metadata ``origin: responses``), the conversation goes too, so a chain's data goes with its
  last response.

Items can be deleted with their subtree (``delete_item``): nothing is rewritten, the head
moves back to the deleted item's parent when it was inside.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeAlias, TypeGuard

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .. import codec
from ..errors import NotFound
from ..records import ConversationRecord
from ..types import Usage
from .base import DEFAULT_TENANT
from .rows import conversation_record
from .schema import conversations, items, responses

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


def keeps_responses(store: object) -> TypeGuard[ResponseStore]:
    return all(callable(getattr(store, name, None)) for name in ("get_response", "delete_response", "delete_item"))


# -- queries (SQLStore calls these inside its transactions) ------------------------------------


_FINISH = responses.update().where(responses.c.id == sa.bindparam("b_response"))


def insert(conn: Connection, record: ResponseRecord) -> None:
    conn.execute(responses.insert(), _row(record))


def finish(conn: Connection, response_id: str, values: dict[str, Any]) -> None:
    usage = values.get("usage")
    if isinstance(usage, Usage):
        values = {**values, "usage": codec.encode_usage(usage)}
    conn.execute(_FINISH, {"b_response": response_id, **values})


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


def select(conn: Connection, response_id: str, tenant_id: str) -> ResponseRecord:
    row = conn.execute(_SELECT, {"b_response": response_id, "b_tenant": tenant_id}).mappings().first()
    if row is None:
        raise NotFound(f"Response with id '{response_id}' not found.")
    return _record(row)


def delete(conn: Connection, response_id: str, tenant_id: str) -> None:
    record = select(conn, response_id, tenant_id)
    conn.execute(responses.delete().where(responses.c.id == response_id))
    left = conn.execute(
        sa.select(sa.func.count()).select_from(responses).where(responses.c.conversation_id == record.conversation_id)
    )
    if left.scalar_one():
        return
    row = (
        (conn.execute(sa.select(conversations.c.metadata).where(conversations.c.id == record.conversation_id)))
        .scalars()
        .first()
    )
    if isinstance(row, dict) and row.get(ORIGIN_KEY) == ORIGIN_RESPONSES:
        conn.execute(items.delete().where(items.c.conversation_id == record.conversation_id))
        conn.execute(conversations.delete().where(conversations.c.id == record.conversation_id))


def delete_subtree(conn: Connection, conversation: ConversationRecord, item_id: str) -> str | None:
    """Delete ``item_id`` and its descendants; returns the head the conversation should have."""
    rows = conn.execute(sa.select(items.c.id, items.c.parent_id).where(items.c.conversation_id == conversation.id))
    parent_of = {row.id: row.parent_id for row in rows}
    if item_id not in parent_of:
        raise NotFound(f"item {item_id!r} not found in conversation {conversation.id!r}")
    children: dict[str | None, list[str]] = {}
    for child, parent in parent_of.items():
        children.setdefault(parent, []).append(child)
    doomed: list[str] = []
    stack = [item_id]
    while stack:
        current = stack.pop()
        doomed.append(current)
        stack.extend(children.get(current, ()))
    gone = set(doomed)
    conn.execute(responses.delete().where(responses.c.output_item_id.in_(doomed)))
    for chunk in _chunks(list(reversed(doomed)), 500):  # children before parents
        conn.execute(items.delete().where(items.c.id.in_(chunk)))
    head = conversation.head_item_id
    return parent_of[item_id] if head in gone else head


def page_query(tenant_id: str, after: str | None, limit: int, descending: bool) -> sa.Select[Any]:
    query = sa.select(conversations).where(conversations.c.tenant_id == tenant_id)
    if after is not None:
        query = query.where(conversations.c.id < after if descending else conversations.c.id > after)
    order = conversations.c.id.desc() if descending else conversations.c.id.asc()
    return query.order_by(order).limit(limit)


def _chunks(values: Sequence[str], size: int) -> list[Sequence[str]]:
    return [values[i : i + size] for i in range(0, len(values), size)]


def _row(record: ResponseRecord) -> dict[str, Any]:
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
