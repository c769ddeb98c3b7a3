"""The current schema as SQLAlchemy Core tables, used to build every query.

Migrations (``migrations.py``) create and change these tables; this module only describes the
result. Times are integer milliseconds since the epoch; JSON columns hold ``codec`` shapes.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

metadata = sa.MetaData()

JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

conversations = sa.Table(
    "conversations",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
    sa.Column("title", sa.Text),
    sa.Column("model", sa.Text),
    sa.Column("system_prompt", sa.Text),
    sa.Column("head_item_id", sa.String(64)),
    sa.Column("metadata", JSONType, nullable=False),
    sa.Column("erasures", sa.Integer, nullable=False, server_default="0"),
)
"""``erasures`` counts the deletions that removed items from the conversation's tree (a paths
cached before the last one may hold items no longer in it: ``SQLStore`` drops them)."""

items = sa.Table(
    "items",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column(
        "conversation_id",
        sa.String(64),
        sa.ForeignKey("conversations.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("parent_id", sa.String(64), sa.ForeignKey("items.id", ondelete="CASCADE")),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("content", JSONType, nullable=False),
    sa.Column("reasoning", sa.Text),
    sa.Column("tool_calls", JSONType),
    sa.Column("tool_call_id", sa.String(128)),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("model", sa.Text),
    sa.Column("usage", JSONType),
    sa.Column("finish_reason", sa.String(32)),
    sa.Column("token_count", sa.Integer),
    sa.Column("context_report", JSONType),
    sa.Column("created_at", sa.BigInteger, nullable=False),
)

summaries = sa.Table(
    "summaries",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("conversation_id", sa.String(64), sa.ForeignKey("conversations.id", ondelete="CASCADE")),
    sa.Column("through_item_id", sa.String(64), sa.ForeignKey("items.id", ondelete="CASCADE")),
    sa.Column("prefix_hash", sa.String(64)),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("token_count", sa.Integer),
    sa.Column("model", sa.Text),
    sa.Column("created_at", sa.BigInteger, nullable=False),
)

memory_entries = sa.Table(
    "memory_entries",
    metadata,
    sa.Column("item_id", sa.String(64), sa.ForeignKey("items.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("conversation_id", sa.String(64), sa.ForeignKey("conversations.id", ondelete="CASCADE"), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("vector", sa.LargeBinary),
    sa.Column("vector_model", sa.String(128)),
    sa.Column("created_at", sa.BigInteger, nullable=False),
)
"""The retrieval index's rows. Their full-text index is dialect-specific and not described
here: ``memory_fts`` (FTS5, SQLite) or the generated ``text_tsv`` column (PostgreSQL)."""

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("name", sa.Text),
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("prefix", sa.String(16), nullable=False),
    sa.Column("policy", sa.String(32)),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("revoked_at", sa.BigInteger),
)
"""Gateway keys: the SHA-256 of each key (hex), never the key."""

responses = sa.Table(
    "responses",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("conversation_id", sa.String(64), sa.ForeignKey("conversations.id", ondelete="CASCADE"), nullable=False),
    sa.Column("previous_response_id", sa.String(64)),
    sa.Column("input_item_ids", JSONType, nullable=False),
    sa.Column("output_item_id", sa.String(64), sa.ForeignKey("items.id", ondelete="CASCADE")),
    sa.Column("model", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("usage", JSONType),
    sa.Column("instructions", sa.Text),
    sa.Column("metadata", JSONType, nullable=False),
    sa.Column("params", JSONType, nullable=False),
    sa.Column("error", JSONType),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("completed_at", sa.BigInteger),
)
"""Responses API objects: one turn of a conversation (its input items, its output item), as
``/v1/responses`` made it. The items themselves live in ``items``."""

turns = sa.Table(
    "turns",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("conversation_id", sa.String(64), sa.ForeignKey("conversations.id", ondelete="CASCADE"), nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("waits", sa.Boolean, nullable=False),
    sa.Column("owner", sa.String(160), nullable=False),
    sa.Column("parent_id", sa.String(64)),
    sa.Column("inputs", JSONType, nullable=False),
    sa.Column("answer_item_id", sa.String(64)),
    sa.Column("response_id", sa.String(64), sa.ForeignKey("responses.id", ondelete="CASCADE")),
    sa.Column("model", sa.Text),
    sa.Column("draft", sa.Text),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("started_at", sa.BigInteger),
)
"""Open turns: a row exists from a turn's arrival to its end and is deleted in the transaction
that stores the turn's outcome. ``seq`` is the arrival order within the conversation;
``status`` is ``queued`` (waiting for the turns before it) or ``generating``; ``owner`` names
the process running it (``store/liveness.py``); ``parent_id`` is where its items go once it has
started (the head it found, or the parent it asked for); ``inputs`` are its input items (ids
chosen, not yet in ``items``), written there with the answer when the turn ends, or by the
recovery of a dead owner's turn with ``draft``, the answer so far."""

upload_grants = sa.Table(
    "upload_grants",
    metadata,
    sa.Column("policy_hash", sa.String(64), primary_key=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("upload_dir", sa.String(128), nullable=False),
    sa.Column("expires_at", sa.BigInteger, nullable=False),
)
"""Permissions to upload (DashScope's ``getPolicy``): the SHA-256 of the policy handed out, whose
holder may upload files under ``upload_dir`` until ``expires_at``."""

uploads = sa.Table(
    "uploads",
    metadata,
    sa.Column("key", sa.String(512), primary_key=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("content_type", sa.String(128), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("data", sa.LargeBinary, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("expires_at", sa.BigInteger, nullable=False),
)
"""Files a client uploaded for its requests (the DashScope SDK's local files), by their
``oss://`` key: a request naming the key gets the file inline; they expire."""

schema_migrations = sa.Table(
    "schema_migrations",
    metadata,
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("applied_at", sa.BigInteger, nullable=False),
)
