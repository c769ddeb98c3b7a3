"""Named, append-only schema migrations.

Each migration is a function of a connection, recorded by name in ``schema_migrations`` once
applied. Never edit or reorder a released migration: add a new one. Each one states its DDL
explicitly (not from ``schema.py``), so replaying history always yields the same schema.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

Migration = Callable[[Connection], None]


def _json() -> sa.types.TypeEngine[object]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def m001_conversation_tree(conn: Connection) -> None:
    md = sa.MetaData()
    sa.Table(
        "conversations",
        md,
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.Column("title", sa.Text),
        sa.Column("model", sa.Text),
        sa.Column("system_prompt", sa.Text),
        sa.Column("head_item_id", sa.String(64)),
        sa.Column("metadata", _json(), nullable=False),
        sa.Index("ix_conversations_tenant_updated", "tenant_id", "updated_at"),
    )
    sa.Table(
        "items",
        md,
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column(
            "conversation_id",
            sa.String(64),
            sa.ForeignKey("conversations.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("parent_id", sa.String(64), sa.ForeignKey("items.id", ondelete="CASCADE")),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("content", _json(), nullable=False),
        sa.Column("reasoning", sa.Text),
        sa.Column("tool_calls", _json()),
        sa.Column("tool_call_id", sa.String(128)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("model", sa.Text),
        sa.Column("usage", _json()),
        sa.Column("finish_reason", sa.String(32)),
        sa.Column("token_count", sa.Integer),
        sa.Column("context_report", _json()),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.CheckConstraint("status IN ('completed', 'incomplete', 'failed')", name="ck_items_status"),
        sa.CheckConstraint("role IN ('system', 'user', 'assistant', 'tool')", name="ck_items_role"),
        sa.Index("ix_items_conversation", "conversation_id", "created_at"),
        sa.Index("ix_items_parent", "parent_id"),
    )
    md.create_all(conn)


MIGRATIONS: tuple[tuple[str, Migration], ...] = (("001_conversation_tree", m001_conversation_tree),)
