"""The store's memory methods (retrieval index and summaries) on SQLite and PostgreSQL.

Each test gets a fresh, migrated database from the ``store`` fixture (``tests/conftest.py``).
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from multiturn.errors import NotFound
from multiturn.records import IndexEntry
from multiturn.store import NewItem, SQLStore
from multiturn.types import TextPart

OTHER_TENANT = "someone-else"


async def _conversation(store: SQLStore, texts: list[str], **kwargs: Any) -> tuple[str, list[str]]:
    conv = await store.create_conversation(**kwargs)
    parent: str | None = None
    ids = []
    for n, text in enumerate(texts):
        role = "user" if n % 2 == 0 else "assistant"
        item = await store.append(conv.id, parent, NewItem(role=role, content=(TextPart(text),)), **kwargs)
        parent = item.id
        ids.append(item.id)
    return conv.id, ids


TEXTS = [
    "We adopted a beagle puppy named Biscuit last spring.",
    "Lovely! How is Biscuit settling in with the cats?",
    "The quarterly budget review moved to Thursday afternoon.",
    "Thursday works; I will send the budget spreadsheet tonight.",
    "Biscuit chewed the budget spreadsheet printout, beagle puppy chaos again.",
]


async def test_search_ranks_the_entry_matching_more_query_words_first(store: SQLStore) -> None:
    conv, ids = await _conversation(store, TEXTS)
    await store.index_entries(conv, [IndexEntry(item_id=i, text=t) for i, t in zip(ids, TEXTS, strict=True)])
    hits = await store.search_entries(conv, "beagle puppy Biscuit")
    assert [item for item, _ in hits][:2] == [ids[0], ids[4]] or [item for item, _ in hits][:2] == [ids[4], ids[0]]
    assert set(dict(hits)) == {ids[0], ids[1], ids[4]}
    scores = [score for _, score in hits]
    assert scores == sorted(scores, reverse=True) and scores[0] > scores[-1]
    budget = dict(await store.search_entries(conv, "budget Thursday"))
    assert set(budget) == {ids[2], ids[3], ids[4]}
    assert max(budget, key=lambda k: budget[k]) in (ids[2], ids[3])  # both words beat one
    assert await store.search_entries(conv, "zeppelin") == []
    assert await store.search_entries(conv, "  ,;  ") == []
    assert len(await store.search_entries(conv, "budget", limit=1)) == 1


async def test_search_and_entries_stay_inside_their_conversation(store: SQLStore) -> None:
    first, first_ids = await _conversation(store, TEXTS[:2])
    second, second_ids = await _conversation(store, TEXTS[:2])
    await store.index_entries(first, [IndexEntry(item_id=first_ids[0], text=TEXTS[0], vector=b"\0\0\x80?")])
    await store.index_entries(second, [IndexEntry(item_id=second_ids[0], text=TEXTS[0])])
    assert [i for i, _ in await store.search_entries(first, "beagle")] == [first_ids[0]]
    entries = await store.entries(first)
    assert [(e.item_id, e.text, e.vector) for e in entries] == [(first_ids[0], TEXTS[0], b"\0\0\x80?")]
    assert (await store.entries(first, with_vectors=False))[0].vector is None


async def test_indexing_an_item_again_replaces_its_entry(store: SQLStore) -> None:
    conv, ids = await _conversation(store, TEXTS[:1])
    await store.index_entries(conv, [IndexEntry(item_id=ids[0], text="alpha words", vector_model="m1")])
    await store.index_entries(conv, [IndexEntry(item_id=ids[0], text="omega words", vector_model="m2")])
    assert await store.search_entries(conv, "alpha") == []
    assert [i for i, _ in await store.search_entries(conv, "omega")] == ids
    assert [(e.text, e.vector_model) for e in await store.entries(conv)] == [("omega words", "m2")]


async def test_another_tenant_cannot_index_search_or_read(store: SQLStore) -> None:
    conv, ids = await _conversation(store, TEXTS[:1])
    await store.index_entries(conv, [IndexEntry(item_id=ids[0], text=TEXTS[0])])
    with pytest.raises(NotFound):
        await store.search_entries(conv, "beagle", tenant_id=OTHER_TENANT)
    with pytest.raises(NotFound):
        await store.entries(conv, tenant_id=OTHER_TENANT)
    with pytest.raises(NotFound):
        await store.index_entries(conv, [IndexEntry(item_id=ids[0], text="x")], tenant_id=OTHER_TENANT)
    with pytest.raises(NotFound):
        await store.summaries(conv, tenant_id=OTHER_TENANT)
    with pytest.raises(NotFound):
        await store.add_summary(text="s", conversation_id=conv, through_item_id=ids[0], tenant_id=OTHER_TENANT)


async def test_an_item_of_another_conversation_cannot_be_indexed(store: SQLStore) -> None:
    first, _ = await _conversation(store, TEXTS[:1])
    _, other_ids = await _conversation(store, TEXTS[:1])
    with pytest.raises(NotFound):
        await store.index_entries(first, [IndexEntry(item_id=other_ids[0], text="stolen")])
    assert await store.entries(first) == []


async def test_summaries_newest_first_and_by_prefix_once(store: SQLStore) -> None:
    conv, ids = await _conversation(store, TEXTS[:3])
    older = await store.add_summary(text="first", conversation_id=conv, through_item_id=ids[0], token_count=3)
    newer = await store.add_summary(text="second", conversation_id=conv, through_item_id=ids[2], model="extractive")
    assert [s.id for s in await store.summaries(conv)] == [newer.id, older.id]
    assert (newer.through_item_id, newer.model, older.token_count) == (ids[2], "extractive", 3)
    stored = await store.add_summary(text="prefix summary", prefix_hash="h1")
    again = await store.add_summary(text="another text", prefix_hash="h1")
    assert again.id == stored.id and again.text == "prefix summary"
    assert await store.summary_by_prefix("h1", tenant_id=OTHER_TENANT) is None
    found = await store.summary_by_prefix("h1")
    assert found is not None and found.text == "prefix summary"
    with pytest.raises(TypeError):
        await store.add_summary(text="both", conversation_id=conv, through_item_id=ids[0], prefix_hash="h2")


async def test_deleting_a_conversation_leaves_no_index_rows(store: SQLStore) -> None:
    conv, ids = await _conversation(store, TEXTS)
    kept, kept_ids = await _conversation(store, TEXTS[:1])
    await store.index_entries(conv, [IndexEntry(item_id=i, text=t) for i, t in zip(ids, TEXTS, strict=True)])
    await store.index_entries(kept, [IndexEntry(item_id=kept_ids[0], text=TEXTS[0])])
    await store.add_summary(text="s", conversation_id=conv, through_item_id=ids[1])
    await store.delete_conversation(conv)

    def check(conn: sa.Connection) -> None:
        left = conn.execute(sa.text("SELECT item_id FROM memory_entries")).scalars().all()
        assert left == [kept_ids[0]]
        if conn.dialect.name == "sqlite":
            fts = conn.execute(sa.text("SELECT rowid FROM memory_fts WHERE memory_fts MATCH 'budget'"))
            assert fts.all() == []
            assert conn.execute(sa.text("SELECT count(*) FROM memory_fts_docsize")).scalar_one() == 1
        assert conn.execute(sa.text("SELECT count(*) FROM summaries")).scalar_one() == 0

    await store._read(check)
    assert [i for i, _ in await store.search_entries(kept, "beagle")] == kept_ids
