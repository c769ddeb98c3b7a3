"""The store's side of the stateful API on SQLite and PostgreSQL: response rows (recorded by
their turns), deleting an item with its subtree, deleting responses and conversations, paging,
tenant scoping."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from multiturn.errors import NotFound
from multiturn.store import NewItem, SQLStore
from multiturn.store.base import HEAD
from multiturn.store.responses import ORIGIN_KEY, ORIGIN_RESPONSES
from multiturn.store.schema import items, responses, turns
from multiturn.store.turns import Blocked, Started
from multiturn.types import TextPart, Usage
from support.turns import answer, entry, stored_turn


def _item(role: str, text: str) -> NewItem:
    return NewItem(role=role, content=(TextPart(text),))  # type: ignore[arg-type]


async def _count(store: SQLStore, table: sa.Table, conversation_id: str) -> int:
    query = sa.select(sa.func.count()).select_from(table).where(table.c.conversation_id == conversation_id)
    return await store._read(lambda conn: int(conn.execute(query).scalar_one()))


async def test_a_response_is_recorded_by_its_turn_and_scoped_by_tenant(store: SQLStore) -> None:
    conv = await store.create_conversation()
    turn = entry(store, conv.id, "hi")
    started = await store.enter_turn(turn)
    assert isinstance(started, Started)
    assert turn.response is not None
    opened = await store.get_response(turn.response.id)
    assert (opened.status, opened.input_item_ids, opened.output_item_id) == ("in_progress", started.input_ids, None)
    outcome = {"status": "completed", "output_item_id": started.answer_id, "usage": Usage(5, 2, 3)}
    assert await store.end_turn(turn.id, conv.id, answer(turn, started, "hello"), response=outcome)
    done = await store.get_response(turn.response.id)
    assert (done.status, done.output_item_id, done.usage) == ("completed", started.answer_id, Usage(5, 2, 3))
    assert done.completed_at is not None and done.metadata == {"k": "v"} and done.params == {"temperature": 0}

    with pytest.raises(NotFound):
        await store.get_response(turn.response.id, tenant_id="other")
    with pytest.raises(NotFound):
        await store.delete_response(turn.response.id, tenant_id="other")
    with pytest.raises(NotFound):  # a turn cannot be filed under another tenant's conversation
        await store.enter_turn(entry(store, conv.id, "x", tenant_id="other"))
    assert (await store.get_response(turn.response.id)).status == "completed"


async def test_a_branch_starts_beside_an_open_turn_and_a_turn_at_the_head_queues_behind_both(store: SQLStore) -> None:
    """A turn that does not wait (a branch) starts at once and takes the next place in the queue
    without reading it; a turn at the head then waits for the last turn ahead of it."""
    conv = await store.create_conversation()
    base = await stored_turn(store, conv.id, "a", "b")
    first = entry(store, conv.id, "at the head")
    started = await store.enter_turn(first)
    assert isinstance(started, Started)
    branch = entry(store, conv.id, "beside it", parent_id=base.answer_id, waits=False)
    beside = await store.enter_turn(branch)
    assert isinstance(beside, Started) and beside.parent_id == base.answer_id
    queued = entry(store, conv.id, "after both")
    assert await store.enter_turn(queued) == Blocked(branch.id, store.owner)
    seqs = await store._read(lambda conn: dict(conn.execute(sa.select(turns.c.id, turns.c.seq)).all()))
    assert seqs[first.id] < seqs[branch.id] < seqs[queued.id]

    assert await store.end_turn(branch.id, conv.id, answer(branch, beside, "c2"), response={"status": "completed"})
    assert await store.enter_turn(queued) == Blocked(first.id, store.owner)  # still behind the first
    assert await store.end_turn(first.id, conv.id, answer(first, started, "c"), response={"status": "completed"})
    resumed = await store.enter_turn(queued)
    assert isinstance(resumed, Started) and resumed.parent_id == started.answer_id  # the head as it is now


async def test_a_chains_turn_starts_in_one_statement_and_keeps_its_place_in_the_queue(store: SQLStore) -> None:
    """A turn at a known parent with a Responses object (every turn of a ``previous_response_id``
    chain): PostgreSQL starts it with one statement and ends it with one, each run alone
    (``turn_trips.py``); its place in the queue, its items and its response are as on SQLite."""
    conv = await store.create_conversation()
    base = await stored_turn(store, conv.id, "a", "b")
    first = entry(store, conv.id, "at the head")
    started = await store.enter_turn(first)
    assert isinstance(started, Started)
    chained = entry(store, conv.id, "beside it", parent_id=base.answer_id, parent_known=True, waits=False)
    statements: list[str] = []

    def count(conn: object, cursor: object, statement: str, *args: object) -> None:
        statements.append(statement)

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", count)
    try:
        beside = await store.enter_turn(chained)
        starting = len(statements)
        assert isinstance(beside, Started) and beside.parent_id == base.answer_id
        outcome = {"status": "completed", "output_item_id": beside.answer_id, "usage": Usage(5, 2, 3), "error": None}
        assert await store.end_turn(chained.id, conv.id, answer(chained, beside, "c2"), response=outcome)
        ending = len(statements) - starting
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", count)
    if store.dialect == "postgresql":
        assert (starting, ending) == (1, 1), statements
    queued = entry(store, conv.id, "after both")
    assert await store.enter_turn(queued) == Blocked(first.id, store.owner)  # the chain's turn has ended
    seqs = await store._read(lambda conn: dict(conn.execute(sa.select(turns.c.id, turns.c.seq)).all()))
    assert seqs[first.id] < seqs[queued.id]
    assert [item.parent_id for item in await store.path(conv.id, beside.answer_id)][-2:] == [
        base.answer_id,
        beside.input_ids[0],
    ]
    done = await store.get_response(str(chained.response.id if chained.response else ""))
    assert (done.status, done.input_item_ids, done.output_item_id) == ("completed", beside.input_ids, beside.answer_id)
    assert done.usage == Usage(5, 2, 3) and done.error is None and done.completed_at is not None


@pytest.mark.parametrize("db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
async def test_a_start_run_again_after_it_committed_is_started(store: SQLStore) -> None:
    """A one-statement start runs again when its connection was found dead, although it may have
    committed before the connection died: then its keys are taken, and it has started."""
    conv = await store.create_conversation()
    base = await stored_turn(store, conv.id, "a", "b")
    chained = entry(store, conv.id, "c", parent_id=base.answer_id, parent_known=True, waits=False)
    once = await store.enter_turn(chained)
    again = await store.enter_turn(chained)
    assert isinstance(once, Started) and isinstance(again, Started) and again.parent_id == once.parent_id
    assert await _count(store, turns, conv.id) == 1
    assert await store.end_turn(chained.id, conv.id, answer(chained, once, "d"), response={"status": "completed"})
    assert await _count(store, turns, conv.id) == 0


async def test_deleting_an_item_deletes_its_subtree_and_moves_the_head_back(store: SQLStore) -> None:
    conv = await store.create_conversation()
    a = await store.append(conv.id, HEAD, _item("user", "a"))
    b = await store.append(conv.id, a.id, _item("assistant", "b"))
    sibling = await store.append(conv.id, b.id, _item("user", "c2"))
    turn = await stored_turn(store, conv.id, "c", "d", parent_id=b.id)
    c = turn.input_ids[0]

    with pytest.raises(NotFound):
        await store.delete_item(conv.id, c, tenant_id="other")
    after = await store.delete_item(conv.id, c)
    assert after.head_item_id == b.id  # the head (d) was inside: back to c's parent
    assert [i.id for i in await store.items(conv.id)] == [a.id, b.id, sibling.id]
    with pytest.raises(NotFound):
        await store.get_response(str(turn.response_id))  # its answer went with the subtree
    with pytest.raises(NotFound):
        await store.delete_item(conv.id, c)

    after = await store.delete_item(conv.id, sibling.id)
    assert after.head_item_id == b.id  # the head was not inside: unchanged
    assert (await store.delete_item(conv.id, a.id)).head_item_id is None
    assert await store.items(conv.id) == []


async def test_deleting_a_chains_last_response_deletes_the_conversation_made_for_it(store: SQLStore) -> None:
    made = await store.create_conversation(metadata={ORIGIN_KEY: ORIGIN_RESPONSES})
    named = await store.create_conversation()
    records = []
    for conv in (made, named):
        first = await stored_turn(store, conv.id, "hi", "hello")
        second = await stored_turn(store, conv.id, "again", "hello again")
        records.append((conv, first, second))
    for conv, first, second in records:
        await store.delete_response(str(first.response_id))
        assert (await store.get_conversation(conv.id)).id == conv.id  # another response is left
        await store.delete_response(str(second.response_id))
    with pytest.raises(NotFound):
        await store.get_conversation(made.id)
    assert await _count(store, items, made.id) == 0
    named_after = await store.get_conversation(named.id)  # a named conversation stays, without the turns
    assert await store.items(named.id) == [] and named_after.head_item_id is None


async def test_deleting_a_conversation_deletes_its_responses_and_open_turns(store: SQLStore) -> None:
    conv = await store.create_conversation()
    await stored_turn(store, conv.id, "hi", "hello")
    generating = await store.enter_turn(entry(store, conv.id, "open"))
    queued = await store.enter_turn(entry(store, conv.id, "waiting"))
    assert isinstance(generating, Started) and isinstance(queued, Blocked)
    assert await _count(store, responses, conv.id) == 2
    assert await _count(store, turns, conv.id) == 2
    await store.delete_conversation(conv.id)
    assert await _count(store, responses, conv.id) == 0
    assert await _count(store, turns, conv.id) == 0


async def test_conversations_are_paged_by_creation_within_a_tenant(store: SQLStore) -> None:
    made = [await store.create_conversation() for _ in range(5)]
    await store.create_conversation(tenant_id="other")
    newest = await store.conversations_page(limit=3)
    assert [c.id for c in newest] == [c.id for c in reversed(made)][:3]
    rest = await store.conversations_page(after=newest[-1].id, limit=3)
    assert [c.id for c in rest] == [made[1].id, made[0].id]
    oldest = await store.conversations_page(limit=2, descending=False)
    assert [c.id for c in oldest] == [made[0].id, made[1].id]
    assert [c.id for c in await store.conversations_page(tenant_id="other")] != [c.id for c in made]
    assert len(await store.conversations_page(tenant_id="nobody")) == 0
