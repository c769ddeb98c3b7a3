"""Looking for words in a store, around the store's own queries: every table's every column
(enumerated from the database itself, so a table added later is looked at too) and the
dialect's full-text index."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from multiturn.store import SQLStore


def rows_naming(conn: Connection, needles: set[str]) -> list[tuple[str, str, Any]]:
    """Every (table, column, value) of the database whose value contains one of ``needles``."""
    found: list[tuple[str, str, Any]] = []
    inspector = sa.inspect(conn)
    for table_name in inspector.get_table_names():
        columns = [column["name"] for column in inspector.get_columns(table_name)]
        table = sa.table(table_name, *(sa.column(name) for name in columns))
        for row in conn.execute(sa.select(table)).mappings():
            for column, value in row.items():
                if value is None:
                    continue
                text = bytes(value).decode("latin-1") if isinstance(value, bytes | memoryview) else str(value)
                if any(needle in text for needle in needles):
                    found.append((table_name, column, text[:80]))
    return found


async def leftovers(store: SQLStore, needles: set[str]) -> list[tuple[str, str, Any]]:
    return await store._read(lambda conn: rows_naming(conn, needles))


async def fts_hits(store: SQLStore, word: str) -> int:
    """Rows the dialect's full-text index still matches for ``word`` (not through the store)."""
    if store.dialect == "sqlite":
        query = sa.text("SELECT count(*) FROM memory_fts WHERE memory_fts MATCH :w")
    else:
        query = sa.text("SELECT count(*) FROM memory_entries WHERE text_tsv @@ to_tsquery('english', :w)")
    return await store._read(lambda conn: int(conn.execute(query, {"w": word}).scalar_one()))


def in_files(database: Path, word: str) -> list[str]:
    """The names of a SQLite database's files (the file and its WAL) whose bytes hold ``word``."""
    files = [database, Path(f"{database}-wal")]
    return [p.name for p in files if p.exists() and word.encode() in p.read_bytes()]
