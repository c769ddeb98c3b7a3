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

from typing import Any

import sqlalchemy as sa

from .schema import items


def step_up(walk: sa.CTE, *, lateral: bool) -> tuple[sa.FromClause, Any]:
    """The FROM clause of one step up from ``walk`` (a recursive CTE with a ``parent_id``
    column) and the columns of the parent row it reaches: ``(source, parent)``, for
    ``sa.select(parent.id, ...).select_from(source)``."""
    if lateral:
        parent = sa.select(items).where(items.c.id == walk.c.parent_id).limit(sa.literal_column("1")).lateral("parent")
        return walk.join(parent, sa.true()), parent.c
    return items.join(walk, items.c.id == walk.c.parent_id), items.c


def item_columns(walk: sa.CTE) -> sa.Select[Any]:
    """The rows a walk carried, as ``items`` columns (no join back to ``items``, which a plan
    could make a scan too)."""
    return sa.select(*(walk.c[column.name] for column in items.c))
