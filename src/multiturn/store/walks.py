"""Walking up a path of items in SQL, one keyed lookup per step.

A path is a chain of ``items`` rows by ``parent_id``; reading one back is a recursive CTE whose
step finds the parent of the row it reached. Written as a join, PostgreSQL may plan that step
as a hash join over a scan of ``items``: the generic plan it keeps for a prepared statement is
made with the statistics of its first executions, and on a fresh database, before its first
``ANALYZE``, those are a 10-page guess. The plan then scans the whole table at every step as it
grows (``bench/results/stored_turns.md`` 5.4). On PostgreSQL the step is a ``LATERAL``
subquery with ``LIMIT 1``, which the planner does not flatten back into a join, so every plan
of it is a lookup by key. SQLite has no ``LATERAL`` and plans the join as a lookup by key.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa

from .schema import items

AS_JSON: tuple[sa.ColumnElement[Any], ...] = (
    sa.func.row_to_json(items.table_valued()).label("row"),
    items.c.parent_id,
)
"""What a walk can carry of each row instead of every column (PostgreSQL): the row as one JSON
value (``row``) and its ``parent_id``. A walk carrying every column names each column of
``items`` three times; psycopg parses a statement once only while it is at most 4,096 bytes
long (and has at most 50 parameters), and a turn's start with such a walk was 4,103-5,690
bytes, parsed again at every turn another process had served the last of."""


def walk_up(
    start: sa.Select[Any],
    name: str,
    *,
    lateral: bool,
    going_on: Callable[[sa.CTE], sa.ColumnElement[bool]] | None = None,
    carried: Sequence[sa.ColumnElement[Any]] = tuple(items.c),
) -> sa.CTE:
    """The recursive CTE ``name``: the ``items`` rows ``start`` selects (``leaf_and_depth``
    with the same ``carried``: every column, or ``AS_JSON``, and a ``depth`` of 0), then their
    ancestors one step at a time (``depth`` + 1), each step the parent looked up by key (a
    ``LATERAL`` subquery on PostgreSQL: ``lateral``), for as long as ``going_on(walk)`` holds
    of the row the step starts from (always, without it)."""
    walk = start.cte(name, recursive=True)
    if lateral:
        parent = (
            sa.select(*carried).where(items.c.id == walk.c.parent_id).limit(sa.literal_column("1")).lateral("parent")
        )
        source: sa.FromClause = walk.join(parent, sa.true())
        columns: Any = parent.c
    else:
        source, columns = items.join(walk, items.c.id == walk.c.parent_id), carried
    step = sa.select(*columns, (walk.c.depth + sa.literal_column("1")).label("depth")).select_from(source)
    return walk.union_all(step if going_on is None else step.where(going_on(walk)))


def leaf_and_depth(carried: Sequence[sa.ColumnElement[Any]] = tuple(items.c)) -> sa.Select[Any]:
    """``SELECT <carried>, 0 AS depth`` (every column of ``items``, or ``AS_JSON``): the start
    of a walk, to which a caller adds its ``FROM`` and ``WHERE``."""
    return sa.select(*carried, sa.literal_column("0").label("depth"))


def item_columns(walk: sa.CTE) -> sa.Select[Any]:
    """The rows a walk carried, as ``items`` columns (no join back to ``items``, which a plan
    could make a scan too)."""
    return sa.select(*(walk.c[column.name] for column in items.c))
