"""Copying a whole conversation tree under new ids (what an import writes).

``renumber`` is pure: it checks that the tree is whole (every parent and the head name an item
of it, parents before children) and gives the conversation and every item a new id, renaming
the item ids its context reports mention (kept, dropped, recalled...), so the copy is the
same tree with other names. Times are kept.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from ..errors import InvalidInput
from ..ids import IdFactory
from ..records import ConversationRecord, ItemRecord


def renumber(
    conversation: ConversationRecord, items: Sequence[ItemRecord], *, tenant_id: str, ids: IdFactory
) -> tuple[ConversationRecord, list[ItemRecord]]:
    conversation_id = ids("conv")
    renamed: dict[str, str] = {}
    for item in items:
        if item.id in renamed:
            raise InvalidInput(f"item {item.id!r} appears twice")
        if item.parent_id is not None and item.parent_id not in renamed:
            raise InvalidInput(f"item {item.id!r} names a parent {item.parent_id!r} that does not come before it")
        renamed[item.id] = ids("item")
    head = conversation.head_item_id
    if head is not None and head not in renamed:
        raise InvalidInput(f"the head {head!r} is not an item of the conversation")
    copies = [
        dataclasses.replace(
            item,
            id=renamed[item.id],
            conversation_id=conversation_id,
            parent_id=renamed[item.parent_id] if item.parent_id is not None else None,
            context_report=_rename(item.context_report, renamed) if item.context_report is not None else None,
        )
        for item in items
    ]
    copy = dataclasses.replace(
        conversation,
        id=conversation_id,
        tenant_id=tenant_id,
        head_item_id=renamed[head] if head is not None else None,
    )
    return copy, copies


def _rename(value: Any, renamed: dict[str, str]) -> Any:
    if isinstance(value, str):
        return renamed.get(value, value)
    if isinstance(value, list):
        return [_rename(v, renamed) for v in value]
    if isinstance(value, dict):
        return {renamed.get(k, k): _rename(v, renamed) for k, v in value.items()}
    return value
