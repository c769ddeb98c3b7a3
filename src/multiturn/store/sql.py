"""``SQLStore``: the one ``Store`` implementation, for SQLite and PostgreSQL alike.

Queries are SQLAlchemy Core expressions (never formatted strings); dialect differences live in
``dialect.py``. The constructor only prepares an engine: no connection and no DDL happen until
``migrate()`` or the first query.

Concurrency: every write transaction starts by locking the conversation's row (``SELECT ...
FOR NO KEY UPDATE`` on PostgreSQL; on SQLite, ``BEGIN IMMEDIATE`` already holds the database's one
write lock) and reads the head inside that transaction, so appends to one conversation are
serialized across tasks and processes: none is lost, none is written twice. Ids and times of
an appended item are taken under the lock, so a parent is always older than its children.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncConnection

from .. import codec
from ..errors import NotFound, StoreError
from ..ids import IdFactory, new_id, now_ms
from ..records import ConversationRecord, IndexEntry, ItemRecord, NewItem, SummaryRecord
from ..types import Usage
from . import api_keys, dialect, responses, transfer
from .base import DEFAULT_TENANT, HEAD, ApiKeyRecord, Parent
from .migrations import MIGRATIONS
from .schema import conversations, items, memory_entries, schema_migrations, summaries

log = logging.getLogger(__name__)

_UPDATABLE = frozenset({"title", "model", "system_prompt", "metadata", "head_item_id"})


class SQLStore:
    def __init__(self, url: str, *, ids: IdFactory = new_id) -> None:
        self.url = url
        self._ids = ids
        self._engine = dialect.create_engine(url)
        self._writer = dialect.writer(self._engine)
        self._paths = PathCache()

    # -- schema ------------------------------------------------------------------------------

    async def migrate(self) -> list[str]:
        path = dialect.sqlite_file(self._engine.url)
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create the database directory {path.parent}: {exc.strerror}") from exc
        applied: list[str] = []
        try:
            async with self._writer.begin() as conn:
                await conn.run_sync(dialect.lock_for_migration)
                await conn.run_sync(lambda c: schema_migrations.create(c, checkfirst=True))
                done = set((await conn.execute(sa.select(schema_migrations.c.name))).scalars())
                for name, migration in MIGRATIONS:
                    if name in done:
                        continue
                    log.info("applying migration %s", name)
                    await conn.run_sync(migration)
                    await conn.execute(schema_migrations.insert().values(name=name, applied_at=now_ms()))
                    applied.append(name)
        except sa_exc.OperationalError as exc:
            raise StoreError(f"cannot open the database {self._describe()}: {_reason(exc)}") from exc
        except sa_exc.DBAPIError as exc:
            raise StoreError(f"cannot migrate the database {self._describe()}: {_reason(exc)}") from exc
        return applied

    async def applied_migrations(self) -> list[str]:
        async with self._connect() as conn:
            rows = await conn.execute(sa.select(schema_migrations.c.name).order_by(schema_migrations.c.name))
            return list(rows.scalars())

    # -- conversations -----------------------------------------------------------------------

    async def create_conversation(
        self,
        *,
        tenant_id: str = DEFAULT_TENANT,
        title: str | None = None,
        model: str | None = None,
        system_prompt: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> ConversationRecord:
        now = now_ms()
        record = ConversationRecord(
            id=self._ids("conv"),
            tenant_id=tenant_id,
            created_at=now,
            updated_at=now,
            title=title,
            model=model,
            system_prompt=system_prompt,
            head_item_id=None,
            metadata=dict(metadata or {}),
        )
        async with self._begin() as conn:
            await conn.execute(
                conversations.insert().values(
                    id=record.id,
                    tenant_id=tenant_id,
                    created_at=now,
                    updated_at=now,
                    title=title,
                    model=model,
                    system_prompt=system_prompt,
                    head_item_id=None,
                    metadata=record.metadata,
                )
            )
        return record

    async def get_conversation(self, conversation_id: str, *, tenant_id: str = DEFAULT_TENANT) -> ConversationRecord:
        async with self._connect() as conn:
            return await self._conversation(conn, conversation_id, tenant_id)

    async def list_conversations(self, *, tenant_id: str = DEFAULT_TENANT, limit: int = 50) -> list[ConversationRecord]:
        query = (
            sa.select(conversations)
            .where(conversations.c.tenant_id == tenant_id)
            .order_by(conversations.c.updated_at.desc(), conversations.c.id.desc())
            .limit(limit)
        )
        async with self._connect() as conn:
            return [_conversation_record(row) for row in (await conn.execute(query)).mappings()]

    async def update_conversation(
        self, conversation_id: str, *, tenant_id: str = DEFAULT_TENANT, **fields: Any
    ) -> ConversationRecord:
        unknown = set(fields) - _UPDATABLE
        if unknown:
            raise TypeError(f"cannot update {sorted(unknown)}")
        async with self._begin() as conn:
            await self._conversation(conn, conversation_id, tenant_id)
            if fields.get("head_item_id") is not None:
                await self._item(conn, fields["head_item_id"], tenant_id, conversation_id)
            await conn.execute(
                conversations.update()
                .where(conversations.c.id == conversation_id)
                .values(**fields, updated_at=now_ms())
            )
            return await self._conversation(conn, conversation_id, tenant_id)

    async def delete_conversation(self, conversation_id: str, *, tenant_id: str = DEFAULT_TENANT) -> None:
        """Delete the conversation; foreign keys cascade to its items, summaries and index
        entries, and the full-text rows follow (SQLite: triggers, then the FTS5 segments are
        merged so no deleted word stays in them; PostgreSQL: a generated column of the row).
        Inline media live in the items' content, so they go with the items."""
        async with self._begin() as conn:
            await self._conversation(conn, conversation_id, tenant_id, lock=True)
            await conn.execute(items.delete().where(items.c.conversation_id == conversation_id))
            await conn.execute(conversations.delete().where(conversations.c.id == conversation_id))
            await conn.run_sync(dialect.purge_fulltext)

    async def prune(self, older_than_ms: int, *, tenant_id: str | None = DEFAULT_TENANT) -> list[str]:
        """Delete the conversations with no activity since ``older_than_ms`` (of one tenant, or
        of all with ``None``), as ``delete_conversation`` does; returns their ids. A conversation
        written to while this runs is kept (the condition is checked by the delete itself)."""
        stale = conversations.c.updated_at < older_than_ms
        if tenant_id is not None:
            stale = sa.and_(stale, conversations.c.tenant_id == tenant_id)
        async with self._begin() as conn:
            deleted = sorted(
                (await conn.execute(conversations.delete().where(stale).returning(conversations.c.id))).scalars()
            )
            if deleted:
                await conn.run_sync(dialect.purge_fulltext)
            return deleted

    async def import_conversation(
        self, conversation: ConversationRecord, tree: Sequence[ItemRecord], *, tenant_id: str = DEFAULT_TENANT
    ) -> ConversationRecord:
        record, copies = transfer.renumber(conversation, tree, tenant_id=tenant_id, ids=self._ids)
        async with self._begin() as conn:
            await conn.execute(
                conversations.insert().values(
                    id=record.id,
                    tenant_id=record.tenant_id,
                    created_at=record.created_at,
                    updated_at=record.updated_at,
                    title=record.title,
                    model=record.model,
                    system_prompt=record.system_prompt,
                    head_item_id=record.head_item_id,
                    metadata=record.metadata,
                )
            )
            for copy in copies:  # one by one, in order: a parent is written before its children
                await conn.execute(items.insert().values(**_item_row(copy)))
        return record

    # -- items -------------------------------------------------------------------------------

    async def append(
        self,
        conversation_id: str,
        parent_id: Parent,
        item: NewItem,
        *,
        tenant_id: str = DEFAULT_TENANT,
        move_head: bool = True,
    ) -> ItemRecord:
        async with self._begin() as conn:
            conversation = await self._conversation(conn, conversation_id, tenant_id, lock=True)
            parent = conversation.head_item_id if parent_id is HEAD else parent_id
            if parent is not None and parent_id is not HEAD:
                await self._item(conn, parent, tenant_id, conversation_id)
            record = ItemRecord(
                id=item.id or self._ids("item"),
                conversation_id=conversation_id,
                parent_id=parent,
                role=item.role,
                content=item.content,
                status=item.status,
                created_at=now_ms(),
                reasoning=item.reasoning,
                tool_calls=item.tool_calls,
                tool_call_id=item.tool_call_id,
                model=item.model,
                usage=item.usage,
                finish_reason=item.finish_reason,
                token_count=item.token_count,
                context_report=item.context_report,
            )
            await conn.execute(items.insert().values(**_item_row(record)))
            values: dict[str, Any] = {"updated_at": record.created_at}
            if move_head:
                values["head_item_id"] = record.id
            await conn.execute(conversations.update().where(conversations.c.id == conversation_id).values(**values))
        return record

    async def get_item(self, item_id: str, *, tenant_id: str = DEFAULT_TENANT) -> ItemRecord:
        async with self._connect() as conn:
            return await self._item(conn, item_id, tenant_id)

    async def path(
        self, conversation_id: str, leaf_id: str | None, *, tenant_id: str = DEFAULT_TENANT
    ) -> list[ItemRecord]:
        """The items from the root down to ``leaf_id``.

        Items are never rewritten and a parent's deletion cascades to its children, so while
        the leaf exists its path is unchanged: paths are cached per process (bounded), and a
        read costs one indexed lookup of the leaf; a leaf whose parent's path is cached (the
        next turn of a conversation) costs one row.
        """
        if leaf_id is None:
            return []
        leaf = (
            sa.select(items.c.parent_id)
            .join(conversations, conversations.c.id == items.c.conversation_id)
            .where(items.c.id == leaf_id, items.c.conversation_id == conversation_id)
            .where(conversations.c.tenant_id == tenant_id)
        )
        async with self._connect() as conn:
            found = (await conn.execute(leaf)).first()
            if found is None:
                raise NotFound(f"item {leaf_id!r} not found in conversation {conversation_id!r}")
            cached = self._paths.get(leaf_id)
            if cached is None:
                above = self._paths.get(found.parent_id) if found.parent_id is not None else ()
                if above is not None:
                    cached = (*above, await self._item(conn, leaf_id, tenant_id, conversation_id))
                else:
                    cached = tuple(await self._walk(conn, leaf_id))
                self._paths.put(leaf_id, cached)
        return list(cached)

    async def _walk(self, conn: AsyncConnection, leaf_id: str) -> list[ItemRecord]:
        walk = (
            sa.select(items.c.id, items.c.parent_id, sa.literal(0).label("depth"))
            .where(items.c.id == leaf_id)
            .cte("walk", recursive=True)
        )
        walk = walk.union_all(
            sa.select(items.c.id, items.c.parent_id, (walk.c.depth + 1).label("depth")).join(
                walk, items.c.id == walk.c.parent_id
            )
        )
        query = sa.select(items).join(walk, items.c.id == walk.c.id).order_by(walk.c.depth.desc())
        return [_item_record(row) for row in (await conn.execute(query)).mappings()]

    async def items(self, conversation_id: str, *, tenant_id: str = DEFAULT_TENANT) -> list[ItemRecord]:
        async with self._connect() as conn:
            await self._conversation(conn, conversation_id, tenant_id)
            query = (
                sa.select(items)
                .where(items.c.conversation_id == conversation_id)
                .order_by(items.c.created_at, items.c.id)
            )
            return [_item_record(row) for row in (await conn.execute(query)).mappings()]

    async def children(
        self, conversation_id: str, parent_id: str | None, *, tenant_id: str = DEFAULT_TENANT
    ) -> Sequence[ItemRecord]:
        parent = items.c.parent_id.is_(None) if parent_id is None else items.c.parent_id == parent_id
        async with self._connect() as conn:
            await self._conversation(conn, conversation_id, tenant_id)
            query = (
                sa.select(items)
                .where(items.c.conversation_id == conversation_id, parent)
                .order_by(items.c.created_at, items.c.id)
            )
            return [_item_record(row) for row in (await conn.execute(query)).mappings()]

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
            await conn.execute(summaries.insert().values(**_summary_row(record)))
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
            return [_summary_record(row) for row in (await conn.execute(query)).mappings()]

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
            return [_summary_record(row) for row in (await conn.execute(query)).mappings()]

    async def _summary_by_prefix(self, conn: AsyncConnection, prefix_hash: str, tenant_id: str) -> SummaryRecord | None:
        query = sa.select(summaries).where(summaries.c.tenant_id == tenant_id, summaries.c.prefix_hash == prefix_hash)
        row = (await conn.execute(query)).mappings().first()
        return _summary_record(row) if row is not None else None

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

    # -- API keys ----------------------------------------------------------------------------

    async def create_api_key(
        self, *, tenant_id: str = DEFAULT_TENANT, name: str | None = None, policy: str | None = None
    ) -> tuple[ApiKeyRecord, str]:
        key = api_keys.new_key()
        record = ApiKeyRecord(
            id=self._ids("key"),
            tenant_id=tenant_id,
            name=name,
            prefix=key[: api_keys.SHOWN_CHARS],
            key_hash=api_keys.hash_key(key),
            policy=policy,
            created_at=now_ms(),
        )
        async with self._begin() as conn:
            await api_keys.insert(conn, record)
        return record, key

    async def list_api_keys(self, *, tenant_id: str | None = None) -> list[ApiKeyRecord]:
        async with self._connect() as conn:
            return await api_keys.select(conn, tenant_id)

    async def revoke_api_key(self, key_id: str, *, tenant_id: str | None = None) -> ApiKeyRecord:
        async with self._begin() as conn:
            return await api_keys.revoke(conn, key_id, tenant_id, now_ms())

    async def api_key_by_hash(self, key_hash: str) -> ApiKeyRecord | None:
        async with self._connect() as conn:
            return await api_keys.by_hash(conn, key_hash)

    async def has_api_keys(self) -> bool:
        async with self._connect() as conn:
            return await api_keys.any_key(conn)

    async def close(self) -> None:
        await self._engine.dispose()

    # -- internals ---------------------------------------------------------------------------

    def _describe(self) -> str:
        return self._engine.url.render_as_string(hide_password=True).replace("+aiosqlite", "").replace("+psycopg", "")

    def _connect(self) -> _Guard:
        return _Guard(self, begin=False)

    def _begin(self) -> _Guard:
        return _Guard(self, begin=True)

    async def _conversation(
        self, conn: AsyncConnection, conversation_id: str, tenant_id: str, *, lock: bool = False
    ) -> ConversationRecord:
        """The conversation's row; ``lock`` holds it until the transaction ends (PostgreSQL's
        ``FOR NO KEY UPDATE``: writers of the row wait, inserts that only reference it through a
        foreign key do not; SQLite's ``BEGIN IMMEDIATE`` has already locked the database)."""
        query = sa.select(conversations).where(
            conversations.c.id == conversation_id, conversations.c.tenant_id == tenant_id
        )
        if lock:
            query = query.with_for_update(key_share=True)
        row = (await conn.execute(query)).mappings().first()
        if row is None:
            raise NotFound(f"conversation {conversation_id!r} not found")
        return _conversation_record(row)

    async def _item(
        self, conn: AsyncConnection, item_id: str, tenant_id: str, conversation_id: str | None = None
    ) -> ItemRecord:
        query = (
            sa.select(items)
            .join(conversations, conversations.c.id == items.c.conversation_id)
            .where(items.c.id == item_id, conversations.c.tenant_id == tenant_id)
        )
        if conversation_id is not None:
            query = query.where(items.c.conversation_id == conversation_id)
        row = (await conn.execute(query)).mappings().first()
        if row is None:
            where = f" in conversation {conversation_id!r}" if conversation_id else ""
            raise NotFound(f"item {item_id!r} not found{where}")
        return _item_record(row)

    # -- responses (the stateful API: /v1/responses, /v1/conversations) --------------------------

    async def create_response(self, record: responses.ResponseRecord) -> None:
        async with self._begin() as conn:
            await self._conversation(conn, record.conversation_id, record.tenant_id)
            await responses.insert(conn, record)

    async def finish_response(
        self,
        response_id: str,
        *,
        tenant_id: str = DEFAULT_TENANT,
        status: responses.ResponseStatus,
        output_item_id: str | None,
        usage: Usage | None,
        error: dict[str, Any] | None = None,
    ) -> None:
        values = {"status": status, "output_item_id": output_item_id, "usage": usage, "error": error}
        async with self._begin() as conn:
            await responses.finish(conn, response_id, tenant_id, {**values, "completed_at": now_ms()})

    async def get_response(self, response_id: str, *, tenant_id: str = DEFAULT_TENANT) -> responses.ResponseRecord:
        async with self._connect() as conn:
            return await responses.select(conn, response_id, tenant_id)

    async def delete_response(self, response_id: str, *, tenant_id: str = DEFAULT_TENANT) -> None:
        async with self._begin() as conn:
            await responses.delete(conn, response_id, tenant_id)

    async def delete_item(
        self, conversation_id: str, item_id: str, *, tenant_id: str = DEFAULT_TENANT
    ) -> ConversationRecord:
        async with self._begin() as conn:
            conversation = await self._conversation(conn, conversation_id, tenant_id, lock=True)
            head = await responses.delete_subtree(conn, conversation, item_id)
            await conn.execute(
                conversations.update()
                .where(conversations.c.id == conversation_id)
                .values(head_item_id=head, updated_at=now_ms())
            )
            return await self._conversation(conn, conversation_id, tenant_id)

    async def conversations_page(
        self, *, tenant_id: str = DEFAULT_TENANT, after: str | None = None, limit: int = 20, descending: bool = True
    ) -> list[ConversationRecord]:
        async with self._connect() as conn:
            rows = await conn.execute(responses.page_query(tenant_id, after, limit, descending))
            return [_conversation_record(row) for row in rows.mappings()]


class PathCache:
    """Paths by leaf id, least recently used out first. Paths share their item records, so the
    bound (in paths) costs a pointer per item per path, not a copy of the items."""

    def __init__(self, size: int = 256) -> None:
        self._size = size
        self._paths: OrderedDict[str, tuple[ItemRecord, ...]] = OrderedDict()

    def get(self, leaf_id: str) -> tuple[ItemRecord, ...] | None:
        path = self._paths.get(leaf_id)
        if path is not None:
            self._paths.move_to_end(leaf_id)
        return path

    def put(self, leaf_id: str, path: tuple[ItemRecord, ...]) -> None:
        self._paths[leaf_id] = path
        self._paths.move_to_end(leaf_id)
        while len(self._paths) > self._size:
            self._paths.popitem(last=False)


class _Guard:
    """A connection (optionally in a transaction) whose driver errors become ``StoreError``."""

    def __init__(self, store: SQLStore, *, begin: bool) -> None:
        self._store = store
        self._begin = begin
        self._cm: Any = None

    async def __aenter__(self) -> AsyncConnection:
        self._cm = self._store._writer.begin() if self._begin else self._store._engine.connect()
        try:
            conn: AsyncConnection = await self._cm.__aenter__()
        except sa_exc.DBAPIError as exc:
            raise StoreError(f"cannot open the database {self._store._describe()}: {_reason(exc)}") from exc
        return conn

    async def __aexit__(self, *exc_info: Any) -> None:
        try:
            await self._cm.__aexit__(*exc_info)
        except sa_exc.DBAPIError as exc:
            raise StoreError(f"database error on {self._store._describe()}: {_reason(exc)}") from exc
        if isinstance(exc_info[1], sa_exc.DBAPIError):
            raise StoreError(f"database error on {self._store._describe()}: {_reason(exc_info[1])}") from exc_info[1]


_WORD = re.compile(r"[^\W_]+")


def _summary_row(record: SummaryRecord) -> dict[str, Any]:
    return {f.name: getattr(record, f.name) for f in dataclasses.fields(record)}


def _summary_record(row: sa.RowMapping) -> SummaryRecord:
    return SummaryRecord(**{f.name: row[f.name] for f in dataclasses.fields(SummaryRecord)})


def _reason(exc: sa_exc.DBAPIError) -> str:
    return str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc)


def _conversation_record(row: sa.RowMapping) -> ConversationRecord:
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
    )


def _item_row(record: ItemRecord) -> dict[str, Any]:
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
        "context_report": record.context_report,
        "created_at": record.created_at,
    }


def _item_record(row: sa.RowMapping) -> ItemRecord:
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
        context_report=row["context_report"],
    )
