"""The store's memory tables: rolling summaries and the retrieval index (``memory_entries``
with its full-text index: FTS5 BM25 on SQLite, ``ts_rank_cd`` over a tsvector on PostgreSQL)."""

from __future__ import annotations

import re
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from ..errors import NotFound
from ..ids import now_ms
from ..records import IndexEntry, SummaryRecord
from .base import DEFAULT_TENANT
from .core import StoreCore
from .rows import summary_record, summary_row
from .schema import items, memory_entries, summaries


class MemoryTables(StoreCore):
    # -- summaries ---------------------------------------------------------------------------

    async def add_summary(
        self,
        *,
        text: str,
        tenant_id: str = DEFAULT_TENANT,
        conversation_id: str | None = None,
        through_item_id: str | None = None,
        prefix_hash: str | None = None,
        token_count: int | None = None,
        model: str | None = None,
    ) -> SummaryRecord:
        """Store a summary: of a conversation's path through ``through_item_id``, or (no
        conversation) of a stateless request's prefix, keyed by ``prefix_hash``. Storing a
        prefix hash already stored returns the stored summary unchanged."""
        if (conversation_id is None or through_item_id is None or prefix_hash is not None) and (
            conversation_id is not None or through_item_id is not None or prefix_hash is None
        ):
            raise TypeError("a summary belongs to a conversation (through_item_id) or to a prefix_hash")
        record = SummaryRecord(
            id=self._ids("sum"),
            tenant_id=tenant_id,
            conversation_id=conversation_id,
            through_item_id=through_item_id,
            prefix_hash=prefix_hash,
            text=text,
            token_count=token_count,
            model=model,
            created_at=now_ms(),
        )
        async with self._begin() as conn:
            if conversation_id is not None:
                await self._conversation(conn, conversation_id, tenant_id)
                if through_item_id is not None:
                    await self._item(conn, through_item_id, tenant_id, conversation_id)
            elif prefix_hash is not None:
                stored = await self._summary_by_prefix(conn, prefix_hash, tenant_id)
                if stored is not None:
                    return stored
            await conn.execute(summaries.insert().values(**summary_row(record)))
        return record

    async def summaries(self, conversation_id: str, *, tenant_id: str = DEFAULT_TENANT) -> list[SummaryRecord]:
        """A conversation's summaries, newest first (each branch may have its own)."""
        async with self._connect() as conn:
            await self._conversation(conn, conversation_id, tenant_id)
            query = (
                sa.select(summaries)
                .where(summaries.c.conversation_id == conversation_id)
                .order_by(summaries.c.created_at.desc(), summaries.c.id.desc())
            )
            return [summary_record(row) for row in (await conn.execute(query)).mappings()]

    async def summary_by_prefix(self, prefix_hash: str, *, tenant_id: str = DEFAULT_TENANT) -> SummaryRecord | None:
        async with self._connect() as conn:
            return await self._summary_by_prefix(conn, prefix_hash, tenant_id)

    async def summaries_by_prefix(
        self, prefix_hashes: Sequence[str], *, tenant_id: str = DEFAULT_TENANT
    ) -> list[SummaryRecord]:
        """The stored summaries of any of these prefix hashes (one query, in no set order)."""
        if not prefix_hashes:
            return []
        query = sa.select(summaries).where(
            summaries.c.tenant_id == tenant_id, summaries.c.prefix_hash.in_(list(prefix_hashes))
        )
        async with self._connect() as conn:
            return [summary_record(row) for row in (await conn.execute(query)).mappings()]

    async def _summary_by_prefix(self, conn: AsyncConnection, prefix_hash: str, tenant_id: str) -> SummaryRecord | None:
        query = sa.select(summaries).where(summaries.c.tenant_id == tenant_id, summaries.c.prefix_hash == prefix_hash)
        row = (await conn.execute(query)).mappings().first()
        return summary_record(row) if row is not None else None

    # -- retrieval index ---------------------------------------------------------------------

    async def index_entries(
        self, conversation_id: str, entries: Sequence[IndexEntry], *, tenant_id: str = DEFAULT_TENANT
    ) -> None:
        """Index items of a conversation (an item indexed again is replaced)."""
        if not entries:
            return
        now = now_ms()
        async with self._begin() as conn:
            await self._conversation(conn, conversation_id, tenant_id)
            ids = [entry.item_id for entry in entries]
            owned = await conn.execute(
                sa.select(sa.func.count())
                .select_from(items)
                .where(items.c.id.in_(ids), items.c.conversation_id == conversation_id)
            )
            if owned.scalar_one() != len(set(ids)):
                raise NotFound(f"an indexed item is not in conversation {conversation_id!r}")
            await conn.execute(memory_entries.delete().where(memory_entries.c.item_id.in_(ids)))
            await conn.execute(
                memory_entries.insert(),
                [
                    {
                        "item_id": entry.item_id,
                        "conversation_id": conversation_id,
                        "text": entry.text,
                        "vector": entry.vector,
                        "vector_model": entry.vector_model,
                        "created_at": now,
                    }
                    for entry in entries
                ],
            )

    async def search_entries(
        self, conversation_id: str, query: str, *, limit: int = 50, tenant_id: str = DEFAULT_TENANT
    ) -> list[tuple[str, float]]:
        """Full-text search of a conversation's index: ``(item_id, score)``, best first, any
        word of ``query`` matching (BM25 on SQLite, ``ts_rank_cd`` on PostgreSQL; higher is
        better on both, scores are comparable only within one call)."""
        words = list(dict.fromkeys(w.lower() for w in _WORD.findall(query)))
        if not words:
            return []
        async with self._connect() as conn:
            await self._conversation(conn, conversation_id, tenant_id)
            if conn.dialect.name == "postgresql":
                sql = sa.text(
                    "SELECT item_id, ts_rank_cd(text_tsv, q) AS score "
                    "FROM memory_entries, to_tsquery('english', :q) AS q "
                    "WHERE conversation_id = :cid AND text_tsv @@ q ORDER BY score DESC, item_id LIMIT :k"
                )
                params = {"q": " | ".join(words), "cid": conversation_id, "k": limit}
            else:
                sql = sa.text(
                    "SELECT e.item_id, -bm25(memory_fts) AS score FROM memory_fts "
                    "JOIN memory_entries AS e ON e.rowid = memory_fts.rowid "
                    "WHERE memory_fts MATCH :q AND e.conversation_id = :cid "
                    "ORDER BY bm25(memory_fts), e.item_id LIMIT :k"
                )
                params = {"q": " OR ".join(f'"{w}"' for w in words), "cid": conversation_id, "k": limit}
            rows = await conn.execute(sql, params)
            return [(row[0], float(row[1])) for row in rows]

    async def entries(
        self, conversation_id: str, *, tenant_id: str = DEFAULT_TENANT, with_vectors: bool = True
    ) -> list[IndexEntry]:
        """Every indexed entry of a conversation (for exact dense scoring: retrieval is scoped
        to one conversation, so a scan is enough)."""
        columns = [memory_entries.c.item_id, memory_entries.c.text, memory_entries.c.vector_model]
        if with_vectors:
            columns.append(memory_entries.c.vector)
        async with self._connect() as conn:
            await self._conversation(conn, conversation_id, tenant_id)
            query = (
                sa.select(*columns)
                .where(memory_entries.c.conversation_id == conversation_id)
                .order_by(memory_entries.c.item_id)
            )
            return [
                IndexEntry(
                    item_id=row["item_id"],
                    text=row["text"],
                    vector=row["vector"] if with_vectors else None,
                    vector_model=row["vector_model"],
                )
                for row in (await conn.execute(query)).mappings()
            ]


_WORD = re.compile(r"[^\W_]+")
