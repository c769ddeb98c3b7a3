"""Conversations as JSON Lines: one ``conversation`` line, then one ``item`` line per tree node.

Items are written oldest first, and always after their parent, so a reader can rebuild the
whole tree (every branch, not only the current path) in one pass. ``from_jsonl`` is that
reader: it checks every line and gives back the records as written (old ids); the store's
``import_conversation`` writes them under new ids. A file is all or nothing: the first bad line
is an ``InvalidInput`` naming its number, and nothing has been written by then.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, cast

from . import codec
from .errors import InvalidInput
from .records import ConversationRecord, ItemRecord
from .types import ROLES, Role, Status

STATUSES: tuple[Status, ...] = ("completed", "incomplete", "failed")


def conversation_to_json(record: ConversationRecord) -> dict[str, Any]:
    return {
        "type": "conversation",
        "id": record.id,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
        "title": record.title,
        "model": record.model,
        "system_prompt": record.system_prompt,
        "head_item_id": record.head_item_id,
        "metadata": record.metadata,
    }


def item_to_json(item: ItemRecord) -> dict[str, Any]:
    return {
        "type": "item",
        "id": item.id,
        "parent_id": item.parent_id,
        "role": item.role,
        "content": codec.encode_parts(item.content),
        "reasoning": item.reasoning,
        "tool_calls": codec.encode_tool_calls(item.tool_calls),
        "tool_call_id": item.tool_call_id,
        "status": item.status,
        "model": item.model,
        "usage": codec.encode_usage(item.usage) if item.usage else None,
        "finish_reason": item.finish_reason,
        "token_count": item.token_count,
        "context_report": codec.encode_report(item.context_report) if item.context_report else None,
        "created_at": item.created_at,
    }


def to_jsonl(conversation: ConversationRecord, items: Iterable[ItemRecord]) -> Iterator[str]:
    yield json.dumps(conversation_to_json(conversation), ensure_ascii=False)
    for item in parents_first(items):
        yield json.dumps(item_to_json(item), ensure_ascii=False)


def parents_first(items: Iterable[ItemRecord]) -> list[ItemRecord]:
    """``items`` in their order, except that an item whose parent comes later (clocks of two
    processes within one millisecond) is moved after its parent."""
    ordered = list(items)
    known = {item.id for item in ordered}
    placed: set[str] = set()
    waiting: dict[str, list[ItemRecord]] = {}
    out: list[ItemRecord] = []

    def place(item: ItemRecord) -> None:
        out.append(item)
        placed.add(item.id)
        for child in waiting.pop(item.id, []):
            place(child)

    for item in ordered:
        parent = item.parent_id
        if parent is None or parent in placed or parent not in known:
            place(item)
        else:
            waiting.setdefault(parent, []).append(item)
    return out


def from_jsonl(lines: Iterable[str]) -> tuple[ConversationRecord, list[ItemRecord]]:
    """Read an export back: the conversation and its items, with the ids of the file.

    Raises:
        InvalidInput: a line is not JSON or not the expected shape, the first line is not a
            conversation, an item's parent does not come before it, or the head names no item.
    """
    conversation: ConversationRecord | None = None
    items: list[ItemRecord] = []
    seen: set[str] = set()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"line {number}: not JSON ({exc.msg})") from None
        try:
            if not isinstance(data, dict):
                raise InvalidInput("not a JSON object")
            if conversation is None:
                conversation = _conversation(data)
                continue
            item = _item(data, conversation.id)
            if item.id in seen:
                raise InvalidInput(f"item {item.id!r} appears twice")
            if item.parent_id is not None and item.parent_id not in seen:
                raise InvalidInput(f"the parent {item.parent_id!r} does not come before this item")
        except InvalidInput as exc:
            raise InvalidInput(f"line {number}: {exc.message}") from None
        seen.add(item.id)
        items.append(item)
    if conversation is None:
        raise InvalidInput("the file is empty: expected a conversation line, then item lines")
    if conversation.head_item_id is not None and conversation.head_item_id not in seen:
        raise InvalidInput(f"the head {conversation.head_item_id!r} is not an item of the file")
    return conversation, items


def _conversation(data: Mapping[str, Any]) -> ConversationRecord:
    if data.get("type") != "conversation":
        raise InvalidInput('expected the conversation line first ("type": "conversation")')
    metadata = data.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise InvalidInput("metadata is not an object")
    return ConversationRecord(
        id=_str(data, "id"),
        tenant_id="",
        created_at=_int(data, "created_at"),
        updated_at=_int(data, "updated_at"),
        title=_opt_str(data, "title"),
        model=_opt_str(data, "model"),
        system_prompt=_opt_str(data, "system_prompt"),
        head_item_id=_opt_str(data, "head_item_id"),
        metadata=metadata,
    )


def _item(data: Mapping[str, Any], conversation_id: str) -> ItemRecord:
    if data.get("type") != "item":
        raise InvalidInput(f"expected an item line, got type {data.get('type')!r}")
    role, status = data.get("role"), data.get("status")
    if role not in ROLES:
        raise InvalidInput(f"unknown role {role!r}")
    if status not in STATUSES:
        raise InvalidInput(f"unknown status {status!r}")
    content, usage, report = data.get("content"), data.get("usage"), data.get("context_report")
    if not isinstance(content, list) or not all(isinstance(p, dict) for p in content):
        raise InvalidInput("content is not a list of parts")
    if usage is not None and not isinstance(usage, dict):
        raise InvalidInput("usage is not an object")
    if report is not None and not isinstance(report, dict):
        raise InvalidInput("context_report is not an object")
    tool_calls = data.get("tool_calls")
    if tool_calls is not None and not isinstance(tool_calls, list):
        raise InvalidInput("tool_calls is not a list")
    try:
        decoded_usage = codec.decode_usage(usage)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"malformed usage: {exc}") from None
    decoded_report = codec.decode_report(report) if report is not None else None
    return ItemRecord(
        id=_str(data, "id"),
        conversation_id=conversation_id,
        parent_id=_opt_str(data, "parent_id"),
        role=cast(Role, role),
        content=codec.decode_parts(content),
        status=cast(Status, status),
        created_at=_int(data, "created_at"),
        reasoning=_opt_str(data, "reasoning"),
        tool_calls=codec.decode_tool_calls(tool_calls),
        tool_call_id=_opt_str(data, "tool_call_id"),
        model=_opt_str(data, "model"),
        usage=decoded_usage,
        finish_reason=_opt_str(data, "finish_reason"),
        token_count=_opt_int(data, "token_count"),
        context_report=decoded_report,
    )


def _str(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"{key} is missing or not a string")
    return value


def _opt_str(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        raise InvalidInput(f"{key} is not a string")
    return value


def _int(data: Mapping[str, Any], key: str) -> int:
    value = data.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidInput(f"{key} is missing or not an integer")
    return value


def _opt_int(data: Mapping[str, Any], key: str) -> int | None:
    return None if data.get(key) is None else _int(data, key)
