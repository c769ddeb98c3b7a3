"""Driving the store's turn lifecycle directly (contract tests): a whole turn in two calls."""

from __future__ import annotations

from dataclasses import dataclass

from multiturn.ids import new_id, now_ms
from multiturn.records import ItemRecord, NewItem
from multiturn.store import SQLStore
from multiturn.store.responses import ResponseRecord
from multiturn.store.turns import Started, TurnEntry, chain
from multiturn.types import TextPart, Usage


@dataclass(frozen=True)
class Stored:
    response_id: str | None
    input_ids: tuple[str, ...]
    answer_id: str


def entry(
    store: SQLStore,
    conversation_id: str,
    text: str,
    *,
    tenant_id: str = "default",
    parent_id: str | None = None,
    response: bool = True,
    owner: str | None = None,
    waits: bool = True,
    parent_known: bool = False,
) -> TurnEntry:
    record = None
    if response:
        record = ResponseRecord(
            id=new_id("resp"),
            tenant_id=tenant_id,
            conversation_id=conversation_id,
            input_item_ids=(),
            model="m",
            status="in_progress",
            created_at=now_ms(),
            metadata={"k": "v"},
            params={"temperature": 0},
        )
    return TurnEntry(
        id=new_id("turn"),
        tenant_id=tenant_id,
        conversation_id=conversation_id,
        owner=owner or store.owner,
        inputs=(NewItem(role="user", content=(TextPart(text),), token_count=3),),
        parent_id=parent_id,
        parent_known=parent_known,
        waits=waits,
        response=record,
        model="m",
    )


def answer(turn: TurnEntry, started: Started, text: str) -> list[ItemRecord]:
    """The records ``end_turn`` takes for a completed answer ``text``."""
    records = chain(turn.inputs, started.input_ids, turn.conversation_id, started.parent_id, started.started_at)
    reply = ItemRecord(
        id=started.answer_id,
        conversation_id=turn.conversation_id,
        parent_id=records[-1].id,
        role="assistant",
        content=(TextPart(text),),
        status="completed",
        created_at=now_ms(),
        usage=Usage(prompt_tokens=5, completion_tokens=2, cached_tokens=3),
        finish_reason="stop",
    )
    return [*records, reply]


async def stored_turn(
    store: SQLStore,
    conversation_id: str,
    text: str,
    reply: str,
    *,
    tenant_id: str = "default",
    parent_id: str | None = None,
    response: bool = True,
) -> Stored:
    """One whole turn, started and ended at once (nothing else may be open on the conversation)."""
    turn = entry(store, conversation_id, text, tenant_id=tenant_id, parent_id=parent_id, response=response)
    started = await store.enter_turn(turn)
    assert isinstance(started, Started), started
    outcome = {"status": "completed", "output_item_id": started.answer_id, "usage": Usage(5, 2, 3)}
    assert await store.end_turn(
        turn.id,
        conversation_id,
        answer(turn, started, reply),
        response=outcome if response else None,
        parent_id=started.parent_id,
    )
    return Stored(turn.response.id if turn.response else None, started.input_ids, started.answer_id)
