"""``multiturn.context.plan.build_messages``: the ``full`` policy, a pure function of a path."""

from __future__ import annotations

from typing import Any

from multiturn.context.plan import build_messages
from multiturn.records import ItemRecord
from multiturn.types import ImagePart, Message, TextPart, ToolCall
from support.reports import fated


def _item(item_id: str, role: Any, text: str | None, **extra: Any) -> ItemRecord:
    fields: dict[str, Any] = {
        "id": item_id,
        "conversation_id": "conv_1",
        "parent_id": None,
        "role": role,
        "content": () if text is None else (TextPart(text),),
        "status": "completed",
        "created_at": 0,
    }
    fields.update(extra)
    return ItemRecord(**fields)


def test_system_prompt_comes_first() -> None:
    path = [_item("i1", "user", "hi"), _item("i2", "assistant", "hello")]
    messages, report = build_messages("Be brief.", path)
    assert messages == [Message.of("system", "Be brief."), Message.of("user", "hi"), Message.of("assistant", "hello")]
    assert report.policy == "full"
    assert fated(report, path, "kept") == ("i1", "i2")
    assert report.count("dropped") == 0


def test_no_system_message_without_a_prompt() -> None:
    for prompt in (None, ""):
        messages, _ = build_messages(prompt, [_item("i1", "user", "hi")])
        assert [m.role for m in messages] == ["user"]


def test_empty_path() -> None:
    messages, report = build_messages("sys", [])
    assert messages == [Message.of("system", "sys")]
    assert (report.kept, report.count("dropped"), report.tokens) == ((), 0, 0)


def test_reasoning_is_never_replayed_by_default() -> None:
    path = [_item("i1", "user", "2+2?"), _item("i2", "assistant", "4", reasoning="two and two")]
    messages, report = build_messages(None, path)
    assert all(m.reasoning is None for m in messages)
    assert messages[1] == Message.of("assistant", "4")
    assert fated(report, path, "kept") == ("i1", "i2")


def test_reasoning_is_replayed_on_request() -> None:
    path = [_item("i1", "user", "2+2?"), _item("i2", "assistant", "4", reasoning="two and two")]
    messages, _ = build_messages(None, path, reasoning_replay="keep")
    assert messages[1].reasoning == "two and two"
    assert messages[1].text == "4"


def test_failed_and_empty_assistant_items_are_dropped_and_reported() -> None:
    path = [
        _item("u1", "user", "first"),
        _item("a1", "assistant", "partial answer", status="failed"),
        _item("a2", "assistant", None),
        _item("a3", "assistant", None, reasoning="only thoughts, no answer"),
        _item("u2", "user", "again", status="failed"),
        _item("a4", "assistant", "ok"),
    ]
    messages, report = build_messages(None, path)
    assert [m.text for m in messages] == ["first", "ok"]
    assert fated(report, path, "kept") == ("u1", "a4")
    assert fated(report, path, "dropped") == ("a1", "a2", "a3", "u2") and report.count("dropped") == 4


def test_incomplete_items_with_content_are_kept() -> None:
    path = [_item("u1", "user", "tell me a story"), _item("a1", "assistant", "Once upon a", status="incomplete")]
    messages, report = build_messages(None, path)
    assert messages[-1] == Message.of("assistant", "Once upon a")
    assert fated(report, path, "kept") == ("u1", "a1")
    assert report.count("dropped") == 0


def test_incomplete_empty_assistant_item_is_dropped() -> None:
    path = [_item("u1", "user", "hi"), _item("a1", "assistant", None, status="incomplete")]
    _, report = build_messages(None, path)
    assert fated(report, path, "kept") == ("u1",)
    assert fated(report, path, "dropped") == ("a1",)


def test_tool_calls_and_results_are_kept() -> None:
    call = ToolCall(id="call_1", name="lookup", arguments='{"q": "x"}')
    path = [
        _item("u1", "user", "look it up"),
        _item("a1", "assistant", None, tool_calls=(call,)),
        _item("t1", "tool", "result", tool_call_id="call_1"),
        _item("a2", "assistant", "found it"),
    ]
    messages, report = build_messages(None, path)
    assert fated(report, path, "kept") == ("u1", "a1", "t1", "a2")
    assert messages[1].tool_calls == (call,)
    assert messages[1].content == ()
    assert messages[2].role == "tool"
    assert messages[2].tool_call_id == "call_1"


def test_non_text_parts_are_kept_in_order() -> None:
    parts = (TextPart("what is this?"), ImagePart(url="https://example.com/a.png"))
    messages, _ = build_messages(None, [_item("u1", "user", None, content=parts)])
    assert messages[0].content == parts


def test_tokens_count_only_kept_items() -> None:
    path = [
        _item("u1", "user", "a", token_count=5),
        _item("a1", "assistant", "b", token_count=7, status="failed"),
        _item("u2", "user", "c", token_count=None),
        _item("a2", "assistant", "d", token_count=11),
    ]
    _, report = build_messages(None, path)
    assert report.tokens == 16
