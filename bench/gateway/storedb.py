"""The databases behind the gateways under test, seen directly (not through the gateway).

- ``fresh_schema(dsn)``: an empty PostgreSQL schema for one run, dropped afterwards; the gateway
  gets the DSN with ``options=-csearch_path=<schema>`` (as ``tests/conftest.py`` does).
- ``response_statuses(db)``: ``SELECT status, count(*) FROM responses GROUP BY status`` on a
  SQLite file or a PostgreSQL DSN: how many stored turns are left ``in_progress``.
- ``LockSampler``: a thread that counts PostgreSQL sessions waiting on a lock every ~50 ms: the
  run's own (``application_name`` = the schema's name, which ``fresh_schema`` puts in the DSN)
  and the whole cluster's (other users of the cluster, e.g. a test suite, included).
"""

from __future__ import annotations

import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import unquote

LOCK_WAITERS = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
OURS = " AND application_name = %s"
WAIT_EVENTS = (
    "SELECT wait_event, count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
    "AND application_name = %s GROUP BY wait_event"
)


def is_postgres(db: str) -> bool:
    return db.startswith(("postgresql://", "postgres://", "postgresql+"))


def _plain(dsn: str) -> str:
    """A DSN psycopg accepts (no SQLAlchemy driver suffix)."""
    return "postgresql://" + dsn.split("://", 1)[1]


@contextmanager
def fresh_schema(dsn: str, prefix: str = "bench") -> Iterator[str]:
    """Create an empty schema; yield the DSN whose connections use it (and carry its name as
    ``application_name``); drop it (CASCADE)."""
    import psycopg

    schema = f"{prefix}_{secrets.token_hex(5)}"
    with psycopg.connect(_plain(dsn), autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{dsn}?application_name={schema}&options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(_plain(dsn), autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def _schema_of(dsn: str) -> str | None:
    _, _, query = dsn.partition("?")
    for part in query.split("&"):
        key, _, value = part.partition("=")
        if key == "options" and "search_path" in unquote(value):
            return unquote(value).split("search_path=", 1)[1].split()[0]
    return None


def response_statuses(db: str) -> dict[str, int]:
    """The stored responses by status, read from the database file or schema directly."""
    sql = "SELECT status, count(*) FROM responses GROUP BY status"
    if not is_postgres(db):
        lite = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
        try:
            return {status: n for status, n in lite.execute(sql)}
        finally:
            lite.close()
    import psycopg

    with psycopg.connect(_plain(db.split("?", 1)[0]), autocommit=True) as conn:
        schema = _schema_of(db)
        if schema:
            conn.execute(f'SET search_path TO "{schema}"')
        return {status: n for status, n in conn.execute(sql).fetchall()}


def _application_name(dsn: str) -> str | None:
    _, _, query = dsn.partition("?")
    for part in query.split("&"):
        key, _, value = part.partition("=")
        if key == "application_name":
            return unquote(value)
    return None


def postgres_version(dsn: str) -> str:
    import psycopg

    with psycopg.connect(_plain(dsn.split("?", 1)[0]), autocommit=True) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return str(row[0]) if row else "?"


class LockSampler:
    """Count the sessions waiting on a lock (``LOCK_WAITERS``) every ``interval`` s from its own
    connection, between ``start()`` and ``stop()``."""

    def __init__(self, dsn: str, interval: float = 0.05) -> None:
        self.dsn = _plain(dsn.split("?", 1)[0])
        self.app = _application_name(dsn)
        self.interval = interval
        self.samples: list[int] = []  # the run's own sessions (all sessions without an application_name)
        self.cluster: list[int] = []
        self.failures: list[str] = []
        self.events: dict[str, int] = {}
        """What the run's own sessions waited for, by ``wait_event`` (``relation``: a row or
        table lock; ``extend``: a table's file growing; ``advisory``, ``transactionid``...), summed
        over the samples that saw a waiter."""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lock-sampler", daemon=True)

    def start(self) -> LockSampler:
        self._thread.start()
        return self

    def _run(self) -> None:
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True) as conn:
            while not self._stop.is_set():
                started = time.perf_counter()
                try:
                    row = conn.execute(LOCK_WAITERS).fetchone()
                    self.cluster.append(int(row[0]) if row else 0)
                    if self.app:
                        row = conn.execute(LOCK_WAITERS + OURS, (self.app,)).fetchone()
                    self.samples.append(int(row[0]) if row else 0)
                    if self.app and row and row[0]:
                        for event, n in conn.execute(WAIT_EVENTS, (self.app,)).fetchall():
                            self.events[str(event)] = self.events.get(str(event), 0) + int(n)
                except psycopg.Error as exc:  # recorded: a sampler that cannot sample says so
                    self.failures.append(str(exc)[:200])
                self._stop.wait(max(0.0, self.interval - (time.perf_counter() - started)))

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        self._thread.join(10)
        waited = [s for s in self.samples if s > 0]
        return {
            "query": LOCK_WAITERS + (OURS.replace("%s", f"'{self.app}'") if self.app else ""),
            "cluster_samples_with_waiters": sum(1 for s in self.cluster if s > 0),
            "cluster_max_waiters": max(self.cluster, default=0),
            "interval_s": self.interval,
            "samples": len(self.samples),
            "samples_with_waiters": len(waited),
            "max_waiters": max(self.samples, default=0),
            "wait_events": dict(self.events),
            "failures": self.failures[:3],
        }
