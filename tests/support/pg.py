"""A fresh PostgreSQL schema per test (or module), dropped afterwards."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import sqlalchemy as sa

PG_DSN = os.environ.get("MULTITURN_TEST_PG_DSN", "")
PARSED_ONCE = (4096, 50)
"""The longest statement, in bytes, and the most parameters whose parsing psycopg keeps
(``psycopg._queries.MAX_CACHED_STATEMENT_LENGTH`` and ``MAX_CACHED_STATEMENT_PARAMS``): a
statement past either is parsed again at every execution."""


@contextmanager
def pg_schema(dsn: str = PG_DSN) -> Iterator[str]:
    """A URL whose ``search_path`` is a new empty schema; the schema is dropped on exit."""
    if not dsn:
        if os.environ.get("CI") == "true":  # CI must test PostgreSQL, never skip it silently
            pytest.fail("PostgreSQL not configured under CI: MULTITURN_TEST_PG_DSN is empty")
        pytest.skip("PostgreSQL not configured: set MULTITURN_TEST_PG_DSN (make test does)")
    schema = f"t_{secrets.token_hex(6)}"
    engine = sa.create_engine(sa.make_url(dsn).set(drivername="postgresql+psycopg"))
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{dsn}?options=-csearch_path%3D{schema}"
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()
