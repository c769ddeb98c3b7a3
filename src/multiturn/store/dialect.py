"""Everything that differs between SQLite and PostgreSQL, in one place.

- URLs: a plain ``postgresql://`` DSN is run through psycopg 3 (async); SQLite through aiosqlite.
- SQLite connections get WAL journaling, a busy timeout and enforced foreign keys. We emit
  the ``BEGIN`` ourselves (the driver's own transaction handling is off): ``BEGIN IMMEDIATE``
  on the writer engine (``writer()``), so a transaction that reads and then writes takes the
  write lock first and waits for it (busy timeout) instead of failing with "database is
  locked" when another writer got there in between; plain (deferred) ``BEGIN`` for reads, so
  readers never wait for writers.
- Migrations on PostgreSQL hold a transaction-level advisory lock, so two processes starting
  at once do not both migrate.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from ..errors import MissingDependency, StoreError
from .liveness import Liveness, PostgresLiveness

SQLITE_BUSY_TIMEOUT_MS = 10_000
MIGRATION_LOCK_KEY = 0x6D74_0001
_WRITE = "multiturn_write"


def normalize_url(url: str) -> sa.URL:
    """Pick the async driver for a URL the user may have written without one."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        return parsed.set(drivername="postgresql+psycopg")
    if backend == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite")
    raise StoreError(f"unsupported database URL {url!r}: use a SQLite path or postgresql://")


def sqlite_file(url: sa.URL) -> Path | None:
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(url.database)


def create_engine(url: str) -> AsyncEngine:
    parsed = normalize_url(url)
    try:
        engine = create_async_engine(parsed, pool_pre_ping=parsed.get_backend_name() != "sqlite")
    except ModuleNotFoundError as exc:
        extra = "postgres" if parsed.get_backend_name() == "postgresql" else "sqlite"
        raise MissingDependency(exc.name or str(exc), extra) from exc
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_on_connect)
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
    return engine


def liveness(url: sa.URL) -> Liveness:
    """How this process owns turns and judges other owners (``liveness.py``)."""
    if url.get_backend_name() == "postgresql":
        return PostgresLiveness(url.set(drivername="postgresql").render_as_string(hide_password=False))
    return Liveness()


def writer(engine: AsyncEngine) -> AsyncEngine:
    """The same engine and pool, for transactions that write (``BEGIN IMMEDIATE`` on SQLite)."""
    return engine.execution_options(**{_WRITE: True})


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # no implicit BEGIN from the driver: _sqlite_begin emits it
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(_WRITE) else "BEGIN")


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
