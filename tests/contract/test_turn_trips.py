"""A turn's one-statement start and end on PostgreSQL (``store/turn_trips.py``), where it waited
for its conversation's lock: what another transaction did meanwhile is seen, as in a
transaction whose statements follow the lock. Another connection holds the lock, as another
process would."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from multiturn import Settings
from multiturn.errors import NotFound
from multiturn.store import SQLStore, dialect
from multiturn.store import sql as store_sql
from multiturn.store.core import _CONVERSATION_LOCKED, _ITEM, _ITEM_EXISTS, _ITEM_OF, NEAREST, conversation_row
from multiturn.store.liveness import CHANNEL
from multiturn.store.schema import items
from multiturn.store.turn_trips import _LOCKED, _nearest
from multiturn.store.turns import Blocked, Started
from support.pg import PARSED_ONCE
from support.turns import answer, entry, stored_turn

pytestmark = pytest.mark.parametrize("db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)

LOCK = "SELECT id FROM conversations WHERE id = %s FOR NO KEY UPDATE"


async def _waiting_for_a_lock(conn: psycopg.AsyncConnection) -> None:
    for _ in range(200):
        row = await (
            await conn.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
        ).fetchone()
        if row and row[0]:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the end never waited for the conversation's lock")


async def test_a_turn_queued_while_the_end_awaited_the_lock_hears_of_the_end(store: SQLStore, db_url: str) -> None:
    conv = await store.create_conversation()
    base = await stored_turn(store, conv.id, "a", "b")
    chained = entry(store, conv.id, "c", parent_id=base.answer_id, parent_known=True, waits=False)
    started = await store.enter_turn(chained)
    assert isinstance(started, Started)
    async with (
        await psycopg.AsyncConnection.connect(db_url, autocommit=True) as listener,
        await psycopg.AsyncConnection.connect(db_url) as other,
        await psycopg.AsyncConnection.connect(db_url, autocommit=True) as watcher,
    ):
        await listener.execute(f"LISTEN {CHANNEL}")
        await other.execute(LOCK, (conv.id,))  # another process's turn arrives: it locks the conversation
        ending = asyncio.create_task(store.end_turn(chained.id, conv.id, answer(chained, started, "d")))
        await _waiting_for_a_lock(watcher)
        await other.execute(  # ... sees the chain's turn open and queues behind it
            "INSERT INTO turns (id, tenant_id, conversation_id, seq, status, waits, owner, inputs, created_at) "
            "VALUES ('turn_w', 'default', %s, nextval('turns_seq'), 'queued', true, 'elsewhere', '[]', 0)",
            (conv.id,),
        )
        await other.commit()
        assert await ending
        heard = await asyncio.wait_for(anext(listener.notifies()), 5)
        assert heard.payload == chained.id


async def test_an_end_whose_turn_was_deleted_while_it_awaited_the_lock_writes_nothing(
    store: SQLStore, db_url: str
) -> None:
    conv = await store.create_conversation()
    base = await stored_turn(store, conv.id, "a", "b")
    chained = entry(store, conv.id, "c", parent_id=base.answer_id, parent_known=True, waits=False)
    started = await store.enter_turn(chained)
    assert isinstance(started, Started) and chained.response is not None
    async with (
        await psycopg.AsyncConnection.connect(db_url) as other,
        await psycopg.AsyncConnection.connect(db_url, autocommit=True) as watcher,
    ):
        await other.execute(LOCK, (conv.id,))  # its response is being deleted, which deletes the turn's row
        ending = asyncio.create_task(store.end_turn(chained.id, conv.id, answer(chained, started, "d")))
        await _waiting_for_a_lock(watcher)
        await other.execute("DELETE FROM turns WHERE id = %s", (chained.id,))
        await other.commit()
        assert await ending is False
    assert (await store.get_conversation(conv.id)).head_item_id == base.answer_id
    stored = await store._read(
        lambda conn: conn.execute(sa.select(items.c.id).where(items.c.conversation_id == conv.id)).all()
    )
    assert len(list(stored)) == 2  # the first turn's two items only


async def test_a_turn_at_the_head_that_awaited_the_lock_queues_behind_the_turn_that_held_it(
    store: SQLStore, db_url: str
) -> None:
    conv = await store.create_conversation()
    await stored_turn(store, conv.id, "a", "b")
    async with (
        await psycopg.AsyncConnection.connect(db_url) as other,
        await psycopg.AsyncConnection.connect(db_url, autocommit=True) as watcher,
    ):
        await other.execute(LOCK, (conv.id,))  # another process's turn arrives first
        arriving = asyncio.create_task(store.enter_turn(entry(store, conv.id, "c")))
        await _waiting_for_a_lock(watcher)
        await other.execute(
            "INSERT INTO turns (id, tenant_id, conversation_id, seq, status, waits, owner, inputs, created_at) "
            "VALUES ('turn_first', 'default', %s, nextval('turns_seq'), 'generating', true, 'elsewhere', '[]', 0)",
            (conv.id,),
        )
        await other.commit()
        assert await arriving == Blocked("turn_first", "elsewhere")


async def test_a_turn_at_the_head_starts_or_queues_in_one_statement_and_a_rerun_start_is_started(
    store: SQLStore,
) -> None:
    conv = await store.create_conversation()
    base = await stored_turn(store, conv.id, "a", "b")
    statements: list[str] = []

    def count(conn: object, cursor: object, statement: str, *args: object) -> None:
        statements.append(statement)

    first, second = entry(store, conv.id, "c"), entry(store, conv.id, "e")
    sa.event.listen(sa.engine.Engine, "before_cursor_execute", count)
    try:
        started = await store.enter_turn(first)
        assert isinstance(started, Started) and started.parent_id == base.answer_id
        assert await store.enter_turn(second) == Blocked(first.id, store.owner)
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", count)
    assert len(statements) == 2, statements
    again = await store.enter_turn(first)  # as after a connection lost after its commit
    assert isinstance(again, Started) and (again.parent_id, again.started_at) == (started.parent_id, started.started_at)
    assert await store.end_turn(first.id, conv.id, answer(first, started, "d"))
    resumed = await store.enter_turn(second)
    assert isinstance(resumed, Started) and resumed.parent_id == started.answer_id


async def test_a_turn_continuing_what_another_process_served_gets_the_missing_items_with_its_start(
    store: SQLStore, db_url: str
) -> None:
    """The items between this process's cached path and the turn's parent come back with the
    start: the path is then read with no statement of its own, and is the path a fresh read gives."""
    other = SQLStore(Settings(db=db_url).database_url)
    statements: list[str] = []

    def count(conn: object, cursor: object, statement: str, *args: object) -> None:
        statements.append(statement)

    try:
        conv = await store.create_conversation()
        here = await stored_turn(store, conv.id, "a", "b")
        elsewhere = await stored_turn(other, conv.id, "c", "d", parent_id=here.answer_id)
        for waits in (False, True):
            if waits:  # at the head, which another process moved
                elsewhere = await stored_turn(other, conv.id, "e", "f", parent_id=elsewhere.answer_id)
            chained = entry(
                store,
                conv.id,
                "g",
                parent_id=None if waits else elsewhere.answer_id,
                parent_known=not waits,
                waits=waits,
            )
            statements.clear()
            sa.event.listen(sa.engine.Engine, "before_cursor_execute", count)
            try:
                started = await store.enter_turn(chained)
                assert isinstance(started, Started) and started.parent_id == elsewhere.answer_id
                path = await store.known_path(started.parent_id, started.conversation)
            finally:
                sa.event.remove(sa.engine.Engine, "before_cursor_execute", count)
            assert len(statements) == 1, statements
            fresh = SQLStore(Settings(db=db_url).database_url)
            try:
                assert [i.id for i in path] == [i.id for i in await fresh.path(conv.id, elsewhere.answer_id)]
                assert path == await fresh.path(conv.id, elsewhere.answer_id)
            finally:
                await fresh.close()
            ended = await store.end_turn(
                chained.id, conv.id, answer(chained, started, "h"), parent_id=started.parent_id
            )
            assert ended
            elsewhere = await stored_turn(other, conv.id, "i", "j", parent_id=started.answer_id)
    finally:
        await other.close()


@pytest.mark.parametrize("long", [False, True])
async def test_a_read_runs_outside_a_transaction_so_nothing_rolls_back_what_the_connection_prepared(
    store: SQLStore, long: bool
) -> None:
    """A read transaction ends with ``ROLLBACK`` when its connection goes back to the pool, and
    psycopg forgets every statement it prepared on a connection that rolls back: a process that
    read a path back from the database (a turn another gateway served) had its turns'
    statements planned afresh. Reads run outside a transaction: nothing to roll back."""
    conv = await store.create_conversation()
    await stored_turn(store, conv.id, "a", "b")

    def read(conn: sa.Connection) -> tuple[psycopg.pq.TransactionStatus, int, psycopg.pq.TransactionStatus]:
        driver = conn.connection.driver_connection
        assert isinstance(driver, psycopg.AsyncConnection)
        found = conn.execute(sa.select(sa.func.count()).select_from(items)).scalar_one()
        return driver.info.transaction_status, found, driver.info.transaction_status

    before, found, after = await store._read(read, long=long)
    assert (before, after) == (psycopg.pq.TransactionStatus.IDLE,) * 2 and found == 2


async def test_only_a_write_of_several_statements_leaves_autocommit_and_every_connection_comes_back_in_it(
    store: SQLStore,
) -> None:
    """The pool's connections stay in autocommit: a read and a write of one statement (a turn's
    start and end) run without a transaction and switch nothing; a write of several statements
    runs in a READ COMMITTED transaction; every connection goes back to the pool in autocommit.
    (Switching each read's connection into autocommit and back again at its return cost ~10 %
    of a gateway's CPU a stored turn.)"""
    database = store._db
    assert isinstance(database, dialect.PostgresDatabase)
    returned: list[bool] = []

    def checkin(dbapi_connection: Any, _record: Any) -> None:
        returned.append(dbapi_connection.driver_connection.autocommit)

    def seen(conn: sa.Connection) -> tuple[psycopg.pq.TransactionStatus, bool, str]:
        driver = conn.connection.driver_connection
        assert isinstance(driver, psycopg.AsyncConnection)
        level = conn.exec_driver_sql("SHOW transaction_isolation").scalar_one()
        return driver.info.transaction_status, driver.autocommit, level

    pool = database._engine.sync_engine.pool
    sa.event.listen(pool, "checkin", checkin)
    try:
        transaction = await store._write(seen)
        alone = await store._write(seen, alone=True)
        read = await store._read(seen)
    finally:
        sa.event.remove(pool, "checkin", checkin)
    assert transaction == (psycopg.pq.TransactionStatus.INTRANS, False, "read committed")
    assert alone[:2] == read[:2] == (psycopg.pq.TransactionStatus.IDLE, True)
    assert len(returned) >= 3 and all(returned), returned  # the three, and any other that came back meanwhile


def _walks(conversation_id: str) -> dict[str, tuple[sa.Select[Any], dict[str, Any]]]:
    """Every walk up a path on PostgreSQL, with its arguments for a walk from ``item_3000``."""
    chain = {"b_leaf": "item_3000", "b_conversation": conversation_id, "b_tenant": "default", "b_stop": None}
    return {
        "start": (
            sa.select(_LOCKED.c.id, _nearest(False)),
            {"b_conversation": conversation_id, "b_tenant": "default", "b_parent": "item_3000", "b_stop": None},
        ),
        "read back": (store_sql._ITEMS_BACK["postgresql"], {**chain, "b_depth": NEAREST - 1}),
        "whole path": (store_sql._WALK["postgresql"], {"b_leaf": "item_3000"}),
    }


@pytest.mark.parametrize("lookup", ["start", "transaction", "read back", "item", "item of", "item exists"])
async def test_a_conversation_is_read_by_key_under_a_plan_made_while_conversations_was_empty(
    store: SQLStore, db_url: str, lookup: str
) -> None:
    """Every statement that finds a conversation by its id and checks its tenant reads it by its
    key whatever the plan: the one-statement start's lock, a transaction's
    (``core.conversation_row``: queued turns, branches, appends), the read back's leaf and the
    item lookups (``core.of_tenant``). Under a generic plan made before the first ANALYZE (a
    10-page guess), a lookup by id and tenant costs the same through the primary key and
    through ``ix_conversations_tenant_updated``, and PostgreSQL took the second: every
    conversation of the tenant, read at every turn, until autovacuum analyzed the table."""
    conv = await store.create_conversation()
    started = await stored_turn(store, conv.id, "a", "b")
    leaf = started.answer_id
    item = {"b_item": leaf, "b_tenant": "default"}
    statement, given = {
        "start": _walks(conv.id)["start"],
        "transaction": (_CONVERSATION_LOCKED, {"b_conversation": conv.id}),
        "read back": (
            store_sql._ITEMS_BACK["postgresql"],
            {"b_leaf": leaf, "b_conversation": conv.id, "b_tenant": "default", "b_stop": None, "b_depth": 0},
        ),
        "item": (_ITEM, item),
        "item of": (_ITEM_OF, {**item, "b_conversation": conv.id}),
        "item exists": (_ITEM_EXISTS, {**item, "b_conversation": conv.id}),
    }[lookup]
    plan, found = await _generic_plan(
        db_url,
        statement,
        given,
        "INSERT INTO conversations (id, tenant_id, created_at, updated_at, metadata, erasures) "
        "SELECT 'conv_' || g, 'default', g, g, '{}', 0 FROM generate_series(1, 3000) AS g",
    )
    assert "ix_conversations_tenant_updated" not in plan and "conversations_pkey" in plan, plan
    assert [row[0] for row in found] == [conv.id if lookup in ("start", "transaction") else leaf]
    _, elsewhere = await _generic_plan(db_url, statement, {**given, "b_tenant": "another"}, "SELECT 1")
    if lookup == "transaction":  # the tenant is checked on the row it returns
        assert [row[0] for row in elsewhere] == [conv.id]
        with pytest.raises(NotFound):
            await store._read(lambda conn: conversation_row(conn, conv.id, "another"))
    else:
        assert elsewhere == []  # another tenant's: nothing found, nothing started


async def _generic_plan(
    db_url: str, statement: sa.Select[Any], given: dict[str, Any], then: str, *args: Any
) -> tuple[str, list[Any]]:
    """``statement`` prepared under a generic plan before ``then`` runs: its plan afterwards, and
    its rows."""
    query = statement.compile(dialect=postgresql.asyncpg.dialect())
    names = query.positiontup or ()
    values = {**query.params, **given}
    types = ", ".join(query.binds[name].type.compile(dialect=postgresql.dialect()) for name in names)
    execute = psycopg.sql.SQL("EXECUTE walk({})").format(
        psycopg.sql.SQL(", ").join(psycopg.sql.Literal(values[name]) for name in names)
    )
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
        await conn.execute("SET plan_cache_mode = force_generic_plan")
        await conn.execute(f"PREPARE walk ({types}) AS {query}")
        await conn.execute(execute)  # the plan, made on the tables as they are, never analyzed
        await conn.execute(then, args or None)
        explain = psycopg.sql.SQL("EXPLAIN {}").format(execute)
        plan = "\n".join(row[0] for row in await (await conn.execute(explain)).fetchall())
        found = await (await conn.execute(execute)).fetchall()
    return plan, found


@pytest.mark.parametrize("walk", ["start", "read back", "whole path"])
async def test_a_walk_up_a_path_stays_lookups_by_key_under_a_plan_made_while_items_was_empty(
    store: SQLStore, db_url: str, walk: str
) -> None:
    """A prepared statement keeps the generic plan PostgreSQL made with the statistics of its
    first executions: on a fresh database, before any ANALYZE, a 10-page guess at ``items``.
    With a join in the walk's recursive step that plan hashed the step against a scan of
    ``items``, kept as the table grew (a chain served round-robin by several gateways grew by a
    millisecond a turn over 2,000 turns). Every walk's step is a lookup by key whatever the
    plan (``store/walks.py``), and no walk joins its rows back to ``items``."""
    conv = await store.create_conversation()
    statement, given = _walks(conv.id)[walk]
    plan, found = await _generic_plan(
        db_url,
        statement,
        given,
        "INSERT INTO items (id, conversation_id, parent_id, role, content, status, created_at) "
        "SELECT 'item_' || g, %s, CASE WHEN g > 1 THEN 'item_' || (g - 1) END, 'user', '[]', 'completed', g "
        "FROM generate_series(1, 3000) AS g",
        conv.id,
    )
    assert "Seq Scan on items" not in plan, plan
    ids = [row["id"] for row in found[0][1]] if walk == "start" else [row[0] for row in found]
    expected = {"start": NEAREST, "read back": NEAREST, "whole path": 3000}[walk]
    newest_first = [f"item_{n}" for n in range(3000, 3000 - expected, -1)]
    assert ids == (newest_first[::-1] if walk == "whole path" else newest_first)


async def test_a_chain_served_by_two_processes_sends_only_statements_psycopg_parses_once(
    store: SQLStore, db_url: str
) -> None:
    """Whatever a turn sends, on either process, through starts that fetch what the other wrote,
    at the head and by a parent, is within psycopg's limits (``PARSED_ONCE``)."""
    other = SQLStore(Settings(db=db_url).database_url)
    sent: list[tuple[int, int]] = []

    def seen(conn: object, cursor: object, statement: str, parameters: Any, *args: object) -> None:
        sent.append((len(statement.encode()), len(parameters or ())))

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", seen)
    try:
        conv = await store.create_conversation()
        parent = None
        for n in range(6):
            here = (store, other)[n % 2]
            turn = entry(here, conv.id, f"q{n}", parent_id=parent, waits=n % 4 < 2, parent_known=n % 4 >= 2)
            started = await here.enter_turn(turn)
            assert isinstance(started, Started)
            await here.known_path(started.parent_id, started.conversation)
            assert await here.end_turn(turn.id, conv.id, answer(turn, started, f"a{n}"), parent_id=started.parent_id)
            parent = started.answer_id
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", seen)
        await other.close()
    assert len(sent) >= 12
    longest = max(length for length, _ in sent)
    most = max(count for _, count in sent)
    assert longest <= PARSED_ONCE[0] and most <= PARSED_ONCE[1], (longest, most)
