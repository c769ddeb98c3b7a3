"""The store's side of the stateful API on SQLite and PostgreSQL: response rows, deleting an
item with its subtree, deleting responses and conversations, paging, tenant scoping."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from multiturn.errors import NotFound
from multiturn.ids import new_id, now_ms
from multiturn.store import NewItem, SQLStore
from multiturn.store.base import HEAD
from multiturn.store.responses import ORIGIN_KEY, ORIGIN_RESPONSES, ResponseRecord
from multiturn.store.schema import items, responses
from multiturn.types import TextPart, Usage


def _item(role: str, text: str) -> NewItem:
    return NewItem(role=role, content=(TextPart(text),))  # type: ignore[arg-type]


def _response(conversation_id: str, inputs: tuple[str, ...], tenant: str = "default") -> ResponseRecord:
    return ResponseRecord(
        id=new_id("resp"),
        tenant_id=tenant,
        conversation_id=conversation_id,
        input_item_ids=inputs,
        model="m",
        status="in_progress",
        created_at=now_ms(),
        metadata={"k": "v"},
        params={"temperature": 0},
    )


async def _count(store: SQLStore, table: sa.Table, conversation_id: str) -> int:
    async with store._connect() as conn:
        query = sa.select(sa.func.count()).select_from(table).where(table.c.conversation_id == conversation_id)
        return int((await conn.execute(query)).scalar_one())


async def test_a_response_row_round_trips_and_is_scoped_by_tenant(store: SQLStore) -> None:
    conv = await store.create_conversation()
    user = await store.append(conv.id, HEAD, _item("user", "hi"))
    record = _response(conv.id, (user.id,))
    await store.create_response(record)
    assert await store.get_response(record.id) == record
    answer = await store.append(conv.id, user.id, _item("assistant", "hello"))
    usage = Usage(prompt_tokens=5, completion_tokens=2, cached_tokens=3)
    await store.finish_response(record.id, status="completed", output_item_id=answer.id, usage=usage)
    done = await store.get_response(record.id)
    assert (done.status, done.output_item_id, done.usage) == ("completed", answer.id, usage)
    assert done.completed_at is not None and done.input_item_ids == (user.id,)

    with pytest.raises(NotFound):
        await store.get_response(record.id, tenant_id="other")
    with pytest.raises(NotFound):
        await store.delete_response(record.id, tenant_id="other")
    with pytest.raises(NotFound):  # a response cannot be filed under another tenant's conversation
        await store.create_response(_response(conv.id, (user.id,), tenant="other"))
    assert (await store.get_response(record.id)).status == "completed"


async def test_deleting_an_item_deletes_its_subtree_and_moves_the_head_back(store: SQLStore) -> None:
    conv = await store.create_conversation()
    a = await store.append(conv.id, HEAD, _item("user", "a"))
    b = await store.append(conv.id, a.id, _item("assistant", "b"))
    c = await store.append(conv.id, b.id, _item("user", "c"))
    sibling = await store.append(conv.id, b.id, _item("user", "c2"))
    d = await store.append(conv.id, c.id, _item("assistant", "d"))
    record = _response(conv.id, (c.id,))
    await store.create_response(record)
    await store.finish_response(record.id, status="completed", output_item_id=d.id, usage=None)

    with pytest.raises(NotFound):
        await store.delete_item(conv.id, c.id, tenant_id="other")
    after = await store.delete_item(conv.id, c.id)
    assert after.head_item_id == b.id  # the head (d) was inside: back to c's parent
    assert [i.id for i in await store.items(conv.id)] == [a.id, b.id, sibling.id]
    with pytest.raises(NotFound):
        await store.get_response(record.id)  # its answer went with the subtree
    with pytest.raises(NotFound):
        await store.delete_item(conv.id, c.id)

    after = await store.delete_item(conv.id, sibling.id)
    assert after.head_item_id == b.id  # the head was not inside: unchanged
    assert (await store.delete_item(conv.id, a.id)).head_item_id is None
    assert await store.items(conv.id) == []


async def test_deleting_a_chains_last_response_deletes_the_conversation_made_for_it(store: SQLStore) -> None:
    made = await store.create_conversation(metadata={ORIGIN_KEY: ORIGIN_RESPONSES})
    named = await store.create_conversation()
    records = []
    for conv in (made, named):
        user = await store.append(conv.id, HEAD, _item("user", "hi"))
        first, second = _response(conv.id, (user.id,)), _response(conv.id, (user.id,))
        await store.create_response(first)
        await store.create_response(second)
        records.append((conv, first, second))
    for conv, first, second in records:
        await store.delete_response(first.id)
        assert (await store.get_conversation(conv.id)).id == conv.id  # another response is left
        await store.delete_response(second.id)
    with pytest.raises(NotFound):
        await store.get_conversation(made.id)
    assert await _count(store, items, made.id) == 0
    assert (await store.get_conversation(named.id)).id == named.id  # a named conversation stays
    assert len(await store.items(named.id)) == 1


async def test_deleting_a_conversation_deletes_its_responses(store: SQLStore) -> None:
    conv = await store.create_conversation()
    user = await store.append(conv.id, HEAD, _item("user", "hi"))
    await store.create_response(_response(conv.id, (user.id,)))
    assert await _count(store, responses, conv.id) == 1
    await store.delete_conversation(conv.id)
    assert await _count(store, responses, conv.id) == 0


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
