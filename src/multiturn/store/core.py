"""What every part of the SQL store shares: the engines, guarded connections (driver errors
become ``StoreError``), tenant-scoped lookups of a conversation and an item, the path cache, and
this process's liveness as an owner of turns.

Write transactions are short and, on SQLite, taken one at a time within a process (an
``asyncio.Lock`` in front of ``BEGIN IMMEDIATE``): SQLite has one writer anyway, and queuing
writers in the event loop, first come first served, replaces a busy-wait in which a writer
that keeps losing the race for the file lock could time out ("database is locked") under load.
Other processes on the same file still meet the busy timeout.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Sequence
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
        self._write_lock = asyncio.Lock() if self._engine.dialect.name == "sqlite" else None
        self._paths = PathCache()
        self.liveness = dialect.liveness(self._engine.url)

    async def close(self) -> None:
        await self.liveness.close()
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

    async def _item_id(self, conn: AsyncConnection, item_id: str, tenant_id: str, conversation_id: str) -> None:
        """Check that an item exists in a conversation of this tenant (one indexed lookup)."""
        query = (
            sa.select(items.c.id)
            .join(conversations, conversations.c.id == items.c.conversation_id)
            .where(items.c.id == item_id, items.c.conversation_id == conversation_id)
            .where(conversations.c.tenant_id == tenant_id)
        )
        if (await conn.execute(query)).first() is None:
            raise NotFound(f"item {item_id!r} not found in conversation {conversation_id!r}")


class PathCache:
    """Paths by leaf id, least recently used out first, bounded by paths and by the item
    references they hold together. A path extended by new items (the next turn) shares its
    records with the path it extends, so a conversation's records are held once however many
    of its paths are cached.

    Items never change and a parent's deletion cascades to its children, so a cached path is
    right for as long as its leaf exists; callers check that the leaf exists (or know it).
    """

    def __init__(self, size: int = 256, references: int = 262_144) -> None:
        self._size = size
        self._references = references
        self._held = 0
        self._paths: OrderedDict[str, tuple[ItemRecord, ...]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._paths)

    @property
    def references(self) -> int:
        """Item references held by the cached paths together."""
        return self._held

    def get(self, leaf_id: str) -> tuple[ItemRecord, ...] | None:
        path = self._paths.get(leaf_id)
        if path is not None:
            self._paths.move_to_end(leaf_id)
        return path

    def put(self, leaf_id: str, path: tuple[ItemRecord, ...]) -> None:
        old = self._paths.pop(leaf_id, None)
        if old is not None:
            self._held -= len(old)
        self._paths[leaf_id] = path
        self._held += len(path)
        while len(self._paths) > 1 and (len(self._paths) > self._size or self._held > self._references):
            _, evicted = self._paths.popitem(last=False)
            self._held -= len(evicted)

    def extend(self, parent_id: str | None, records: Sequence[ItemRecord]) -> None:
        """Cache the paths of ``records`` (chained, the first under ``parent_id``) when the
        parent's path is known; otherwise do nothing (the next read walks)."""
        base = () if parent_id is None else self._paths.get(parent_id)
        if base is None:
            return
        for record in records:
            base = (*base, record)
        if records:
            self.put(records[-1].id, base)


class _Guard:
    """A connection (optionally in a transaction) whose driver errors become ``StoreError``."""

    def __init__(self, store: StoreCore, *, begin: bool) -> None:
        self._store = store
        self._begin = begin
        self._cm: Any = None

    async def __aenter__(self) -> AsyncConnection:
        lock = self._store._write_lock if self._begin else None
        if lock is not None:
            await lock.acquire()
        self._cm = self._store._writer.begin() if self._begin else self._store._engine.connect()
        try:
            conn: AsyncConnection = await self._cm.__aenter__()
        except BaseException as exc:
            if lock is not None:
                lock.release()
            if isinstance(exc, sa_exc.DBAPIError):
                raise StoreError(f"cannot open the database {self._store._describe()}: {reason(exc)}") from exc
            raise
        return conn

    async def __aexit__(self, *exc_info: Any) -> None:
        try:
            await self._cm.__aexit__(*exc_info)
        except sa_exc.DBAPIError as exc:
            raise StoreError(f"database error on {self._store._describe()}: {reason(exc)}") from exc
        finally:
            lock = self._store._write_lock if self._begin else None
            if lock is not None:
                lock.release()
        if isinstance(exc_info[1], sa_exc.DBAPIError):
            raise StoreError(f"database error on {self._store._describe()}: {reason(exc_info[1])}") from exc_info[1]


def reason(exc: sa_exc.DBAPIError) -> str:
    return str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc)
