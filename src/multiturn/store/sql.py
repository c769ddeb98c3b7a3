"""``SQLStore``: the one ``Store`` implementation, for SQLite and PostgreSQL alike.

Each method is one short transaction, written once as a function of a connection (SQLAlchemy
Core expressions, never formatted strings) and run by the dialect's ``Database``
(``dialect.py``). The constructor only prepares the database object: no connection and no DDL
happen until ``migrate()`` or the first query.

Concurrency: every write transaction that changes a conversation starts by locking its row
(``SELECT ... FOR NO KEY UPDATE`` on PostgreSQL; on SQLite, ``BEGIN IMMEDIATE`` already holds
the database's one write lock) and reads the head inside that transaction, so appends to one
conversation are serialized across tasks and processes: none is lost, none is written twice.
Ids and times of an appended item are taken under the lock, so a parent is always older than
its children.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..errors import NotFound
from ..ids import now_ms
from ..records import ConversationRecord, ItemRecord, NewItem
from . import api_keys, dialect, erasure, responses, transfer
from .base import DEFAULT_TENANT, HEAD, ApiKeyRecord, Parent
from .core import NEAREST, conversation_row, item_row_of, of_tenant, require_item
from .memory import MemoryTables
from .migrations import MIGRATIONS
from .rows import conversation_record, item_record, item_row
from .schema import conversations, items, schema_migrations
from .turns import TurnTables
from .uploads import UploadTables
from .walks import item_columns, leaf_and_depth, walk_up

log = logging.getLogger(__name__)

_UPDATABLE = frozenset({"title", "model", "system_prompt", "metadata", "head_item_id"})


class SQLStore(TurnTables, MemoryTables, UploadTables):
    # -- schema ------------------------------------------------------------------------------

    async def migrate(self) -> list[str]:
        path = dialect.sqlite_file(self._db.url)
        if path is not None:
            dialect.create_private(path)

        def run(conn: Connection) -> list[str]:
            dialect.lock_for_migration(conn)
            schema_migrations.create(conn, checkfirst=True)
            done = set(conn.execute(sa.select(schema_migrations.c.name)).scalars())
            applied: list[str] = []
            for name, migration in MIGRATIONS:
                if name in done:
                    continue
                log.info("applying migration %s", name)
                migration(conn)
                conn.execute(schema_migrations.insert().values(name=name, applied_at=now_ms()))
                applied.append(name)
            return applied

        return await self._write(run, long=True)

    async def applied_migrations(self) -> list[str]:
        query = sa.select(schema_migrations.c.name).order_by(schema_migrations.c.name)
        return await self._read(lambda conn: list(conn.execute(query).scalars()))

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
        insert = conversations.insert().values(
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
        await self._write(lambda conn: conn.execute(insert))
        return record

    async def get_conversation(self, conversation_id: str, *, tenant_id: str = DEFAULT_TENANT) -> ConversationRecord:
        return await self._read(lambda conn: conversation_row(conn, conversation_id, tenant_id))

    async def list_conversations(self, *, tenant_id: str = DEFAULT_TENANT, limit: int = 50) -> list[ConversationRecord]:
        query = (
            sa.select(conversations)
            .where(conversations.c.tenant_id == tenant_id)
            .order_by(conversations.c.updated_at.desc(), conversations.c.id.desc())
            .limit(limit)
        )
        return await self._read(lambda conn: [conversation_record(row) for row in conn.execute(query).mappings()])

    async def find_conversations(
        self, words: Sequence[str], *, tenant_id: str = DEFAULT_TENANT, limit: int = 50
    ) -> list[tuple[ConversationRecord, ItemRecord | None]]:
        """The tenant's conversations, newest activity first, whose title holds every one of
        ``words`` (case-insensitive substrings; SQLite folds the case of ASCII letters only),
        or one of whose items' content does: with the oldest such item, or ``None`` for a
        title match. Three queries whatever the number of conversations; no index serves a
        substring, so it reads the tenant's rows (the full-text index covers only the rounds
        recall indexed). The content is matched as stored (JSON): a word that is also a key
        of it ("text", "type") matches every item, so a conversation is kept only when the
        text of its oldest matching item holds the words."""
        text = sa.cast(items.c.content, sa.Text)
        in_item = sa.and_(*(_contains(text, w) for w in words))
        in_title = sa.and_(*(_contains(conversations.c.title, w) for w in words))
        has_item = sa.exists().where(items.c.conversation_id == conversations.c.id, in_item)
        matching = (
            sa.select(conversations)
            .where(conversations.c.tenant_id == tenant_id, sa.or_(in_title, has_item))
            .order_by(conversations.c.updated_at.desc(), conversations.c.id.desc())
            .limit(limit)
        )

        def run(conn: Connection) -> list[tuple[ConversationRecord, ItemRecord | None]]:
            found = [conversation_record(row) for row in conn.execute(matching).mappings()]
            untitled = [c.id for c in found if not _holds(c.title or "", words)]
            first = _first_items(conn, untitled, in_item)
            return [(c, first.get(c.id)) for c in found if c.id not in first or _holds(first[c.id].text, words)]

        return await self._read(run, long=True)

    async def first_user_items(
        self, conversation_ids: Sequence[str], *, tenant_id: str = DEFAULT_TENANT
    ) -> dict[str, ItemRecord]:
        """The oldest user item of each of ``conversation_ids`` (of this tenant) that has one:
        what names an untitled conversation in a listing."""
        ids = list(conversation_ids)

        def run(conn: Connection) -> dict[str, ItemRecord]:
            mine = conversations.c.id.in_(ids) & (conversations.c.tenant_id == tenant_id)
            owned = [row.id for row in conn.execute(sa.select(conversations.c.id).where(mine))]
            return _first_items(conn, owned, items.c.role == "user")

        return await self._read(run, long=True) if ids else {}

    async def update_conversation(
        self, conversation_id: str, *, tenant_id: str = DEFAULT_TENANT, **fields: Any
    ) -> ConversationRecord:
        unknown = set(fields) - _UPDATABLE
        if unknown:
            raise TypeError(f"cannot update {sorted(unknown)}")

        def run(conn: Connection) -> ConversationRecord:
            conversation_row(conn, conversation_id, tenant_id, lock=True)
            if fields.get("head_item_id") is not None:
                require_item(conn, fields["head_item_id"], tenant_id, conversation_id)
            update = conversations.update().where(conversations.c.id == conversation_id)
            conn.execute(update.values(**fields, updated_at=now_ms()))
            return conversation_row(conn, conversation_id, tenant_id)

        return await self._write(run)

    async def delete_conversation(self, conversation_id: str, *, tenant_id: str = DEFAULT_TENANT) -> None:
        """Delete the conversation; foreign keys cascade to its items, summaries, index entries,
        responses and open turns, and the full-text rows follow (SQLite: triggers, then the FTS5
        segments are merged so no deleted word stays in them; PostgreSQL: a generated column of
        the row). Inline media live in the items' content, so they go with the items."""

        def run(conn: Connection) -> None:
            conversation_row(conn, conversation_id, tenant_id, lock=True)
            erasure.erase_conversations(conn, [conversation_id])

        await self._erase(run)

    async def prune(self, older_than_ms: int, *, tenant_id: str | None = DEFAULT_TENANT) -> list[str]:
        """Delete the conversations with no activity since ``older_than_ms`` (of one tenant, or
        of all with ``None``), as ``delete_conversation`` does; returns their ids. A conversation
        written to while this runs is kept (its row is locked and the condition checked again)."""
        stale = conversations.c.updated_at < older_than_ms
        if tenant_id is not None:
            stale = sa.and_(stale, conversations.c.tenant_id == tenant_id)

        def run(conn: Connection) -> list[str]:
            # FOR UPDATE: PostgreSQL locks the rows and checks the condition again on a row written
            # meanwhile (SQLite's write lock already keeps every writer out)
            doomed = sorted(conn.execute(sa.select(conversations.c.id).where(stale).with_for_update()).scalars())
            erasure.erase_conversations(conn, doomed)
            return doomed

        return await self._erase(run)

    async def import_conversation(
        self, conversation: ConversationRecord, tree: Sequence[ItemRecord], *, tenant_id: str = DEFAULT_TENANT
    ) -> ConversationRecord:
        record, copies = transfer.renumber(conversation, tree, tenant_id=tenant_id, ids=self._ids)

        def run(conn: Connection) -> None:
            conn.execute(
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
            if copies:  # one statement, rows in order: a parent is written before its children
                conn.execute(items.insert(), [item_row(copy) for copy in copies])

        await self._write(run, long=True)
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
        def run(conn: Connection) -> ItemRecord:
            conversation = conversation_row(conn, conversation_id, tenant_id, lock=True)
            parent = conversation.head_item_id if parent_id is HEAD else parent_id
            if parent is not None and parent_id is not HEAD:
                require_item(conn, parent, tenant_id, conversation_id)
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
            conn.execute(items.insert().values(**item_row(record)))
            values: dict[str, Any] = {"updated_at": record.created_at}
            if move_head:
                values["head_item_id"] = record.id
            conn.execute(conversations.update().where(conversations.c.id == conversation_id).values(**values))
            return record

        record = await self._write(run)
        self._paths.extend(record.parent_id, [record])
        return record

    async def get_item(self, item_id: str, *, tenant_id: str = DEFAULT_TENANT) -> ItemRecord:
        return await self._read(lambda conn: item_row_of(conn, item_id, tenant_id))

    async def path(
        self, conversation_id: str, leaf_id: str | None, *, tenant_id: str = DEFAULT_TENANT
    ) -> list[ItemRecord]:
        """The items from the root down to ``leaf_id``.

        Items are never rewritten and a parent's deletion cascades to its children, so while
        the leaf exists its path is unchanged, unless an erasure spliced items out of the
        conversation (its ``erasures`` count, read with the leaf, tells): paths are cached per
        process (``PathCache``), and a read costs one indexed lookup of the leaf. A path not
        cached is read back only to the nearest cached ancestor (another process wrote the last
        turns), and by a recursive walk only when no ancestor is cached (a cold start).
        """
        if leaf_id is None:
            return []
        cached = self._paths.get(leaf_id)
        erasures = await self._read(lambda conn: require_item(conn, leaf_id, tenant_id, conversation_id))
        if self._stale(conversation_id, erasures):
            cached = None
        return list(cached) if cached is not None else await self._read_back(leaf_id, tenant_id, conversation_id)

    async def known_path(self, leaf_id: str | None, conversation: ConversationRecord) -> list[ItemRecord]:
        """The path to ``leaf_id``, an item known to exist in ``conversation`` as just read (the
        parent of a turn that has started): as ``path``, without looking the leaf up first (the
        conversation's ``erasures`` count is the one read). Raises NotFound if it was deleted
        all the same."""
        if leaf_id is None:
            return []
        cached = None if self._stale(conversation.id, conversation.erasures) else self._paths.get(leaf_id)
        if cached is not None:
            return list(cached)
        return await self._read_back(leaf_id, conversation.tenant_id, conversation.id)

    async def _read_back(self, leaf_id: str, tenant_id: str, conversation_id: str) -> list[ItemRecord]:
        """Read a path not cached: up to ``NEAREST`` items back from the leaf, one short read
        that stops below the conversation's path cached last (usually the turn this process
        served last: another process served the few since), joined to the nearest cached
        ancestor. When that path is further back (other processes served more turns since), a
        second read goes on to it: what is read follows the turns this process missed, not the
        conversation's length. The whole walk (a long read) only when no ancestor is cached."""
        params = {
            "b_leaf": leaf_id,
            "b_conversation": conversation_id,
            "b_tenant": tenant_id,
            "b_stop": self._paths.latest(conversation_id),
        }
        near = {**params, "b_depth": NEAREST - 1}
        rows = await self._read(lambda conn: _items_back_rows(conn, near))  # leaf first
        if not rows:
            raise NotFound(f"item {leaf_id!r} not found in conversation {conversation_id!r}")
        path = self._below_cached(rows)
        if path is None and params["b_stop"] is not None:  # further back than NEAREST: on from there to it
            far = {**params, "b_leaf": rows[-1]["parent_id"], "b_depth": _UNBOUNDED}
            rows = [*rows, *await self._read(lambda conn: _items_back_rows(conn, far), long=True)]
            path = self._below_cached(rows)
        if path is None:
            path = tuple(await self._read(lambda conn: _walk(conn, leaf_id), long=True))
            if not path:
                raise NotFound(f"item {leaf_id!r} not found in conversation {conversation_id!r}")
        self._paths.put(leaf_id, path)
        return list(path)

    async def items(self, conversation_id: str, *, tenant_id: str = DEFAULT_TENANT) -> list[ItemRecord]:
        query = (
            sa.select(items).where(items.c.conversation_id == conversation_id).order_by(items.c.created_at, items.c.id)
        )

        def run(conn: Connection) -> list[ItemRecord]:
            conversation_row(conn, conversation_id, tenant_id)
            return [item_record(row) for row in conn.execute(query).mappings()]

        return await self._read(run, long=True)

    async def children(
        self, conversation_id: str, parent_id: str | None, *, tenant_id: str = DEFAULT_TENANT
    ) -> Sequence[ItemRecord]:
        parent = items.c.parent_id.is_(None) if parent_id is None else items.c.parent_id == parent_id
        query = (
            sa.select(items)
            .where(items.c.conversation_id == conversation_id, parent)
            .order_by(items.c.created_at, items.c.id)
        )

        def run(conn: Connection) -> list[ItemRecord]:
            conversation_row(conn, conversation_id, tenant_id)
            return [item_record(row) for row in conn.execute(query).mappings()]

        return await self._read(run, long=True)

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
        await self._write(lambda conn: api_keys.insert(conn, record))
        return record, key

    async def list_api_keys(self, *, tenant_id: str | None = None) -> list[ApiKeyRecord]:
        return await self._read(lambda conn: api_keys.select(conn, tenant_id))

    async def revoke_api_key(self, key_id: str, *, tenant_id: str | None = None) -> ApiKeyRecord:
        return await self._write(lambda conn: api_keys.revoke(conn, key_id, tenant_id, now_ms()))

    async def api_key_by_hash(self, key_hash: str) -> ApiKeyRecord | None:
        return await self._read(lambda conn: api_keys.by_hash(conn, key_hash))

    async def has_api_keys(self) -> bool:
        return await self._read(api_keys.any_key)

    # -- responses (the stateful API: /v1/responses, /v1/conversations) --------------------------

    async def get_response(self, response_id: str, *, tenant_id: str = DEFAULT_TENANT) -> responses.ResponseRecord:
        return await self._read(lambda conn: responses.select(conn, response_id, tenant_id))

    async def get_response_with_conversation(
        self, response_id: str, *, tenant_id: str = DEFAULT_TENANT
    ) -> tuple[responses.ResponseRecord, ConversationRecord]:
        return await self._read(lambda conn: responses.select_with_conversation(conn, response_id, tenant_id))

    async def delete_response(self, response_id: str, *, tenant_id: str = DEFAULT_TENANT) -> None:
        await self._erase(lambda conn: responses.delete(conn, response_id, tenant_id))

    async def answer_instructions(self, conversation_id: str, *, tenant_id: str = DEFAULT_TENANT) -> dict[str, str]:
        return await self._read(lambda conn: responses.instructions_by_answer(conn, conversation_id, tenant_id))

    async def delete_item(
        self, conversation_id: str, item_id: str, *, tenant_id: str = DEFAULT_TENANT
    ) -> ConversationRecord:
        def run(conn: Connection) -> ConversationRecord:
            conversation = conversation_row(conn, conversation_id, tenant_id, lock=True)
            head = erasure.erase_subtree(conn, conversation_id, item_id, conversation.head_item_id)
            conn.execute(
                conversations.update()
                .where(conversations.c.id == conversation_id)
                .values(head_item_id=head, updated_at=now_ms())
            )
            return conversation_row(conn, conversation_id, tenant_id)

        return await self._erase(run)

    async def conversations_page(
        self, *, tenant_id: str = DEFAULT_TENANT, after: str | None = None, limit: int = 20, descending: bool = True
    ) -> list[ConversationRecord]:
        query = responses.page_query(tenant_id, after, limit, descending)
        return await self._read(lambda conn: [conversation_record(row) for row in conn.execute(query).mappings()])


def _items_back(*, lateral: bool) -> sa.Select[Any]:
    """The leaf (of the conversation, of the tenant) and up to ``b_depth`` of its ancestors,
    leaf first, none at or above ``b_stop`` (an item whose path is cached; null: none); each
    step a lookup by key, the rows carried in the walk (``walks``; ``lateral`` on PostgreSQL)."""
    leaf = leaf_and_depth().where(
        items.c.id == sa.bindparam("b_leaf"),
        items.c.conversation_id == sa.bindparam("b_conversation"),
        of_tenant(items.c.conversation_id),
    )
    walk = walk_up(
        leaf,
        "nearest",
        lateral=lateral,
        going_on=lambda walk: sa.and_(
            walk.c.depth < sa.bindparam("b_depth", type_=sa.Integer),
            walk.c.parent_id.is_distinct_from(sa.bindparam("b_stop")),
        ),
    )
    return item_columns(walk).order_by(walk.c.depth)


_ITEMS_BACK = {"postgresql": _items_back(lateral=True), "sqlite": _items_back(lateral=False)}
"""By dialect name."""


def _items_back_rows(conn: Connection, params: dict[str, Any]) -> Sequence[Any]:
    return conn.execute(_ITEMS_BACK[conn.dialect.name], params).mappings().all()


_UNBOUNDED = 2**31 - 1
"""``b_depth`` for a read back that goes on until ``b_stop`` (or the root)."""


def _walk_query(*, lateral: bool) -> sa.Select[Any]:
    """The path to ``b_leaf``, root first, each step a lookup by key (``walks``)."""
    walk = walk_up(leaf_and_depth().where(items.c.id == sa.bindparam("b_leaf")), "walk", lateral=lateral)
    return item_columns(walk).order_by(walk.c.depth.desc())


_WALK = {"postgresql": _walk_query(lateral=True), "sqlite": _walk_query(lateral=False)}
"""By dialect name."""


def _walk(conn: Connection, leaf_id: str) -> list[ItemRecord]:
    return [item_record(row) for row in conn.execute(_WALK[conn.dialect.name], {"b_leaf": leaf_id}).mappings()]


def _first_items(conn: Connection, conversation_ids: Sequence[str], where: Any) -> dict[str, ItemRecord]:
    """The oldest item matching ``where`` of each of ``conversation_ids`` that has one."""
    if not conversation_ids:
        return {}
    matching = sa.and_(items.c.conversation_id.in_(list(conversation_ids)), where)
    oldest = (
        sa.select(items.c.conversation_id, sa.func.min(items.c.created_at).label("at"))
        .where(matching)
        .group_by(items.c.conversation_id)
        .subquery()
    )
    query = (
        sa.select(items)
        .join(oldest, sa.and_(items.c.conversation_id == oldest.c.conversation_id, items.c.created_at == oldest.c.at))
        .where(matching)
        .order_by(items.c.id)
    )
    first: dict[str, ItemRecord] = {}
    for row in conn.execute(query).mappings():
        first.setdefault(row["conversation_id"], item_record(row))
    return first


def _holds(text: str, words: Sequence[str]) -> bool:
    lowered = text.lower()
    return all(w.lower() in lowered for w in words)


def _contains(column: Any, word: str) -> Any:
    """``column`` holds ``word``, case-insensitively (``%`` and ``_`` in it taken literally)."""
    escaped = word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return column.ilike(f"%{escaped}%", escape="\\")
