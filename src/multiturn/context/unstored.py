"""A stateless request's array seen as a path of items, so the planner can treat it as it
treats a stored conversation.

Ids are content addresses: each chains a hash of its message's canonical JSON with the previous
id, so a resent array (or one that grew by a turn) has the same ids for the same prefix, and
whatever was stored for a prefix (a summary, under ``prefix_hash``) is found again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

from .. import codec
from ..records import ItemRecord
from ..types import Message


def message_ids(messages: Sequence[Message]) -> list[str]:
    """Content-addressed ids of an unstored array: each chains its message's canonical JSON
    with the previous id, so equal prefixes have equal ids."""
    ids: list[str] = []
    previous = ""
    for message in messages:
        canonical = json.dumps(codec.encode_message(message), sort_keys=True, separators=(",", ":"))
        previous = "msg_" + hashlib.sha256(f"{previous}\n{canonical}".encode()).hexdigest()[:32]
        ids.append(previous)
    return ids


def unstored_path(messages: Sequence[Message]) -> tuple[list[str], list[ItemRecord]]:
    """The array's ids and its items (completed, in no conversation)."""
    ids = message_ids(messages)
    return ids, [_item(i, m) for i, m in zip(ids, messages, strict=True)]


def _item(item_id: str, message: Message) -> ItemRecord:
    return ItemRecord(
        id=item_id,
        conversation_id="",
        parent_id=None,
        role=message.role,
        content=message.content,
        status="completed",
        created_at=0,
        reasoning=message.reasoning,
        tool_calls=message.tool_calls,
        tool_call_id=message.tool_call_id,
    )
