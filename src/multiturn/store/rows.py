"""Rows to records and back: the one place the store's columns meet the record types."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from .. import codec
from ..records import ConversationRecord, ItemRecord, SummaryRecord


def conversation_record(row: Mapping[Any, Any]) -> ConversationRecord:
    return ConversationRecord(
        id=row["id"],
        tenant_id=row["tenant_id"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        title=row["title"],
        model=row["model"],
        system_prompt=row["system_prompt"],
        head_item_id=row["head_item_id"],
        metadata=dict(row["metadata"] or {}),
        erasures=row.get("erasures") or 0,
    )


def item_row(record: ItemRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "conversation_id": record.conversation_id,
        "parent_id": record.parent_id,
        "role": record.role,
        "content": codec.encode_parts(record.content),
        "reasoning": record.reasoning,
        "tool_calls": codec.encode_tool_calls(record.tool_calls) if record.tool_calls else None,
        "tool_call_id": record.tool_call_id,
        "status": record.status,
        "model": record.model,
        "usage": codec.encode_usage(record.usage) if record.usage else None,
        "finish_reason": record.finish_reason,
        "token_count": record.token_count,
        "context_report": codec.encode_report(record.context_report) if record.context_report else None,
        "created_at": record.created_at,
    }


def item_record(row: sa.RowMapping) -> ItemRecord:
    return ItemRecord(
        id=row["id"],
        conversation_id=row["conversation_id"],
        parent_id=row["parent_id"],
        role=row["role"],
        content=codec.decode_parts(row["content"]),
        status=row["status"],
        created_at=row["created_at"],
        reasoning=row["reasoning"],
        tool_calls=codec.decode_tool_calls(row["tool_calls"]),
        tool_call_id=row["tool_call_id"],
        model=row["model"],
        usage=codec.decode_usage(row["usage"]),
        finish_reason=row["finish_reason"],
        token_count=row["token_count"],
        context_report=codec.decode_report(row["context_report"]) if row["context_report"] else None,
    )


def summary_row(record: SummaryRecord) -> dict[str, Any]:
    return {f.name: getattr(record, f.name) for f in dataclasses.fields(record)}


def summary_record(row: sa.RowMapping) -> SummaryRecord:
    return SummaryRecord(**{f.name: row[f.name] for f in dataclasses.fields(SummaryRecord)})
