"""True deletion and retention, on SQLite and PostgreSQL.

After ``delete_conversation`` (or ``prune``) no row of any table of the schema names the
conversation or any of its items, and the full-text index no longer finds its words. Tables
are enumerated from the database itself (SQLAlchemy's inspector), so a table added later is
checked too.
"""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from multiturn.errors import NotFound
from multiturn.ids import now_ms
from multiturn.records import IndexEntry
from multiturn.store import NewItem, SQLStore
from multiturn.store.turns import Blocked, Started
from multiturn.types import ImagePart, TextPart
from support.scan import fts_hits, leftovers
from support.turns import entry, stored_turn

OTHER_TENANT = "someone-else"
MARKER = "zanzibarquux"
PNG = (
    "data:image/png;base64,"
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


async def _populated(store: SQLStore, *, tenant_id: str = "default", marker: str = MARKER) -> tuple[str, set[str]]:
    """A conversation with a branch, an inline image, a summary and index entries: its id
    and the ids of everything stored for it."""
    conv = await store.create_conversation(tenant_id=tenant_id, title=f"about {marker}", system_prompt="be brief")
    user = await store.append(
        conv.id,
        None,
        NewItem(role="user", content=(TextPart(f"tell me about {marker}"), ImagePart(url=PNG))),
        tenant_id=tenant_id,
    )
    answer = await store.append(
        conv.id, user.id, NewItem(role="assistant", content=(TextPart(f"{marker} is an island"),)), tenant_id=tenant_id
    )
    sibling = await store.append(
        conv.id, user.id, NewItem(role="assistant", content=(TextPart("another answer"),)), tenant_id=tenant_id
    )
    # A Responses turn, one generating and one queued (their rows hold their input's text).
    done = await stored_turn(store, conv.id, f"and {marker} again", f"{marker} still", tenant_id=tenant_id)
    open_turn = await store.enter_turn(entry(store, conv.id, f"still {marker}?", tenant_id=tenant_id))
    queued = entry(store, conv.id, f"queued {marker}", tenant_id=tenant_id)
    assert isinstance(open_turn, Started) and isinstance(await store.enter_turn(queued), Blocked)
    extra = {str(done.response_id), *done.input_ids, done.answer_id, queued.id}
    summary = await store.add_summary(
        text=f"they talked about {marker}", conversation_id=conv.id, through_item_id=answer.id, tenant_id=tenant_id
    )
    await store.index_entries(
        conv.id,
        [
            IndexEntry(item_id=user.id, text=f"tell me about {marker}", vector=b"\x01\x02", vector_model="test"),
            IndexEntry(item_id=answer.id, text=f"{marker} is an island"),
        ],
        tenant_id=tenant_id,
    )
    assert [hit for hit, _ in await store.search_entries(conv.id, marker, tenant_id=tenant_id)]
    return conv.id, {conv.id, user.id, answer.id, sibling.id, summary.id, *extra}


def _next_millisecond() -> int:
    """Wait (a few microseconds) until the store's clock has moved on; returns the new time."""
    start = now_ms()
    deadline = time.monotonic() + 1.0
    while now_ms() == start:
        assert time.monotonic() < deadline, "the clock did not advance"
    return now_ms()


async def test_deleting_a_conversation_leaves_no_row_naming_it_in_any_table(store: SQLStore) -> None:
    doomed, ids = await _populated(store)
    kept, _ = await _populated(store, marker="keepme")
    before = {table for table, _, _ in await leftovers(store, ids)}  # the check sees them while they exist
    assert {"conversations", "items", "summaries", "memory_entries"} <= before
    assert {"responses", "turns"} <= before
    assert await fts_hits(store, MARKER) == 2

    await store.delete_conversation(doomed)

    assert await leftovers(store, ids) == []
    assert await leftovers(store, {MARKER}) == []  # no text of it either (content, summary, index)
    assert await fts_hits(store, MARKER) == 0
    if store.dialect == "sqlite":
        # FTS5's per-document size table has one row per indexed entry left (the kept ones).
        docs_query = sa.text("SELECT count(*) FROM memory_fts_docsize")
        assert await store._read(lambda conn: conn.execute(docs_query).scalar_one()) == 2
    # The other conversation is whole.
    assert len(await store.items(kept)) == 5
    assert len(await store.summaries(kept)) == 1
    assert len(await store.entries(kept)) == 2
    assert await fts_hits(store, "keepme") == 2
    with pytest.raises(NotFound):
        await store.get_conversation(doomed)


async def test_another_tenant_cannot_delete_or_prune_a_conversation(store: SQLStore) -> None:
    conv, _ = await _populated(store)
    with pytest.raises(NotFound):
        await store.delete_conversation(conv, tenant_id=OTHER_TENANT)
    assert await store.prune(now_ms() + 60_000, tenant_id=OTHER_TENANT) == []
    assert len(await store.items(conv)) == 5


async def test_prune_deletes_only_conversations_idle_since_the_cutoff(store: SQLStore) -> None:
    old, old_ids = await _populated(store, marker="oldword")
    theirs, their_ids = await _populated(store, tenant_id=OTHER_TENANT, marker="theirword")
    cutoff = _next_millisecond()  # strictly after the first two conversations' last write
    _next_millisecond()
    fresh, fresh_ids = await _populated(store, marker="freshword")

    assert await store.prune(cutoff) == [old]  # the default tenant only
    assert await leftovers(store, old_ids | {"oldword"}) == []
    assert len(await store.items(fresh)) == 5
    assert len(await store.items(theirs, tenant_id=OTHER_TENANT)) == 5

    # An append is activity: it moves updated_at, so the conversation is no longer idle.
    await store.append(theirs, None, NewItem(role="user", content=(TextPart("still here"),)), tenant_id=OTHER_TENANT)
    assert await store.prune(cutoff, tenant_id=None) == []
    assert sorted(await store.prune(now_ms() + 1, tenant_id=None)) == sorted([theirs, fresh])
    assert await leftovers(store, their_ids | fresh_ids) == []
    assert await fts_hits(store, "theirword") == 0
