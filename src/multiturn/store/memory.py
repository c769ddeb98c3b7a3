"""The store's memory tables: rolling summaries and the retrieval index (``memory_entries``
with its full-text index: FTS5 BM25 on SQLite, ``ts_rank_cd`` over a tsvector on PostgreSQL)."""

from __future__ import annotations

import re
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..errors import NotFound
from ..ids import now_ms
from ..records import IndexEntry, SummaryRecord
from .base import DEFAULT_TENANT
from .core import StoreCore, conversation_row, item_row_of
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

        def run(conn: Connection) -> SummaryRecord:
            if conversation_id is not None:
                conversation_row(conn, conversation_id, tenant_id)
                if through_item_id is not None:
                    item_row_of(conn, through_item_id, tenant_id, conversation_id)
            elif prefix_hash is not None:
                stored = _summary_by_prefix(conn, prefix_hash, tenant_id)
                if stored is not None:
                    return stored
            conn.execute(summaries.insert().values(**summary_row(record)))
            return record

        return await self._write(run)

    async def summaries(self, conversation_id: str, *, tenant_id: str = DEFAULT_TENANT) -> list[SummaryRecord]:
        """A conversation's summaries, newest first (each branch may have its own)."""
        query = (
            sa.select(summaries)
            .where(summaries.c.conversation_id == conversation_id)
            .order_by(summaries.c.created_at.desc(), summaries.c.id.desc())
        )

        def run(conn: Connection) -> list[SummaryRecord]:
            conversation_row(conn, conversation_id, tenant_id)
            return [summary_record(row) for row in conn.execute(query).mappings()]

        return await self._read(run, long=True)

    async def summary_by_prefix(self, prefix_hash: str, *, tenant_id: str = DEFAULT_TENANT) -> SummaryRecord | None:
        return await self._read(lambda conn: _summary_by_prefix(conn, prefix_hash, tenant_id))

    async def summaries_by_prefix(
        self, prefix_hashes: Sequence[str], *, tenant_id: str = DEFAULT_TENANT
    ) -> list[SummaryRecord]:
        """The stored summaries of any of these prefix hashes (one query, in no set order)."""
        if not prefix_hashes:
            return []
        query = sa.select(summaries).where(
            summaries.c.tenant_id == tenant_id, summaries.c.prefix_hash.in_(list(prefix_hashes))
        )
        return await self._read(lambda conn: [summary_record(row) for row in conn.execute(query).mappings()])

    # -- retrieval index ---------------------------------------------------------------------

    async def index_entries(
        self, conversation_id: str, entries: Sequence[IndexEntry], *, tenant_id: str = DEFAULT_TENANT
    ) -> None:
        """Index items of a conversation (an item indexed again is replaced)."""
        if not entries:
            return
        now = now_ms()

        def run(conn: Connection) -> None:
            conversation_row(conn, conversation_id, tenant_id)
            ids = [entry.item_id for entry in entries]
            owned = conn.execute(
                sa.select(sa.func.count())
                .select_from(items)
                .where(items.c.id.in_(ids), items.c.conversation_id == conversation_id)
            )
            if owned.scalar_one() != len(set(ids)):
                raise NotFound(f"an indexed item is not in conversation {conversation_id!r}")
            conn.execute(memory_entries.delete().where(memory_entries.c.item_id.in_(ids)))
            conn.execute(
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

        await self._write(run, long=len(entries) > _SHORT_INDEX)

    async def search_entries(
        self, conversation_id: str, query: str, *, limit: int = 50, tenant_id: str = DEFAULT_TENANT
    ) -> list[tuple[str, float]]:
        """Full-text search of a conversation's index: ``(item_id, score)``, best first, any
        word of ``query`` matching (BM25 on SQLite, ``ts_rank_cd`` on PostgreSQL; higher is
        better on both, scores are comparable only within one call)."""
        words = list(dict.fromkeys(w.lower() for w in _WORD.findall(query)))
        if not words:
            return []
        if self.dialect == "postgresql":
            sql = sa.text(
                "SELECT item_id, ts_rank_cd(text_tsv, q) AS score "
                "FROM memory_entries, to_tsquery('english', :q) AS q "
                "WHERE conversation_id = :cid AND text_tsv @@ q ORDER BY score DESC, item_id LIMIT :k"
            )
            params = {"q": " | ".join(words), "cid": conversation_id, "k": limit}
        else:
            # The rowid range of the conversation's entries bounds what FTS5 scans: without it every
            # match in the store was joined to its entry (~15 ms with 60,000 entries) to keep this
            # conversation's. Always true of its rows, so the scores and order are the same.
            sql = sa.text(
                "SELECT e.item_id, -bm25(memory_fts) AS score FROM memory_fts "
                "JOIN memory_entries AS e ON e.rowid = memory_fts.rowid "
                "WHERE memory_fts MATCH :q AND e.conversation_id = :cid AND memory_fts.rowid BETWEEN "
                "(SELECT min(rowid) FROM memory_entries WHERE conversation_id = :cid) AND "
                "(SELECT max(rowid) FROM memory_entries WHERE conversation_id = :cid) "
                "ORDER BY bm25(memory_fts), e.item_id LIMIT :k"
            )
            params = {"q": " OR ".join(f'"{w}"' for w in words), "cid": conversation_id, "k": limit}

        def run(conn: Connection) -> list[tuple[str, float]]:
            conversation_row(conn, conversation_id, tenant_id)
            return [(row[0], float(row[1])) for row in conn.execute(sql, params)]

        return await self._read(run, long=True)

    async def entries(
        self, conversation_id: str, *, tenant_id: str = DEFAULT_TENANT, with_vectors: bool = True
    ) -> list[IndexEntry]:
        """Every indexed entry of a conversation (for exact dense scoring: retrieval is scoped
        to one conversation, so a scan is enough)."""
        columns = [memory_entries.c.item_id, memory_entries.c.text, memory_entries.c.vector_model]
        if with_vectors:
            columns.append(memory_entries.c.vector)
        query = (
            sa.select(*columns)
            .where(memory_entries.c.conversation_id == conversation_id)
            .order_by(memory_entries.c.item_id)
        )

        def run(conn: Connection) -> list[IndexEntry]:
            conversation_row(conn, conversation_id, tenant_id)
            return [
                IndexEntry(
                    item_id=row["item_id"],
                    text=row["text"],
                    vector=row["vector"] if with_vectors else None,
                    vector_model=row["vector_model"],
                )
                for row in conn.execute(query).mappings()
            ]

        return await self._read(run, long=True)


def _summary_by_prefix(conn: Connection, prefix_hash: str, tenant_id: str) -> SummaryRecord | None:
    query = sa.select(summaries).where(summaries.c.tenant_id == tenant_id, summaries.c.prefix_hash == prefix_hash)
    row = conn.execute(query).mappings().first()
    return summary_record(row) if row is not None else None


_WORD = re.compile(r"[^\W_]+")
_SHORT_INDEX = 8
"""Entries indexed in a short transaction (on SQLite: on the event loop, like a turn's); more
(a replay, a fork, a whole path) go to the store's writer thread. An answered round is one or two."""
