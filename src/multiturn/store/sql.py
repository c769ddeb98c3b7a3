"""``SQLStore``: the one ``Store`` implementation, for SQLite and PostgreSQL alike.

Queries are SQLAlchemy Core expressions (never formatted strings); dialect differences live in
``dialect.py``. The constructor only prepares an engine: no connection and no DDL happen until
``migrate()`` or the first query.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncConnection

from .. import codec
from ..errors import NotFound, StoreError
from ..ids import IdFactory, new_id, now_ms
from ..records import ConversationRecord, ItemRecord, NewItem
from . import dialect
from .base import DEFAULT_TENANT
from .migrations import MIGRATIONS
from .schema import conversations, items, schema_migrations

log = logging.getLogger(__name__)

_UPDATABLE = frozenset({"title", "model", "system_prompt", "metadata", "head_item_id"})


class SQLStore:
    def __init__(self, url: str, *, ids: IdFactory = new_id) -> None:
        self.url = url
        self._ids = ids
        self._engine = dialect.create_engine(url)

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
            async with self._engine.begin() as conn:
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
        async with self._begin() as conn:
            await self._conversation(conn, conversation_id, tenant_id)
            await conn.execute(items.delete().where(items.c.conversation_id == conversation_id))
            await conn.execute(conversations.delete().where(conversations.c.id == conversation_id))

    # -- items -------------------------------------------------------------------------------

    async def append(
        self,
        conversation_id: str,
        parent_id: str | None,
        item: NewItem,
        *,
        tenant_id: str = DEFAULT_TENANT,
        move_head: bool = True,
    ) -> ItemRecord:
        record = ItemRecord(
            id=self._ids("item"),
            conversation_id=conversation_id,
            parent_id=parent_id,
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
        async with self._begin() as conn:
            await self._conversation(conn, conversation_id, tenant_id)
            if parent_id is not None:
                await self._item(conn, parent_id, tenant_id, conversation_id)
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
        if leaf_id is None:
            return []
        walk = (
            sa.select(items.c.id, items.c.parent_id, sa.literal(0).label("depth"))
            .where(items.c.id == leaf_id, items.c.conversation_id == conversation_id)
            .cte("walk", recursive=True)
        )
        walk = walk.union_all(
            sa.select(items.c.id, items.c.parent_id, (walk.c.depth + 1).label("depth")).join(
                walk, items.c.id == walk.c.parent_id
            )
        )
        query = (
            sa.select(items)
            .join(walk, items.c.id == walk.c.id)
            .join(conversations, conversations.c.id == items.c.conversation_id)
            .where(conversations.c.tenant_id == tenant_id)
            .order_by(walk.c.depth.desc())
        )
        async with self._connect() as conn:
            rows = [_item_record(row) for row in (await conn.execute(query)).mappings()]
        if not rows:
            raise NotFound(f"item {leaf_id!r} not found in conversation {conversation_id!r}")
        return rows

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

    async def close(self) -> None:
        await self._engine.dispose()

    # -- internals ---------------------------------------------------------------------------

    def _describe(self) -> str:
        return self._engine.url.render_as_string(hide_password=True).replace("+aiosqlite", "").replace("+psycopg", "")

    def _connect(self) -> _Guard:
        return _Guard(self, begin=False)

    def _begin(self) -> _Guard:
        return _Guard(self, begin=True)

    async def _conversation(self, conn: AsyncConnection, conversation_id: str, tenant_id: str) -> ConversationRecord:
        row = (
            (
                await conn.execute(
                    sa.select(conversations).where(
                        conversations.c.id == conversation_id, conversations.c.tenant_id == tenant_id
                    )
                )
            )
            .mappings()
            .first()
        )
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


class _Guard:
    """A connection (optionally in a transaction) whose driver errors become ``StoreError``."""

    def __init__(self, store: SQLStore, *, begin: bool) -> None:
        self._store = store
        self._begin = begin
        self._cm: Any = None

    async def __aenter__(self) -> AsyncConnection:
        engine = self._store._engine
        self._cm = engine.begin() if self._begin else engine.connect()
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
