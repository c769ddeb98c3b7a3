"""JSON Lines export and import, on SQLite and PostgreSQL: a whole tree goes out and comes back
under new ids, equal to the original but for the ids; a bad file writes nothing."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from typing import Any

import pytest
import sqlalchemy as sa

from multiturn import export
from multiturn.errors import InvalidInput, NotFound, StoreError
from multiturn.store import NewItem, SQLStore
from multiturn.store.schema import conversations, items
from multiturn.types import AudioPart, ContextReport, ImagePart, TextPart, ToolCall, Usage, VideoPart

OTHER_TENANT = "someone-else"
PNG = (
    "data:image/png;base64,"
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
ID = re.compile(r"\b(?:conv|item)_[0-9a-f]{24}\b")


async def _tree(store: SQLStore, tenant_id: str = "default") -> str:
    """A conversation with every kind of thing an item can hold, two branches and a head on one."""
    conv = await store.create_conversation(
        tenant_id=tenant_id,
        title="weather",
        model="qwen-plus",
        system_prompt="You are terse.",
        metadata={"policy": "window", "labels": ["a", "b"], "nested": {"x": 1}},
    )
    user = await store.append(
        conv.id,
        None,
        NewItem(
            role="user",
            content=(
                TextPart("Weather in Paris? And this:"),
                ImagePart(url=PNG, detail="low"),
                AudioPart(data="UklGRg==", format="wav"),
                VideoPart(frames=("http://example.com/1.jpg", "http://example.com/2.jpg")),
            ),
            token_count=42,
        ),
        tenant_id=tenant_id,
    )
    report = ContextReport(policy="window", items=1, kept=((0, 0),), budget=4000, tokens=42)
    call = await store.append(
        conv.id,
        user.id,
        NewItem(
            role="assistant",
            content=(),
            reasoning="I should call the tool.",
            tool_calls=(ToolCall(id="call_1", name="weather", arguments='{"city": "Paris"}'),),
            model="qwen-plus",
            usage=Usage(prompt_tokens=42, completion_tokens=9, cached_tokens=30, reasoning_tokens=5),
            finish_reason="tool_calls",
            token_count=9,
            context_report=report,
        ),
        tenant_id=tenant_id,
    )
    result = await store.append(
        conv.id,
        call.id,
        NewItem(role="tool", content=(TextPart('{"temp": 21}'),), tool_call_id="call_1"),
        tenant_id=tenant_id,
    )
    await store.append(
        conv.id,
        result.id,
        NewItem(
            role="assistant",
            content=(TextPart("21 °C and sunny"),),
            status="incomplete",
            finish_reason="cancelled",
            context_report=ContextReport(policy="retrieval", items=3, kept=((0, 2),), recalled_scores={0: 0.5}),
        ),
        tenant_id=tenant_id,
    )
    # A second branch: a failed answer to the same question; the head goes back to the first.
    await store.append(
        conv.id,
        user.id,
        NewItem(
            role="assistant",
            content=(),
            status="failed",
            finish_reason="error",
            context_report=ContextReport.unplanned("boom"),
        ),
        tenant_id=tenant_id,
        move_head=False,
    )
    return conv.id


async def _export(store: SQLStore, conversation_id: str, tenant_id: str = "default") -> list[str]:
    record = await store.get_conversation(conversation_id, tenant_id=tenant_id)
    return list(export.to_jsonl(record, await store.items(conversation_id, tenant_id=tenant_id)))


def _without_ids(lines: list[str]) -> list[dict[str, Any]]:
    """The lines with every conversation or item id replaced by its order of first appearance."""
    names: dict[str, str] = {}

    def rename(match: re.Match[str]) -> str:
        return names.setdefault(match.group(0), f"<id{len(names)}>")

    return [json.loads(ID.sub(rename, line)) for line in lines]


async def test_export_import_export_is_equal_but_for_the_ids(store: SQLStore) -> None:
    original = await _tree(store)
    first = await _export(store, original)

    copy = await store.import_conversation(*export.from_jsonl(first))
    second = await _export(store, copy.id)

    assert copy.id != original
    assert _without_ids(second) == _without_ids(first)
    assert len(second) == 1 + 5
    old_ids = set(ID.findall("\n".join(first)))
    assert not old_ids & set(ID.findall("\n".join(second)))  # every id is new, in reports too
    # The copy is a conversation of its own: the same path, the same branches.
    path = await store.path(copy.id, copy.head_item_id)
    assert [i.role for i in path] == ["user", "assistant", "tool", "assistant"]
    assert path[-1].context_report is not None
    assert path[-1].context_report.kept == ((0, 2),)  # positions on the path: nothing to rename
    assert path[-1].context_report.recalled_scores == {0: 0.5}
    failed = [item for item in await store.children(copy.id, path[0].id) if item.status == "failed"]
    assert [item.context_report for item in failed] == [ContextReport.unplanned("boom")]
    assert len(await store.children(copy.id, path[0].id)) == 2


async def test_import_is_scoped_to_its_tenant(store: SQLStore) -> None:
    original = await _tree(store)
    copy = await store.import_conversation(*export.from_jsonl(await _export(store, original)), tenant_id=OTHER_TENANT)
    assert copy.tenant_id == OTHER_TENANT
    with pytest.raises(NotFound):
        await store.get_conversation(copy.id)
    with pytest.raises(NotFound):
        await store.get_item(copy.head_item_id or "", tenant_id="default")
    assert [c.id for c in await store.list_conversations(tenant_id=OTHER_TENANT)] == [copy.id]


async def _counts(store: SQLStore) -> tuple[int, int]:
    def count(conn: sa.Connection) -> tuple[int, int]:
        conv = conn.execute(sa.select(sa.func.count()).select_from(conversations)).scalar_one()
        item = conn.execute(sa.select(sa.func.count()).select_from(items)).scalar_one()
        return int(conv), int(item)

    return await store._read(count)


BAD_FILES = {
    "empty": ([], "empty"),
    "not json": (["{not json"], "line 1: not JSON"),
    "item first": (['{"type": "item"}'], "line 1: expected the conversation line first"),
    "orphan": (None, "the parent 'item_nowhere' does not come before this item"),
    "bad role": (None, "unknown role 'wizard'"),
    "bad part": (None, "unknown content part"),
    "head elsewhere": (None, "the head 'item_gone' is not an item of the file"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
async def test_a_bad_file_is_one_line_error_and_writes_nothing(store: SQLStore, case: str) -> None:
    lines = await _export(store, await _tree(store))
    given, expected = BAD_FILES[case]
    if given is None:
        rows = [json.loads(line) for line in lines]
        if case == "orphan":
            rows[3]["parent_id"] = "item_nowhere"
        elif case == "bad role":
            rows[2]["role"] = "wizard"
        elif case == "bad part":
            rows[1]["content"] = [{"type": "hologram"}]
        else:
            rows[0]["head_item_id"] = "item_gone"
        given = [json.dumps(row) for row in rows]
    before = await _counts(store)
    with pytest.raises(InvalidInput) as caught:
        await store.import_conversation(*export.from_jsonl(given))
    assert expected in caught.value.message
    assert "\n" not in caught.value.message
    assert await _counts(store) == before


async def test_a_failing_write_leaves_nothing_half_written(store: SQLStore) -> None:
    """The rows go in one transaction: an item the database refuses (a status the schema's
    check rejects) rolls back the conversation and the items before it."""
    conversation, tree = export.from_jsonl(await _export(store, await _tree(store)))
    broken = [*tree[:-1], replace(tree[-1], status="exploded")]  # type: ignore[arg-type]
    before = await _counts(store)
    with pytest.raises(StoreError):
        await store.import_conversation(conversation, broken)
    assert await _counts(store) == before
