"""Copying a whole conversation tree under new ids (what an import writes).

``renumber`` is pure: it checks that the tree is whole (every parent and the head name an item
of it, parents before children) and gives the conversation and every item a new id, so the
copy is the same tree with other names. Context reports name items by their position in the
request's path, not by id, so they are copied as they are. Times are kept.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

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
