"""What every part of the SQL store shares: the engines, guarded connections (driver errors
become ``StoreError``), tenant-scoped lookups of a conversation and an item, and the path cache.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncConnection

from ..errors import NotFound, StoreError
from ..ids import IdFactory, new_id
from ..records import ConversationRecord, ItemRecord
from . import dialect
from .rows import conversation_record, item_record
from .schema import conversations, items


class StoreCore:
    def __init__(self, url: str, *, ids: IdFactory = new_id) -> None:
        self.url = url
        self._ids = ids
        self._engine = dialect.create_engine(url)
        self._writer = dialect.writer(self._engine)
        self._paths = PathCache()

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
        return conversation_record(row)

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
        return item_record(row)


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

    def __init__(self, store: StoreCore, *, begin: bool) -> None:
        self._store = store
        self._begin = begin
        self._cm: Any = None

    async def __aenter__(self) -> AsyncConnection:
        self._cm = self._store._writer.begin() if self._begin else self._store._engine.connect()
        try:
            conn: AsyncConnection = await self._cm.__aenter__()
        except sa_exc.DBAPIError as exc:
            raise StoreError(f"cannot open the database {self._store._describe()}: {reason(exc)}") from exc
        return conn

    async def __aexit__(self, *exc_info: Any) -> None:
        try:
            await self._cm.__aexit__(*exc_info)
        except sa_exc.DBAPIError as exc:
            raise StoreError(f"database error on {self._store._describe()}: {reason(exc)}") from exc
        if isinstance(exc_info[1], sa_exc.DBAPIError):
            raise StoreError(f"database error on {self._store._describe()}: {reason(exc_info[1])}") from exc_info[1]


def reason(exc: sa_exc.DBAPIError) -> str:
    return str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc)
