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


def m002_memory(conn: Connection) -> None:
    """Rolling summaries and the retrieval index (text, vector, and a full-text index of the
    text: FTS5 kept in step by triggers on SQLite, a generated tsvector with GIN on PostgreSQL)."""
    md = sa.MetaData()
    sa.Table("conversations", md, sa.Column("id", sa.String(64), primary_key=True))
    sa.Table("items", md, sa.Column("id", sa.String(64), primary_key=True))
    sa.Table(
        "summaries",
        md,
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("conversation_id", sa.String(64), sa.ForeignKey("conversations.id", ondelete="CASCADE")),
        sa.Column("through_item_id", sa.String(64), sa.ForeignKey("items.id", ondelete="CASCADE")),
        sa.Column("prefix_hash", sa.String(64)),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("token_count", sa.Integer),
        sa.Column("model", sa.Text),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Index("ix_summaries_conversation", "conversation_id", "created_at"),
        sa.Index("ux_summaries_prefix", "tenant_id", "prefix_hash", unique=True),
    )
    sa.Table(
        "memory_entries",
        md,
        sa.Column("item_id", sa.String(64), sa.ForeignKey("items.id", ondelete="CASCADE"), primary_key=True),
        sa.Column(
            "conversation_id",
            sa.String(64),
            sa.ForeignKey("conversations.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("vector", sa.LargeBinary),
        sa.Column("vector_model", sa.String(128)),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Index("ix_memory_entries_conversation", "conversation_id"),
    )
    md.create_all(conn)
    if conn.dialect.name == "sqlite":
        # External-content FTS5 over memory_entries' rowid; triggers keep it in step, including
        # deletions by foreign-key cascade (which fire delete triggers in SQLite).
        conn.exec_driver_sql(
            "CREATE VIRTUAL TABLE memory_fts USING fts5("
            "text, content='memory_entries', content_rowid='rowid', tokenize='porter unicode61')"
        )
        conn.exec_driver_sql(
            "CREATE TRIGGER memory_entries_ai AFTER INSERT ON memory_entries BEGIN "
            "INSERT INTO memory_fts(rowid, text) VALUES (new.rowid, new.text); END"
        )
        conn.exec_driver_sql(
            "CREATE TRIGGER memory_entries_ad AFTER DELETE ON memory_entries BEGIN "
            "INSERT INTO memory_fts(memory_fts, rowid, text) VALUES ('delete', old.rowid, old.text); END"
        )
        conn.exec_driver_sql(
            "CREATE TRIGGER memory_entries_au AFTER UPDATE ON memory_entries BEGIN "
            "INSERT INTO memory_fts(memory_fts, rowid, text) VALUES ('delete', old.rowid, old.text); "
            "INSERT INTO memory_fts(rowid, text) VALUES (new.rowid, new.text); END"
        )
    elif conn.dialect.name == "postgresql":
        conn.exec_driver_sql(
            "ALTER TABLE memory_entries ADD COLUMN text_tsv tsvector "
            "GENERATED ALWAYS AS (to_tsvector('english', text)) STORED"
        )
        conn.exec_driver_sql("CREATE INDEX ix_memory_entries_tsv ON memory_entries USING GIN (text_tsv)")


def m003_api_keys(conn: Connection) -> None:
    """Gateway API keys, stored as the SHA-256 of the key, with the tenant they act for."""
    md = sa.MetaData()
    sa.Table(
        "api_keys",
        md,
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("name", sa.Text),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("policy", sa.String(32)),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("revoked_at", sa.BigInteger),
        sa.Index("ux_api_keys_hash", "key_hash", unique=True),
        sa.Index("ix_api_keys_tenant", "tenant_id", "created_at"),
    )
    md.create_all(conn)


def m004_responses(conn: Connection) -> None:
    """Responses API objects. Deleting a conversation, or the output item, deletes them."""
    md = sa.MetaData()
    sa.Table("conversations", md, sa.Column("id", sa.String(64), primary_key=True))
    sa.Table("items", md, sa.Column("id", sa.String(64), primary_key=True))
    sa.Table(
        "responses",
        md,
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column(
            "conversation_id",
            sa.String(64),
            sa.ForeignKey("conversations.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("previous_response_id", sa.String(64)),
        sa.Column("input_item_ids", _json(), nullable=False),
        sa.Column("output_item_id", sa.String(64), sa.ForeignKey("items.id", ondelete="CASCADE")),
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("usage", _json()),
        sa.Column("instructions", sa.Text),
        sa.Column("metadata", _json(), nullable=False),
        sa.Column("params", _json(), nullable=False),
        sa.Column("error", _json()),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("completed_at", sa.BigInteger),
        sa.Index("ix_responses_conversation", "conversation_id"),
        sa.Index("ix_responses_output_item", "output_item_id"),
    )
    md.create_all(conn)


def m005_turns(conn: Connection) -> None:
    """Open turns: their queue order within a conversation, their owner process, their inputs
    until the turn ends. Deleting the conversation, or the response a turn records, deletes it."""
    md = sa.MetaData()
    sa.Table("conversations", md, sa.Column("id", sa.String(64), primary_key=True))
    sa.Table("responses", md, sa.Column("id", sa.String(64), primary_key=True))
    sa.Table(
        "turns",
        md,
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column(
            "conversation_id",
            sa.String(64),
            sa.ForeignKey("conversations.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("waits", sa.Boolean, nullable=False),
        sa.Column("owner", sa.String(160), nullable=False),
        sa.Column("parent_id", sa.String(64)),
        sa.Column("inputs", _json(), nullable=False),
        sa.Column("answer_item_id", sa.String(64)),
        sa.Column("response_id", sa.String(64), sa.ForeignKey("responses.id", ondelete="CASCADE")),
        sa.Column("model", sa.Text),
        sa.Column("draft", sa.Text),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("started_at", sa.BigInteger),
        sa.CheckConstraint("status IN ('queued', 'generating')", name="ck_turns_status"),
        sa.Index("ux_turns_conversation_seq", "conversation_id", "seq", unique=True),
        sa.Index("ix_turns_owner", "owner"),
        sa.Index("ix_turns_response", "response_id"),
    )
    md.create_all(conn)


def m006_erasures(conn: Connection) -> None:
    """How many erasures removed items from a conversation's tree (``erasure.py``): a process
    that cached a path before the last one reads it again."""
    conn.execute(sa.text("ALTER TABLE conversations ADD COLUMN erasures INTEGER NOT NULL DEFAULT 0"))


def m007_uploads(conn: Connection) -> None:
    """Upload grants and uploaded files (the DashScope SDK's local files)."""
    md = sa.MetaData()
    sa.Table(
        "upload_grants",
        md,
        sa.Column("policy_hash", sa.String(64), primary_key=True),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("upload_dir", sa.String(128), nullable=False),
        sa.Column("expires_at", sa.BigInteger, nullable=False),
        sa.Index("ix_upload_grants_expires", "expires_at"),
    )
    sa.Table(
        "uploads",
        md,
        sa.Column("key", sa.String(512), primary_key=True),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("content_type", sa.String(128), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("expires_at", sa.BigInteger, nullable=False),
        sa.Index("ix_uploads_expires", "expires_at"),
    )
    md.create_all(conn)


def m008_turn_trips(conn: Connection) -> None:
    """PostgreSQL (``turn_trips.py``): the sequence a turn's ``seq`` is taken from, past every
    open turn's; ``turns_besides``, whether a conversation has an open turn besides one, and
    ``turns_ahead``, its last open turn: each read with a snapshot of its own (``VOLATILE``).
    SQLite goes on taking its conversation's largest ``seq`` plus one."""
    if conn.dialect.name != "postgresql":
        return
    conn.execute(sa.schema.CreateSequence(sa.Sequence("turns_seq")))
    seq = sa.table("turns", sa.column("seq")).c.seq
    next_seq = sa.select(sa.func.coalesce(sa.func.max(seq), 0) + 1).scalar_subquery()
    conn.execute(sa.select(sa.func.setval("turns_seq", next_seq, False)))
    conn.execute(
        sa.text(
            "CREATE FUNCTION turns_besides(conversation VARCHAR, turn VARCHAR) RETURNS BOOLEAN "
            "LANGUAGE plpgsql VOLATILE AS $$ BEGIN RETURN EXISTS "
            "(SELECT 1 FROM turns WHERE conversation_id = conversation AND id <> turn); END $$"
        )
    )
    conn.execute(
        sa.text(
            "CREATE FUNCTION turns_ahead(conversation VARCHAR) RETURNS TABLE (id VARCHAR, owner VARCHAR) "
            "LANGUAGE plpgsql VOLATILE AS $$ BEGIN RETURN QUERY SELECT t.id::VARCHAR, t.owner::VARCHAR "
            "FROM turns AS t WHERE t.conversation_id = conversation ORDER BY t.seq DESC LIMIT 1; END $$"
        )
    )


MIGRATIONS: tuple[tuple[str, Migration], ...] = (
    ("001_conversation_tree", m001_conversation_tree),
    ("002_memory", m002_memory),
    ("003_api_keys", m003_api_keys),
    ("004_responses", m004_responses),
    ("005_turns", m005_turns),
    ("006_erasures", m006_erasures),
    ("007_uploads", m007_uploads),
    ("008_turn_trips", m008_turn_trips),
)
