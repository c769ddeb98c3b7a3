"""The ``Store`` contract, run against every implementation: SQLite and PostgreSQL.

Each test gets a fresh, migrated database from the ``store`` fixture (``tests/conftest.py``).
"""

from __future__ import annotations

import time
import types
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from multiturn import Settings, ids
from multiturn.errors import NotFound, StoreError
from multiturn.ids import new_id, now_ms
from multiturn.store import NewItem, SQLStore
from multiturn.store import sql as store_sql
from multiturn.store.base import HEAD
from multiturn.store.core import NEAREST, conversation_row
from multiturn.store.dialect import commit_without_flush
from multiturn.store.migrations import MIGRATIONS
from multiturn.store.schema import conversations, items
from multiturn.types import AudioPart, ContextReport, Cost, ImagePart, TextPart, ToolCall, Usage, VideoPart

OTHER_TENANT = "someone-else"


def _text(role: Any, text: str, **extra: Any) -> NewItem:
    return NewItem(role=role, content=(TextPart(text),), **extra)


def _next_millisecond() -> None:
    """Return once the store's clock has moved on, so the next write is strictly newer."""
    start = now_ms()
    deadline = time.monotonic() + 1.0
    while now_ms() == start:
        assert time.monotonic() < deadline, "the clock did not advance"


async def _count_rows(store: SQLStore, table: sa.Table, conversation_id: str) -> int:
    column = table.c.id if table is conversations else table.c.conversation_id
    query = sa.select(sa.func.count()).select_from(table).where(column == conversation_id)
    return await store._read(lambda conn: int(conn.execute(query).scalar_one()))


# -- durability -------------------------------------------------------------------------------


async def test_a_commit_without_flush_is_this_transactions_alone(store: SQLStore) -> None:
    """A turn's start commits without waiting for the disk (``commit_without_flush``); every
    other transaction waits as the database is configured (PostgreSQL: ``synchronous_commit``,
    on by default; SQLite: WAL with ``synchronous=NORMAL``, which never waits at a commit)."""
    if store.dialect == "sqlite":
        setting = sa.text("PRAGMA synchronous")
        waits, relaxed = 1, 1  # NORMAL, before and after: nothing to relax
    else:
        setting = sa.text("SELECT current_setting('synchronous_commit')")
        waits, relaxed = "on", "off"

    def relaxed_here(conn: sa.Connection) -> tuple[Any, Any]:
        before = conn.execute(setting).scalar_one()
        commit_without_flush(conn)
        return before, conn.execute(setting).scalar_one()

    assert await store._write(relaxed_here) == (waits, relaxed)
    assert await store._write(lambda conn: conn.execute(setting).scalar_one()) == waits  # the next one waits again

    conversation = await store.create_conversation()

    def relaxed_by_the_lock(conn: sa.Connection) -> Any:  # a turn's start asks with its lock
        assert conversation_row(conn, conversation.id, "default", lock=True, flush=False).id == conversation.id
        return conn.execute(setting).scalar_one()

    assert await store._write(relaxed_by_the_lock) == relaxed
    assert await store._write(lambda conn: conn.execute(setting).scalar_one()) == waits


# -- migrations -------------------------------------------------------------------------------


async def test_migrate_is_idempotent_and_records_every_migration(store: SQLStore) -> None:
    names = [name for name, _ in MIGRATIONS]
    assert await store.applied_migrations() == sorted(names)
    assert await store.migrate() == []
    assert await store.migrate() == []
    assert await store.applied_migrations() == sorted(names)


async def test_fresh_database_migrate_returns_applied_names(db_url: str) -> None:
    fresh = SQLStore(Settings(db=db_url).database_url)
    try:
        assert await fresh.migrate() == [name for name, _ in MIGRATIONS]
        assert await fresh.migrate() == []
    finally:
        await fresh.close()


async def test_migrate_on_unwritable_sqlite_path_raises_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    store = SQLStore(Settings(db=str(blocker / "x.db")).database_url)
    try:
        with pytest.raises(StoreError) as caught:
            await store.migrate()
    finally:
        await store.close()
    message = str(caught.value)
    assert message
    assert "\n" not in message
    assert str(blocker) in message


# -- conversations ----------------------------------------------------------------------------


async def test_create_and_get_conversation(store: SQLStore) -> None:
    created = await store.create_conversation(
        title="Trip", model="qwen", system_prompt="Be brief.", metadata={"k": [1, "two"], "n": {"x": True}}
    )
    assert created.tenant_id == "default"
    assert created.head_item_id is None
    assert created.created_at == created.updated_at
    fetched = await store.get_conversation(created.id)
    assert fetched == created
    assert fetched.metadata == {"k": [1, "two"], "n": {"x": True}}


async def test_create_conversation_defaults(store: SQLStore) -> None:
    created = await store.create_conversation()
    fetched = await store.get_conversation(created.id)
    assert (fetched.title, fetched.model, fetched.system_prompt) == (None, None, None)
    assert fetched.metadata == {}


async def test_get_missing_conversation_is_not_found(store: SQLStore) -> None:
    with pytest.raises(NotFound):
        await store.get_conversation("conv_missing")


async def test_list_conversations_newest_first(store: SQLStore) -> None:
    created = []
    for title in ("a", "b", "c"):
        _next_millisecond()
        created.append(await store.create_conversation(title=title))
    listed = await store.list_conversations()
    assert [c.id for c in listed] == [c.id for c in reversed(created)]
    assert [c.id for c in await store.list_conversations(limit=2)] == [created[2].id, created[1].id]


async def test_list_conversations_orders_by_latest_activity(store: SQLStore) -> None:
    first = await store.create_conversation(title="first")
    _next_millisecond()
    second = await store.create_conversation(title="second")
    _next_millisecond()
    await store.append(first.id, None, _text("user", "hello again"))
    assert [c.id for c in await store.list_conversations()] == [first.id, second.id]


async def test_update_conversation(store: SQLStore) -> None:
    created = await store.create_conversation(title="old")
    _next_millisecond()
    updated = await store.update_conversation(
        created.id, title="new", model="m", system_prompt="sys", metadata={"tag": "x"}
    )
    assert (updated.title, updated.model, updated.system_prompt, updated.metadata) == ("new", "m", "sys", {"tag": "x"})
    assert updated.updated_at > created.updated_at
    assert await store.get_conversation(created.id) == updated


async def test_update_conversation_head(store: SQLStore) -> None:
    conv = await store.create_conversation()
    first = await store.append(conv.id, None, _text("user", "one"))
    await store.append(conv.id, first.id, _text("assistant", "two"))
    moved = await store.update_conversation(conv.id, head_item_id=first.id)
    assert moved.head_item_id == first.id
    assert (await store.get_conversation(conv.id)).head_item_id == first.id


async def test_update_conversation_head_from_another_conversation_is_not_found(store: SQLStore) -> None:
    conv = await store.create_conversation()
    other = await store.create_conversation()
    foreign = await store.append(other.id, None, _text("user", "elsewhere"))
    with pytest.raises(NotFound):
        await store.update_conversation(conv.id, head_item_id=foreign.id)
    assert (await store.get_conversation(conv.id)).head_item_id is None


async def test_update_conversation_refuses_unknown_fields(store: SQLStore) -> None:
    conv = await store.create_conversation(title="kept")
    with pytest.raises(TypeError):
        await store.update_conversation(conv.id, tenant_id_typo="x")
    assert (await store.get_conversation(conv.id)).title == "kept"


async def test_delete_conversation_removes_every_row(store: SQLStore) -> None:
    conv = await store.create_conversation()
    kept = await store.create_conversation()
    root = await store.append(conv.id, None, _text("user", "q"))
    await store.append(conv.id, root.id, _text("assistant", "a1"))
    await store.append(conv.id, root.id, _text("assistant", "a2"))
    kept_item = await store.append(kept.id, None, _text("user", "stay"))
    assert await _count_rows(store, items, conv.id) == 3

    await store.delete_conversation(conv.id)

    assert await _count_rows(store, items, conv.id) == 0
    assert await _count_rows(store, conversations, conv.id) == 0
    with pytest.raises(NotFound):
        await store.get_conversation(conv.id)
    with pytest.raises(NotFound):
        await store.get_item(root.id)
    assert await store.get_item(kept_item.id) == kept_item
    assert [c.id for c in await store.list_conversations()] == [kept.id]


async def test_delete_missing_conversation_is_not_found(store: SQLStore) -> None:
    with pytest.raises(NotFound):
        await store.delete_conversation("conv_missing")


# -- tenant scoping ---------------------------------------------------------------------------


async def test_another_tenant_sees_nothing(store: SQLStore) -> None:
    conv = await store.create_conversation(title="mine")
    root = await store.append(conv.id, None, _text("user", "secret"))

    with pytest.raises(NotFound):
        await store.get_conversation(conv.id, tenant_id=OTHER_TENANT)
    with pytest.raises(NotFound):
        await store.update_conversation(conv.id, tenant_id=OTHER_TENANT, title="stolen")
    with pytest.raises(NotFound):
        await store.delete_conversation(conv.id, tenant_id=OTHER_TENANT)
    with pytest.raises(NotFound):
        await store.append(conv.id, root.id, _text("user", "intrusion"), tenant_id=OTHER_TENANT)
    with pytest.raises(NotFound):
        await store.get_item(root.id, tenant_id=OTHER_TENANT)
    with pytest.raises(NotFound):
        await store.path(conv.id, root.id, tenant_id=OTHER_TENANT)
    with pytest.raises(NotFound):
        await store.items(conv.id, tenant_id=OTHER_TENANT)
    with pytest.raises(NotFound):
        await store.children(conv.id, None, tenant_id=OTHER_TENANT)
    assert await store.list_conversations(tenant_id=OTHER_TENANT) == []

    # Nothing the other tenant tried changed anything.
    current = await store.get_conversation(conv.id)
    assert current.title == "mine"
    assert current.head_item_id == root.id
    assert [i.id for i in await store.items(conv.id)] == [root.id]


async def test_tenants_list_only_their_own(store: SQLStore) -> None:
    mine = await store.create_conversation()
    theirs = await store.create_conversation(tenant_id=OTHER_TENANT)
    assert theirs.tenant_id == OTHER_TENANT
    assert [c.id for c in await store.list_conversations()] == [mine.id]
    assert [c.id for c in await store.list_conversations(tenant_id=OTHER_TENANT)] == [theirs.id]
    assert (await store.get_conversation(theirs.id, tenant_id=OTHER_TENANT)).id == theirs.id
    with pytest.raises(NotFound):
        await store.get_conversation(theirs.id)


async def test_find_conversations_by_title_or_item_text(store: SQLStore) -> None:
    titled = await store.create_conversation(title="Trip to Porto")
    await store.append(titled.id, None, _text("user", "nothing to see"))
    _next_millisecond()
    cats = await store.create_conversation()
    first = await store.append(cats.id, None, _text("user", "How many cats does Matilde keep?"))
    answer = await store.append(cats.id, first.id, _text("assistant", "Matilde keeps 18 CATS in Braga."))
    _next_millisecond()
    literal = await store.create_conversation()
    await store.append(literal.id, None, _text("user", "a 100% sure thing_x"))
    await store.create_conversation(title="porto, but theirs", tenant_id=OTHER_TENANT)

    found = await store.find_conversations(["PORTO"])
    assert [(c.id, item) for c, item in found] == [(titled.id, None)]  # a title match names no item
    found = await store.find_conversations(["matilde", "braga"])  # every word, in one item
    assert [(c.id, item.id if item else None) for c, item in found] == [(cats.id, answer.id)]
    found = await store.find_conversations(["cats"])  # the oldest matching item, whatever the case
    assert [(c.id, item.id if item else None) for c, item in found] == [(cats.id, first.id)]
    assert await store.find_conversations(["matilde", "porto"]) == []  # the words in different places
    assert [c.id for c, _ in await store.find_conversations(["100%"])] == [literal.id]
    assert await store.find_conversations(["1_0"]) == []  # % and _ are literal, not wildcards
    assert await store.find_conversations(["type"]) == []  # a key of the stored JSON, in no text
    assert await store.find_conversations(["porto"], tenant_id="nobody") == []
    assert [c.title for c, _ in await store.find_conversations(["porto"], tenant_id=OTHER_TENANT)] == [
        "porto, but theirs"
    ]
    everyone = await store.find_conversations(["a"], limit=2)  # newest activity first, limited
    assert [c.id for c, _ in everyone] == [literal.id, cats.id]


async def test_first_user_items_name_untitled_conversations(store: SQLStore) -> None:
    one = await store.create_conversation()
    system = await store.append(one.id, None, _text("system", "be brief"))
    asked = await store.append(one.id, system.id, _text("user", "first question"))
    await store.append(one.id, asked.id, _text("user", "second question"))
    empty = await store.create_conversation()
    theirs = await store.create_conversation(tenant_id=OTHER_TENANT)
    await store.append(theirs.id, None, _text("user", "theirs"), tenant_id=OTHER_TENANT)

    firsts = await store.first_user_items([one.id, empty.id, theirs.id])
    assert {k: v.text for k, v in firsts.items()} == {one.id: "first question"}
    assert await store.first_user_items([]) == {}


async def test_append_under_another_tenants_parent_is_not_found(store: SQLStore) -> None:
    theirs = await store.create_conversation(tenant_id=OTHER_TENANT)
    their_item = await store.append(theirs.id, None, _text("user", "x"), tenant_id=OTHER_TENANT)
    mine = await store.create_conversation()
    with pytest.raises(NotFound):
        await store.append(mine.id, their_item.id, _text("user", "y"))
    assert await store.items(mine.id) == []


# -- items ------------------------------------------------------------------------------------


async def test_append_moves_head_by_default(store: SQLStore) -> None:
    conv = await store.create_conversation()
    first = await store.append(conv.id, None, _text("user", "hi"))
    assert first.parent_id is None
    assert first.conversation_id == conv.id
    assert (await store.get_conversation(conv.id)).head_item_id == first.id
    second = await store.append(conv.id, first.id, _text("assistant", "hello"))
    assert second.parent_id == first.id
    assert (await store.get_conversation(conv.id)).head_item_id == second.id


async def test_append_without_moving_head(store: SQLStore) -> None:
    conv = await store.create_conversation()
    first = await store.append(conv.id, None, _text("user", "hi"))
    side = await store.append(conv.id, first.id, _text("assistant", "draft"), move_head=False)
    assert (await store.get_conversation(conv.id)).head_item_id == first.id
    assert await store.get_item(side.id) == side


async def test_append_to_missing_conversation_is_not_found(store: SQLStore) -> None:
    with pytest.raises(NotFound):
        await store.append("conv_missing", None, _text("user", "hi"))


async def test_append_refuses_parent_of_another_conversation(store: SQLStore) -> None:
    conv = await store.create_conversation()
    other = await store.create_conversation()
    foreign = await store.append(other.id, None, _text("user", "elsewhere"))
    with pytest.raises(NotFound):
        await store.append(conv.id, foreign.id, _text("user", "here"))
    with pytest.raises(NotFound):
        await store.append(conv.id, "item_missing", _text("user", "here"))
    assert await store.items(conv.id) == []
    assert (await store.get_conversation(conv.id)).head_item_id is None


async def test_get_missing_item_is_not_found(store: SQLStore) -> None:
    with pytest.raises(NotFound):
        await store.get_item("item_missing")


async def test_path_through_a_branching_tree(store: SQLStore) -> None:
    conv = await store.create_conversation()
    root = await store.append(conv.id, None, _text("user", "q1"))
    answer = await store.append(conv.id, root.id, _text("assistant", "a1"))
    left = await store.append(conv.id, answer.id, _text("user", "left"))
    right = await store.append(conv.id, answer.id, _text("user", "right"))
    left_leaf = await store.append(conv.id, left.id, _text("assistant", "left answer"))

    assert [i.id for i in await store.path(conv.id, left_leaf.id)] == [root.id, answer.id, left.id, left_leaf.id]
    assert [i.id for i in await store.path(conv.id, right.id)] == [root.id, answer.id, right.id]
    assert [i.id for i in await store.path(conv.id, answer.id)] == [root.id, answer.id]
    assert [i.id for i in await store.path(conv.id, root.id)] == [root.id]
    assert await store.path(conv.id, None) == []
    assert (await store.path(conv.id, left_leaf.id))[-1] == left_leaf


async def test_path_of_item_in_another_conversation_is_not_found(store: SQLStore) -> None:
    conv = await store.create_conversation()
    other = await store.create_conversation()
    foreign = await store.append(other.id, None, _text("user", "elsewhere"))
    with pytest.raises(NotFound):
        await store.path(conv.id, foreign.id)
    with pytest.raises(NotFound):
        await store.path(conv.id, "item_missing")


async def test_children(store: SQLStore) -> None:
    conv = await store.create_conversation()
    root = await store.append(conv.id, None, _text("user", "q"))
    _next_millisecond()
    first = await store.append(conv.id, root.id, _text("assistant", "a"))
    _next_millisecond()
    second = await store.append(conv.id, root.id, _text("assistant", "b"))
    grandchild = await store.append(conv.id, first.id, _text("user", "more"))
    other = await store.create_conversation()
    await store.append(other.id, None, _text("user", "other root"))

    assert [i.id for i in await store.children(conv.id, None)] == [root.id]
    assert [i.id for i in await store.children(conv.id, root.id)] == [first.id, second.id]
    assert [i.id for i in await store.children(conv.id, first.id)] == [grandchild.id]
    assert list(await store.children(conv.id, second.id)) == []


async def test_items_lists_the_whole_tree_oldest_first(store: SQLStore) -> None:
    conv = await store.create_conversation()
    appended = []
    parent: str | None = None
    for n in range(3):
        _next_millisecond()
        record = await store.append(conv.id, parent, _text("user", f"q{n}"))
        appended.append(record)
        _next_millisecond()
        # A sibling branch that does not move the head: items() lists it all the same.
        appended.append(await store.append(conv.id, record.id, _text("assistant", f"draft{n}"), move_head=False))
        parent = record.id
    listed = await store.items(conv.id)
    assert [i.id for i in listed] == [i.id for i in appended]
    assert listed == appended


async def test_every_field_round_trips(store: SQLStore) -> None:
    conv = await store.create_conversation()
    parent = await store.append(conv.id, None, _text("user", "look"))
    new = NewItem(
        role="assistant",
        content=(
            TextPart("héllo ✓ \n multi-line"),
            ImagePart(url="https://example.com/a.png", detail="high"),
            ImagePart(url="data:image/png;base64,AAAA"),
            AudioPart(data="UklGRg==", format="wav"),
            AudioPart(url="https://example.com/a.mp3"),
            VideoPart(url="https://example.com/v.mp4"),
            VideoPart(frames=("https://example.com/f1.jpg", "https://example.com/f2.jpg")),
        ),
        status="incomplete",
        reasoning="first I think",
        tool_calls=(
            ToolCall(id="call_1", name="get_weather", arguments='{"city": "Paris"}'),
            ToolCall(id="call_2", name="noop", arguments="{}"),
        ),
        tool_call_id=None,
        model="qwen3-0.6b",
        usage=Usage(
            prompt_tokens=120,
            completion_tokens=30,
            cached_tokens=100,
            reasoning_tokens=12,
            cost=Cost("USD", input=0.000008, cached_input=0.00002, output=0.00018, conversation=0.0012),
        ),
        finish_reason="length",
        token_count=42,
        context_report=ContextReport(
            policy="auto",
            items=9,
            kept=((0, 0), (3, 8)),
            recalled=((1, 1),),
            summarized=((1, 2),),
            budget=4000,
            tokens=7,
            tokens_by_part={"system": 3, "input": 4},
            recalled_scores={1: 0.25},
            over_budget=True,
            error="the upstream failed",
        ),
        id=new_id("item"),  # an id named by the caller (an answer a stream announced) is kept
    )
    appended = await store.append(conv.id, parent.id, new)
    fetched = await store.get_item(appended.id)
    assert fetched == appended
    for field in NewItem.__dataclass_fields__:
        assert getattr(fetched, field) == getattr(new, field), field
    assert fetched.parent_id == parent.id
    assert fetched.conversation_id == conv.id
    assert (await store.path(conv.id, appended.id))[-1] == appended
    assert (await store.items(conv.id))[-1] == appended


async def test_tool_item_round_trips(store: SQLStore) -> None:
    conv = await store.create_conversation()
    call = await store.append(
        conv.id, None, NewItem(role="assistant", content=(), tool_calls=(ToolCall("call_9", "f", "{}"),))
    )
    result = await store.append(conv.id, call.id, _text("tool", '{"ok": true}', tool_call_id="call_9"))
    fetched = await store.get_item(result.id)
    assert fetched.role == "tool"
    assert fetched.tool_call_id == "call_9"
    assert fetched.text == '{"ok": true}'
    fetched_call = await store.get_item(call.id)
    assert fetched_call.content == ()
    assert fetched_call.tool_calls == (ToolCall("call_9", "f", "{}"),)


async def test_minimal_item_defaults_round_trip(store: SQLStore) -> None:
    conv = await store.create_conversation()
    appended = await store.append(conv.id, None, _text("user", ""))
    fetched = await store.get_item(appended.id)
    assert fetched == appended
    assert fetched.status == "completed"
    assert (fetched.reasoning, fetched.usage, fetched.finish_reason, fetched.token_count) == (None, None, None, None)
    assert fetched.tool_calls == ()
    assert fetched.context_report is None
    assert fetched.content == (TextPart(""),)


# -- ordering within one millisecond ----------------------------------------------------------


def _freeze_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every id and timestamp of the store falls in one and the same millisecond."""
    frozen = time.time_ns()
    monkeypatch.setattr(ids, "time", types.SimpleNamespace(time_ns=lambda: frozen))


async def test_list_conversations_newest_first_within_one_millisecond(
    store: SQLStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    _freeze_clock(monkeypatch)
    created = [await store.create_conversation(title=str(n)) for n in range(12)]
    assert [c.id for c in await store.list_conversations()] == [c.id for c in reversed(created)]


async def test_items_oldest_first_within_one_millisecond(store: SQLStore, monkeypatch: pytest.MonkeyPatch) -> None:
    conv = await store.create_conversation()
    _freeze_clock(monkeypatch)
    appended = []
    parent: str | None = None
    for n in range(12):
        record = await store.append(conv.id, parent, _text("user", str(n)))
        appended.append(record.id)
        parent = record.id
    assert [i.id for i in await store.items(conv.id)] == appended


async def test_cached_paths_follow_growth_and_deletion_in_any_process(db_url: str) -> None:
    url = Settings(db=db_url).database_url
    one, two = SQLStore(url), SQLStore(url)  # two processes' stores: two path caches
    await one.migrate()
    try:
        conv = await one.create_conversation()
        a = await one.append(conv.id, None, _text("user", "a"))
        b = await one.append(conv.id, a.id, _text("assistant", "b"))
        assert [i.id for i in await one.path(conv.id, b.id)] == [a.id, b.id]
        c = await two.append(conv.id, b.id, _text("user", "c"))  # written elsewhere
        assert [i.id for i in await one.path(conv.id, c.id)] == [a.id, b.id, c.id]  # the cached path, one row added
        assert [i.id for i in await one.path(conv.id, b.id)] == [a.id, b.id]
        await two.delete_item(conv.id, b.id)  # deletes b and c
        for gone in (b.id, c.id):
            with pytest.raises(NotFound):
                await one.path(conv.id, gone)
        assert [i.id for i in await one.path(conv.id, a.id)] == [a.id]
        with pytest.raises(NotFound):
            await one.path(conv.id, a.id, tenant_id="someone-else")  # a cached path is still scoped
    finally:
        await one.close()
        await two.close()


async def test_a_read_back_stops_below_the_path_cached_last(store: SQLStore) -> None:
    """Another process served the last few turns: the read back fetches those items only, down
    from the leaf to the one whose parent ends the conversation's path cached here."""
    conversation = await store.create_conversation()
    ids = []
    for n in range(12):
        ids.append((await store.append(conversation.id, HEAD, NewItem(role="user", content=(TextPart(f"{n}"),)))).id)

    params = {"b_leaf": ids[-1], "b_conversation": conversation.id, "b_tenant": "default"}

    async def read(stop: str | None) -> list[str]:
        bound = {**params, "b_stop": stop, "b_depth": NEAREST - 1}
        return await store._read(lambda conn: [row["id"] for row in store_sql._items_back_rows(conn, bound)])

    assert await read(ids[8]) == ids[:8:-1]  # the three items below ids[8], leaf first
    assert await read(None) == ids[::-1]  # none cached: as far as it goes (12 of at most 16)
    assert await read(ids[-2]) == ids[-1:]  # one item new


async def test_a_path_far_ahead_of_the_cached_one_is_read_back_to_it_not_from_the_root(db_url: str) -> None:
    """Other processes served more turns than one short read reaches (``NEAREST`` items): the
    read back goes on to the path this store holds, which it keeps (the same records), instead
    of walking the conversation from its root."""
    url = Settings(db=db_url).database_url
    writer, reader = SQLStore(url), SQLStore(url)
    try:
        await writer.migrate()
        conversation = await writer.create_conversation()
        for n in range(30):
            await writer.append(conversation.id, HEAD, NewItem(role="user", content=(TextPart(f"{n}"),)))
        held = await reader.path(conversation.id, (await writer.get_conversation(conversation.id)).head_item_id)
        for n in range(3 * NEAREST):
            await writer.append(conversation.id, HEAD, NewItem(role="user", content=(TextPart(f"more {n}"),)))
        leaf = (await writer.get_conversation(conversation.id)).head_item_id
        seen = await reader.known_path(leaf, await reader.get_conversation(conversation.id))
        assert [i.id for i in seen] == [i.id for i in await writer.path(conversation.id, leaf)]
        assert len(seen) == 30 + 3 * NEAREST
        assert all(a is b for a, b in zip(seen, held, strict=False))  # the held records, not read again
    finally:
        await writer.close()
        await reader.close()


async def test_a_path_another_store_extended_is_read_back_to_what_this_one_holds(db_url: str) -> None:
    """Two stores (two processes) on one database: each reads the other's new items, one query
    for a few (to the nearest path it holds), a walk for many; both always see the same path."""
    url = Settings(db=db_url).database_url
    writer, reader = SQLStore(url), SQLStore(url)
    try:
        await writer.migrate()
        conversation = await writer.create_conversation()
        leaf = None
        for count in (40, 3, 1, 15, 16, 17, 40):
            for n in range(count):
                role = "user" if n % 2 == 0 else "assistant"
                leaf = (await writer.append(conversation.id, HEAD, NewItem(role=role, content=(TextPart(f"{n}"),)))).id
            seen = await reader.path(conversation.id, leaf)
            fresh, known = SQLStore(url), SQLStore(url)  # known: a turn's read of its parent's path
            try:
                assert [i.id for i in seen] == [i.id for i in await fresh.path(conversation.id, leaf)]
                read = await known.get_conversation(conversation.id)
                assert [i.id for i in seen] == [i.id for i in await known.known_path(leaf, read)]
            finally:
                await fresh.close()
                await known.close()
            assert [i.id for i in seen] == [i.id for i in await writer.path(conversation.id, leaf)]
            assert [i.id for i in seen] == [i.id for i in await writer.known_path(leaf, conversation)]
        await writer.delete_item(conversation.id, seen[1].id)
        with pytest.raises(NotFound):  # deleted all the same: found out by the read, cached or not
            await reader.known_path(leaf, await reader.get_conversation(conversation.id))
    finally:
        await writer.close()
        await reader.close()
