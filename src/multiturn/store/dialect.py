"""Everything that differs between SQLite and PostgreSQL, in one place.

The store writes every transaction once, as a plain function of a SQLAlchemy ``Connection``
(SQLAlchemy Core, never formatted SQL). A ``Database`` runs those functions:

- **SQLite**: the standard library's driver, synchronously. A *short* transaction (a few indexed
  reads and writes: everything a turn does) runs on the event loop itself, on one connection
  that never waits for a lock (``busy_timeout=0``): it takes ~0.1-0.3 ms, less than handing it
  to a thread and back. A transaction that may take long (a migration, deleting or importing a
  conversation, reading a whole tree or index) runs on the store's own threads (one for writes,
  two for reads), and so does a short one that found the file locked by another process or by
  one of those threads: there it waits, with a busy timeout, without blocking the loop.
  Measured here at c=32 on one gateway: every transaction on threads gave ~250-300 stored turns/s
  (the GIL passed back and forth between the loop and the threads), short ones on the loop
  ~390-470. An async driver that hops to a thread for every statement (aiosqlite) had cost
  ~190 µs a statement. Connections get WAL journaling, enforced foreign keys,
  ``synchronous=NORMAL`` and ``secure_delete`` (deleted content is overwritten with zeros); no
  commit checkpoints the WAL: a thread does (``checkpoints.py``).
  Write transactions begin with ``BEGIN IMMEDIATE``, taking the file's write lock first, so a
  transaction that reads and then writes waits for (or, on the loop, steps aside for) another
  writer instead of failing with "database is locked" halfway.
- **PostgreSQL**: psycopg 3's async driver; a transaction function runs through SQLAlchemy's
  ``run_sync`` on the event loop, each statement awaited on the network. Migrations hold a
  transaction-level advisory lock, so two processes starting at once do not both migrate.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol, TypeVar

import orjson
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from ..errors import MissingDependency, StoreError
from .checkpoints import Checkpointer
from .liveness import Liveness, PostgresLiveness

log = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_MS = 10_000
SQLITE_READERS = 2
TRUNCATE_TRIES = 8
"""Tries to truncate the WAL after an erasure (~2.5 s in all): another process's checkpoint
makes one give up at once."""
MIGRATION_LOCK_KEY = 0x6D74_0001
POSTGRES_POOL = 16
"""Connections a process keeps to PostgreSQL, and the most it opens: a transaction that finds
them all busy waits for one. Never more for a burst: a connection opened for a burst is closed
again when the burst ends, and opening one costs the server a process and ~1 ms of CPU. With 8
more for bursts, two gateways sharing 32 concurrent chains opened a connection every five turns
and spent twice the CPU a turn (gateways and server) that one gateway did; a pool of 5 had
opened one every few turns. A transaction is a few statements and never waits on a model, so 16
at once keep a process's CPU busy."""
_WRITE = "multiturn_write"
_NO_BEGIN = "multiturn_no_begin"
_T = TypeVar("_T")

Transaction = Callable[[Connection], _T]
"""A transaction's body: a function of a connection in a transaction, run by a ``Database``."""


class Database(Protocol):
    """Runs transactions on one database. Driver errors become ``StoreError``."""

    url: sa.URL
    dialect: str
    """``sqlite`` or ``postgresql``."""

    async def read(self, fn: Callable[[Connection], _T], *, long: bool = False) -> _T:
        """Run ``fn`` in a read transaction (it must not write). ``long``: it may take more
        than a few indexed reads (a whole tree, a search)."""
        ...

    async def write(self, fn: Callable[[Connection], _T], *, long: bool = False, alone: bool = False) -> _T:
        """Run ``fn`` in a write transaction: committed when it returns, rolled back when it
        raises. ``long``: it may take more than a few indexed writes. ``alone``: ``fn`` runs
        one statement, which PostgreSQL runs as its own transaction (no ``BEGIN`` and
        ``COMMIT`` round trips). Run again on a fresh connection when its connection was found
        dead, like any transaction, although it may have committed before the connection
        died: it must fail then (a duplicate key), and its caller know what that means."""
        ...

    async def forget(self) -> None:
        """After a transaction that deleted rows: have the database's files drop the deleted
        bytes where the database can (SQLite: truncate the WAL; PostgreSQL: nothing, see
        ``PostgresDatabase.forget``)."""
        ...

    async def dispose(self) -> None: ...

    def liveness(self) -> Liveness:
        """How this process owns turns on this database (``liveness.py``)."""
        ...


def normalize_url(url: str) -> sa.URL:
    """Pick the driver for a URL the user may have written without one."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        return parsed.set(drivername="postgresql+psycopg")
    if backend == "sqlite":
        return parsed.set(drivername="sqlite+pysqlite")
    raise StoreError(f"unsupported database URL {url!r}: use a SQLite path or postgresql://")


def sqlite_file(url: sa.URL) -> Path | None:
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(url.database)


def open_database(url: str) -> Database:
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "postgresql":
        return PostgresDatabase(parsed)
    return SQLiteDatabase(parsed)


def create_private(path: Path) -> None:
    """Create a SQLite database file (and its directory) readable by its owner only, before
    SQLite does: its ``-wal`` and ``-shm`` files take the database file's permissions. A
    directory or file that exists already is left as it is (it may be shared on purpose).
    Raises StoreError."""
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot create the database directory {path.parent}: {exc.strerror}") from exc
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass
    except OSError as exc:
        raise StoreError(f"cannot create the database {path}: {exc.strerror}") from exc


def describe(url: sa.URL) -> str:
    """The URL as shown in messages: no password, no driver name."""
    shown = url.render_as_string(hide_password=True)
    return shown.replace("+pysqlite", "").replace("+psycopg", "")


def reason(exc: sa_exc.DBAPIError) -> str:
    return str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc)


class SQLiteDatabase:
    dialect = "sqlite"

    def __init__(self, url: sa.URL) -> None:
        self.url = url
        self._engine: Engine = sa.create_engine(url, json_serializer=json_text, json_deserializer=orjson.loads)
        event.listen(self._engine, "connect", _sqlite_on_connect)
        event.listen(self._engine, "begin", _sqlite_begin)
        self._writer_engine = self._engine.execution_options(**{_WRITE: True})
        self._writes = ThreadPoolExecutor(1, thread_name_prefix="multiturn-sqlite-write")
        self._reads = ThreadPoolExecutor(SQLITE_READERS, thread_name_prefix="multiturn-sqlite-read")
        self._loop_engines = {write: self._loop_engine(write=write) for write in (False, True)}
        self._loop_conns: dict[bool, Connection] = {}
        path = sqlite_file(url)
        self._checkpointer = Checkpointer(path) if path is not None else None
        """Copies the WAL into the file beside the loop (``checkpoints.py``)."""

    async def read(self, fn: Callable[[Connection], _T], *, long: bool = False) -> _T:
        if not long:
            try:
                return self._on_loop(fn, write=False)
            except _Locked:
                pass
        return await asyncio.get_running_loop().run_in_executor(self._reads, self._run, self._engine, fn)

    async def write(self, fn: Callable[[Connection], _T], *, long: bool = False, alone: bool = False) -> _T:
        try:
            if not long:
                try:
                    return self._on_loop(fn, write=True)
                except _Locked:
                    pass
            return await asyncio.get_running_loop().run_in_executor(self._writes, self._run, self._writer_engine, fn)
        finally:
            if self._checkpointer is not None:
                self._checkpointer.wrote()

    def _loop_engine(self, *, write: bool) -> Engine:
        """An engine of one connection for the loop's short transactions, in the driver's
        autocommit mode: the reader runs each statement on its own (every short read is one
        statement, so it needs no ``BEGIN``/``COMMIT`` around it); the writer's transactions
        begin ``IMMEDIATE`` in ``_on_loop`` (the driver's ``commit`` and ``rollback`` end them).
        No ``begin`` listener, unlike the threads' engine: any connection listener makes
        SQLAlchemy dispatch events at every statement (~5 % of a stored turn's CPU)."""
        engine = sa.create_engine(
            self.url, json_serializer=json_text, json_deserializer=orjson.loads, poolclass=sa.pool.StaticPool
        )
        event.listen(engine, "connect", _sqlite_on_connect_no_wait)
        return engine.execution_options(isolation_level="AUTOCOMMIT")

    def _on_loop(self, fn: Callable[[Connection], _T], *, write: bool) -> _T:
        """Run a short transaction here and now; ``_Locked`` (nothing done) when the file's
        write lock is taken: the caller hands it to a thread, which waits."""
        conn = self._loop_conns.get(write)
        if conn is None:
            try:
                conn = self._loop_conns[write] = self._loop_engines[write].connect()
            except sa_exc.DBAPIError as exc:
                raise StoreError(f"cannot open the database {describe(self.url)}: {reason(exc)}") from exc
        try:
            with conn.begin():
                if write:
                    conn.exec_driver_sql("BEGIN IMMEDIATE")
                return fn(conn)
        except sa_exc.OperationalError as exc:
            if _locked(exc):  # rolled back: nothing was done
                raise _Locked from exc
            raise StoreError(f"database error on {describe(self.url)}: {reason(exc)}") from exc
        except sa_exc.DBAPIError as exc:
            raise StoreError(f"database error on {describe(self.url)}: {reason(exc)}") from exc

    def _run(self, engine: Engine, fn: Callable[[Connection], _T]) -> _T:
        try:
            conn = engine.connect()
        except sa_exc.DBAPIError as exc:
            raise StoreError(f"cannot open the database {describe(self.url)}: {reason(exc)}") from exc
        try:
            with conn, conn.begin():
                return fn(conn)
        except sa_exc.DBAPIError as exc:
            raise StoreError(f"database error on {describe(self.url)}: {reason(exc)}") from exc

    async def forget(self) -> None:
        """Checkpoint the WAL into the database file and truncate it to zero bytes: until then
        it holds the pages as they were before the delete (``secure_delete`` zeroes freed space
        in the database file itself). A checkpoint waits for readers (the busy timeout); one
        that cannot finish is logged, and the WAL is then overwritten by later commits."""
        busy = await asyncio.get_running_loop().run_in_executor(self._writes, self._checkpoint)
        if busy:
            log.warning("the WAL of %s could not be truncated after a deletion (readers were busy)", describe(self.url))

    def _checkpoint(self) -> bool:
        """Truncate the WAL; ``True`` if it could not be (readers, or another process's
        checkpoint, still busy after ``TRUNCATE_TRIES``)."""
        paused = self._checkpointer.paused() if self._checkpointer is not None else contextlib.nullcontext()
        try:
            with paused, self._engine.connect() as conn:
                bare = conn.execution_options(isolation_level="AUTOCOMMIT", **{_NO_BEGIN: True})
                for attempt in range(TRUNCATE_TRIES):
                    busy, _, _ = bare.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").one()
                    if not busy:
                        return False
                    time.sleep(0.01 * 2**attempt)
        except sa_exc.DBAPIError as exc:
            raise StoreError(f"database error on {describe(self.url)}: {reason(exc)}") from exc
        return True

    async def dispose(self) -> None:
        loop = asyncio.get_running_loop()
        if self._checkpointer is not None:
            await loop.run_in_executor(None, self._checkpointer.stop)
        for pool in (self._writes, self._reads):
            await loop.run_in_executor(None, pool.shutdown)
        for conn in self._loop_conns.values():
            conn.close()
        self._loop_conns.clear()
        for engine in self._loop_engines.values():
            engine.dispose()
        self._engine.dispose()

    def liveness(self) -> Liveness:
        return Liveness()


class PostgresDatabase:
    """PostgreSQL through psycopg's async driver. No ping before each transaction (a round trip
    each): a connection found dead by a transaction's statement (the server restarted) is
    dropped by SQLAlchemy, and the transaction, which cannot have committed, runs again once on
    a fresh one. One that dies during ``COMMIT`` is not run again (it may have committed): the
    caller gets the error."""

    dialect = "postgresql"

    def __init__(self, url: sa.URL) -> None:
        self.url = url
        try:
            self._engine: AsyncEngine = create_async_engine(
                url,
                json_serializer=json_text,
                json_deserializer=orjson.loads,
                pool_size=POSTGRES_POOL,
                max_overflow=0,
                isolation_level="AUTOCOMMIT",
            )
        except ModuleNotFoundError as exc:
            raise MissingDependency(exc.name or str(exc), "postgres") from exc
        self._transactions = self._engine.execution_options(isolation_level="READ COMMITTED")
        """Writes of several statements, in a transaction. Every other use of a connection
        (reads, and writes of one statement: a turn's start and end) runs each statement as its
        own transaction, with no ``BEGIN`` and ``COMMIT`` or ``ROLLBACK`` round trips around it:
        the pool's connections are in autocommit, and only a transaction switches its
        connection out of it (and back when it returns). The other way round, every read and
        every turn's start and end switched a connection into autocommit and back: ~10 % of a
        gateway's CPU a stored turn (``bench/results/stored_turns.md`` 5.6). READ COMMITTED is
        what the transactions are written for, whatever the server's default."""

    async def read(self, fn: Callable[[Connection], _T], *, long: bool = False) -> _T:
        """Every read, long or short, without a transaction around it. Under READ COMMITTED
        (the server's default, and ours) a transaction would give a read of several statements
        nothing: each statement reads its own snapshot either way. It would cost two round trips,
        and ending it cost more: a read transaction ends with ``ROLLBACK`` when its connection
        goes back to the pool, and psycopg drops every statement it has prepared on a connection
        when it sees a ``ROLLBACK`` there. Measured with 4 gateways taking turns round-robin
        (``bench/results/stored_turns.md`` 5.2): the long reads' rollbacks had the turn's three
        statements planned again on 2 of 3 turns, and PostgreSQL spent ~1.4x the CPU a turn it
        spends without them."""
        return await self._run(fn, self._engine.connect)

    async def write(self, fn: Callable[[Connection], _T], *, long: bool = False, alone: bool = False) -> _T:
        return await self._run(fn, self._engine.connect if alone else self._transactions.begin)

    async def _run(self, fn: Callable[[Connection], _T], open_: Callable[[], Any]) -> _T:
        for attempt in (1, 2):
            context = open_()
            try:
                conn = await context.__aenter__()
            except sa_exc.DBAPIError as exc:
                if attempt == 1 and exc.connection_invalidated:
                    continue
                raise StoreError(f"cannot open the database {describe(self.url)}: {reason(exc)}") from exc
            try:
                result: _T = await conn.run_sync(fn)
            except sa_exc.DBAPIError as exc:
                await _quietly_exit(context, exc)
                if attempt == 1 and exc.connection_invalidated:
                    continue  # nothing was committed: run it again on a fresh connection
                raise StoreError(f"database error on {describe(self.url)}: {reason(exc)}") from exc
            except BaseException as exc:
                await context.__aexit__(type(exc), exc, exc.__traceback__)
                raise
            try:
                await context.__aexit__(None, None, None)
            except sa_exc.DBAPIError as exc:
                raise StoreError(f"database error on {describe(self.url)}: {reason(exc)}") from exc
            return result
        raise AssertionError("unreachable")  # pragma: no cover

    async def forget(self) -> None:
        """Nothing: deleted rows (and their generated tsvectors) are gone for every query at
        commit, but their bytes stay in the table's files until VACUUM reuses the space (VACUUM
        FULL rewrites the files) and in WAL segments until they are recycled. That is the
        server's administration (``docs/reliability.md``)."""

    async def dispose(self) -> None:
        await self._engine.dispose()

    def liveness(self) -> Liveness:
        return PostgresLiveness(self.url.set(drivername="postgresql").render_as_string(hide_password=False))


def json_text(value: Any) -> str:
    """JSON columns as text: orjson (several times faster than the standard library), which
    refuses what JSON numbers cannot hold exactly; the standard library writes those."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return json.dumps(value)


async def _quietly_exit(context: Any, exc: BaseException) -> None:
    """Leave a failed transaction's context (its rollback may fail too on a dead connection)."""
    with contextlib.suppress(sa_exc.DBAPIError):
        await context.__aexit__(type(exc), exc, exc.__traceback__)


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # no implicit BEGIN from the driver: _sqlite_begin emits it
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA wal_autocheckpoint=0")  # a commit never copies the WAL back: checkpoints.py does
    cursor.execute("PRAGMA secure_delete=ON")  # freed space is zeroed: a deleted row's bytes do not stay in the file
    cursor.close()


class _Locked(Exception):
    """A short transaction on the loop found the file locked (it did nothing)."""


def _locked(exc: sa_exc.OperationalError) -> bool:
    return isinstance(exc.orig, sqlite3.OperationalError) and exc.orig.sqlite_errorcode in (
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
    )


def _sqlite_on_connect_no_wait(dbapi_connection: Any, record: Any) -> None:
    """The loop's connection: as every other, but it never waits for a lock (it steps aside)."""
    _sqlite_on_connect(dbapi_connection, record)
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=0")
    cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    options = conn.get_execution_options()
    if not options.get(_NO_BEGIN):
        conn.exec_driver_sql("BEGIN IMMEDIATE" if options.get(_WRITE) else "BEGIN")


NO_FLUSH: sa.Label[Any] = sa.literal_column("set_config('synchronous_commit', 'off', true)").label("multiturn_no_flush")
"""A column that makes its transaction's commit not wait for the disk (PostgreSQL): a statement
the transaction runs anyway can carry it (``core.conversation_row``), saving a round trip."""
_NO_FLUSH = sa.select(NO_FLUSH)


def commit_without_flush(conn: Connection) -> None:
    """This transaction's commit need not wait for the disk: a record whose loss in a crash of
    the database server (or its machine) costs nothing, such as a turn's start (a turn whose
    start is lost was never answered) or a draft. PostgreSQL: ``synchronous_commit`` off for
    this transaction only (the next commit that waits for the disk writes it too; nothing is
    lost when only the gateway dies). SQLite commits that way already (``synchronous=NORMAL``
    in WAL mode)."""
    if flushes_at_commit(conn):
        conn.execute(_NO_FLUSH)


def flushes_at_commit(conn: Connection) -> bool:
    """Whether a commit waits for the disk unless told not to (PostgreSQL, as configured)."""
    return conn.dialect.name == "postgresql"


def purge_fulltext(conn: Connection) -> None:
    """Rewrite the full-text index without the entries deleted so far. FTS5 records a delete as
    a tombstone in a new segment and keeps the old segment, words included, until a merge;
    ``optimize`` merges now, so deleted text does not stay in ``memory_fts_data``. PostgreSQL's
    tsvector is a column of the deleted row: nothing to do."""
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("INSERT INTO memory_fts(memory_fts) VALUES ('optimize')")


def lock_for_migration(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK_KEY})
