"""Conversations as JSON Lines: one ``conversation`` line, then one ``item`` line per tree node.

Items are written oldest first, so every parent precedes its children and a reader can rebuild
the whole tree (every branch, not only the current path) in one pass.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from . import codec
from .records import ConversationRecord, ItemRecord


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
        "context_report": item.context_report,
        "created_at": item.created_at,
    }


def to_jsonl(conversation: ConversationRecord, items: Iterable[ItemRecord]) -> Iterator[str]:
    yield json.dumps(conversation_to_json(conversation), ensure_ascii=False)
    for item in items:
        yield json.dumps(item_to_json(item), ensure_ascii=False)
