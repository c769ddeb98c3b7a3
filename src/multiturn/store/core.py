"""What every part of the SQL store shares: the database (``dialect.Database``: transactions as
functions of a connection), tenant-scoped lookups of a conversation and an item, the path
cache, and this process's liveness as an owner of turns.

Transactions are short: a few indexed reads and writes, never a model call or a memory job.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..errors import NotFound
from ..ids import IdFactory, new_id
from ..records import ConversationRecord, ItemRecord
from . import dialect
from .rows import conversation_record, item_record
from .schema import conversations, items

_T = TypeVar("_T")


class StoreCore:
    def __init__(self, url: str, *, ids: IdFactory = new_id, cache_items: int = 32_768) -> None:
        self.url = url
        self._ids = ids
        self._db = dialect.open_database(url)
        self._paths = PathCache(references=cache_items)
        self._erasures: OrderedDict[str, int] = OrderedDict()
        """The ``erasures`` count last seen of conversations that have had erasures."""
        self._queued: set[str] = set()
        """Turns this process has queued and not yet started or withdrawn (``turns.py``)."""
        self.liveness = self._db.liveness()

    async def close(self) -> None:
        await self.liveness.close()
        await self._db.dispose()

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self._db.dialect

    # -- internals ---------------------------------------------------------------------------

    def _describe(self) -> str:
        return dialect.describe(self._db.url)

    async def _read(self, fn: Callable[[Connection], _T], *, long: bool = False) -> _T:
        """Run a read transaction (``long``: it may read more than a few rows)."""
        return await self._db.read(fn, long=long)

    async def _write(self, fn: Callable[[Connection], _T], *, long: bool = False, alone: bool = False) -> _T:
        """Run a write transaction (``long``: it may write or read more than a few rows;
        ``alone``: it is one statement, see ``Database.write``)."""
        return await self._db.write(fn, long=long, alone=alone)

    def _below_cached(self, rows: Sequence[Mapping[Any, Any]]) -> tuple[ItemRecord, ...] | None:
        """The path to the first of ``rows`` (items, each the child of the next) through the
        nearest of them whose parent's path is cached (or that has no parent); ``None`` if none."""
        for n, row in enumerate(rows):
            parent = row["parent_id"]
            above = () if parent is None else self._paths.get(parent)
            if above is not None:
                return (*above, *(item_record(below) for below in reversed(rows[: n + 1])))
        return None

    async def _erase(self, fn: Callable[[Connection], _T]) -> _T:
        """Run a transaction that erases (``erasure.py``), then forget: the cached paths go
        (they may hold erased items) and the database's files drop the freed bytes."""
        try:
            return await self._write(fn, long=True)
        finally:
            self._paths.clear()
            await self._db.forget()

    def _stale(self, conversation_id: str, erasures: int) -> bool:
        """Whether items of the conversation were erased since its paths were cached here (in
        any process); if so, every cached path is dropped."""
        if erasures == 0 or self._erasures.get(conversation_id) == erasures:
            return False
        self._paths.clear()
        self._erasures[conversation_id] = erasures
        self._erasures.move_to_end(conversation_id)
        while len(self._erasures) > _ERASURES_KEPT:
            self._erasures.popitem(last=False)
        return True


NEAREST = 16
"""Items a read fetches at most, up from a leaf whose path is not cached, looking for an
ancestor whose path is (another process wrote the last few turns): ``sql._nearest_items`` and a
start's (``turn_trips._nearest``)."""

_ERASURES_KEPT = 4096
"""Conversations whose ``erasures`` count is remembered (one forgotten costs a cache clear)."""


_CONVERSATION = sa.select(conversations).where(conversations.c.id == sa.bindparam("b_conversation"))
"""A conversation's row by its id alone, its tenant checked on the row (``conversation_row``):
with the tenant in the condition, a generic plan made before PostgreSQL's first ANALYZE could
read it through ``ix_conversations_tenant_updated`` (``by_key``; ``turn_trips._ROW``)."""
_CONVERSATION_LOCKED = _CONVERSATION.with_for_update(key_share=True)
_CONVERSATION_LOCKED_NO_FLUSH = _CONVERSATION_LOCKED.add_columns(dialect.NO_FLUSH)


def conversation_row(
    conn: Connection, conversation_id: str, tenant_id: str, *, lock: bool = False, flush: bool = True
) -> ConversationRecord:
    """The conversation's row; ``lock`` holds it until the transaction ends (PostgreSQL's ``FOR
    NO KEY UPDATE``: writers of the row wait, inserts that only reference it through a foreign
    key do not; SQLite's ``BEGIN IMMEDIATE`` has already locked the database). ``flush=False``
    (with ``lock``): the transaction's commit need not wait for the disk
    (``dialect.commit_without_flush``), asked by the same statement.

    Raises:
        NotFound: no such conversation for this tenant.
    """
    if not flush and not lock:
        raise ValueError("flush=False goes with lock=True")
    query = _CONVERSATION_LOCKED if lock else _CONVERSATION
    if not flush and dialect.flushes_at_commit(conn):
        query = _CONVERSATION_LOCKED_NO_FLUSH
    row = conn.execute(query, {"b_conversation": conversation_id}).mappings().first()
    if row is None or row["tenant_id"] != tenant_id:
        raise NotFound(f"conversation {conversation_id!r} not found")
    return conversation_record(row)


def by_key(conversation_id: Any, column: sa.Column[Any]) -> sa.ScalarSelect[Any]:
    """``column`` of the conversation ``conversation_id`` names, read by its primary key alone.
    A condition on the conversation's tenant written as a join (``conversations.tenant_id =
    :tenant``) can be planned through ``ix_conversations_tenant_updated``: on a fresh
    PostgreSQL database, before its first ANALYZE, a generic plan costed both indexes the same
    and took that one, reading every conversation of the tenant (``_CONVERSATION``)."""
    return sa.select(column).where(conversations.c.id == conversation_id).scalar_subquery()


def of_tenant(conversation_id: Any) -> sa.ColumnElement[bool]:
    """The conversation ``conversation_id`` names is ``b_tenant``'s (``by_key``)."""
    return by_key(conversation_id, conversations.c.tenant_id) == sa.bindparam("b_tenant")


_ITEM = sa.select(items).where(items.c.id == sa.bindparam("b_item"), of_tenant(items.c.conversation_id))
_ITEM_OF = _ITEM.where(items.c.conversation_id == sa.bindparam("b_conversation"))
_ITEM_EXISTS = sa.select(items.c.id, by_key(items.c.conversation_id, conversations.c.erasures).label("erasures")).where(
    items.c.id == sa.bindparam("b_item"),
    items.c.conversation_id == sa.bindparam("b_conversation"),
    of_tenant(items.c.conversation_id),
)


def item_row_of(conn: Connection, item_id: str, tenant_id: str, conversation_id: str | None = None) -> ItemRecord:
    """One item of this tenant (of one conversation, when given). Raises NotFound."""
    params = {"b_item": item_id, "b_tenant": tenant_id}
    if conversation_id is None:
        row = conn.execute(_ITEM, params).mappings().first()
    else:
        row = conn.execute(_ITEM_OF, {**params, "b_conversation": conversation_id}).mappings().first()
    if row is None:
        where = f" in conversation {conversation_id!r}" if conversation_id else ""
        raise NotFound(f"item {item_id!r} not found{where}")
    return item_record(row)


def require_item(conn: Connection, item_id: str, tenant_id: str, conversation_id: str) -> int:
    """Check that an item exists in a conversation of this tenant (one indexed lookup); returns
    the conversation's ``erasures`` count."""
    params = {"b_item": item_id, "b_conversation": conversation_id, "b_tenant": tenant_id}
    row = conn.execute(_ITEM_EXISTS, params).first()
    if row is None:
        raise NotFound(f"item {item_id!r} not found in conversation {conversation_id!r}")
    return int(row.erasures)


class PathCache:
    """Paths by leaf id, least recently used out first, bounded by paths and by the item
    references they hold together. A path extended by new items (the next turn) shares its
    records with the path it extends, so a conversation's records are held once however many
    of its paths are cached.

    Items never change and a parent's deletion cascades to its children, so a cached path is
    right for as long as its leaf exists and no erasure spliced items out of its conversation;
    callers check that the leaf exists (or know it) and the conversation's erasure count.
    """

    def __init__(self, size: int = 256, references: int = 32_768) -> None:
        self._size = size
        self._references = references
        self._held = 0
        self._paths: OrderedDict[str, tuple[ItemRecord, ...]] = OrderedDict()
        self._prefixes: OrderedDict[str, tuple[str, int]] = OrderedDict()
        """A leaf whose path was replaced by its extension: (the extension's leaf, the length of
        the leaf's own path); the extension may itself have been replaced since."""
        self._latest: OrderedDict[str, str] = OrderedDict()
        """The leaf of the path cached last, by conversation: where a read back can stop."""

    def __len__(self) -> int:
        return len(self._paths)

    @property
    def references(self) -> int:
        """Item references held by the cached paths together."""
        return self._held

    def clear(self) -> None:
        self._paths.clear()
        self._prefixes.clear()
        self._latest.clear()
        self._held = 0

    def latest(self, conversation_id: str) -> str | None:
        """The leaf of the conversation's path cached last, if it is still cached."""
        leaf = self._latest.get(conversation_id)
        return leaf if leaf is not None and leaf in self._paths else None

    def get(self, leaf_id: str) -> tuple[ItemRecord, ...] | None:
        path = self._paths.get(leaf_id)
        if path is not None:
            self._paths.move_to_end(leaf_id)
            return path
        hops: list[str] = []  # a leaf a cached path went on from, maybe over several turns
        current = leaf_id
        while (step := self._prefixes.get(current)) is not None:
            hops.append(current)
            current = step[0]
            longer = self._paths.get(current)
            if longer is None:
                continue
            self._paths.move_to_end(current)
            for hop in hops:  # point every hop at the path that holds it
                self._prefixes[hop] = (current, self._prefixes[hop][1])
            length = self._prefixes[leaf_id][1]
            return longer[:length] if longer[length - 1].id == leaf_id else None
        for hop in hops:  # the longer path was evicted
            del self._prefixes[hop]
        return None

    def put(self, leaf_id: str, path: tuple[ItemRecord, ...]) -> None:
        old = self._paths.pop(leaf_id, None)
        if old is not None:
            self._held -= len(old)
        self._paths[leaf_id] = path
        self._held += len(path)
        if path:
            self._latest[path[-1].conversation_id] = leaf_id
            self._latest.move_to_end(path[-1].conversation_id)
            while len(self._latest) > self._size * 4:
                self._latest.popitem(last=False)
        while len(self._paths) > 1 and (len(self._paths) > self._size or self._held > self._references):
            _, evicted = self._paths.popitem(last=False)
            self._held -= len(evicted)
        while len(self._prefixes) > self._size * 4:
            self._prefixes.popitem(last=False)

    def extend(self, parent_id: str | None, records: Sequence[ItemRecord]) -> None:
        """Cache the path of the last of ``records`` (chained, the first under ``parent_id``)
        when the parent's path is known, in place of the parent's: the next turn continues from
        the new leaf, and a read of the old one finds the new path's prefix (``get``); otherwise
        do nothing (the next read walks)."""
        if not records or records[0].parent_id != parent_id:  # not what the records say: cache nothing
            return
        base = () if parent_id is None else self._paths.pop(parent_id, None)
        if base is not None:
            self._held -= len(base)
        elif parent_id is not None:  # a branch from a leaf a cached path went on from
            base = self.get(parent_id)
        if base is None:
            return
        extended = (*base, *records)
        self.put(records[-1].id, extended)
        if parent_id is not None:
            self._prefixes[parent_id] = (records[-1].id, len(base))
