"""A turn's start and end in fewer round trips on PostgreSQL (``turns.py`` says what they do).

On PostgreSQL every statement is a round trip to the server, and so are the ``BEGIN`` and the
``COMMIT`` around a transaction's statements: ~0.2-0.3 ms each on one machine, most of it CPU
in the gateway (SQLAlchemy and psycopg) and the server. A Responses turn took 12 (a read, five
to start, six to end), a stateful chat turn 11; now 3 each. Here:

- **Start**: one statement, run alone (its own transaction, no ``BEGIN``/``COMMIT``): it
  locks the conversation's row, turns its commit's flush off and inserts the turn's row and
  its Responses object, and returns the conversation as locked. For a turn that does not wait
  (its parent known: every turn of a ``previous_response_id`` chain) that is all; a turn at
  the head that waits asks ``turns_ahead``, a ``VOLATILE`` function called on the locked row
  (so after the lock, with a snapshot of its own), for the last open turn: if there is one,
  the turn's row is inserted ``queued`` and no Responses object, else it starts at the head as
  locked. The turn's ``seq`` is the next value of a sequence (``turns_seq``), not the largest
  of its conversation plus one: the sequence is read after the lock (the inserts select from
  the locked row), whereas a subquery in the same statement would read the turns as they were
  before the lock was granted. The order it gives is the order in which turns took their
  conversation's lock, as before, across processes too. When this process has not cached the
  parent's path (another process served the last turns of a chain), the same statement returns
  the items it lacks (``_nearest``): the turn needs no read of its own. Left to ``turns.py``'s
  transaction: a queued turn entering again, an append of items, a parent to check or to find
  from a response, a title to give.
- **End**: one statement, run alone, instead of a transaction of four: it locks the
  conversation's row (always before a turn's row, as every transaction that deletes a
  conversation or a response), deletes the turn's row (none if it was deleted while the lock
  was awaited: then nothing is written), moves the head, inserts the items (sent as one JSON
  array), finishes the Responses object and, when another turn of the conversation is open,
  ``NOTIFY``s. Whether another is open is asked of a ``VOLATILE`` function, which reads with a
  snapshot of its own: the statement's snapshot predates the lock, and would miss a turn
  queued while it waited (that turn, in another process, would then wait for a re-check).
  Every turn's end that stores items takes this path (stateful chat too), not only a chain's.

Both run again on a fresh connection when theirs was found dead (``Database.write``), and may
have committed the first time: a start then fails on its own keys, an end finds its row gone
and its answer stored; ``turns.py`` takes either as done.

SQLite runs ``turns.py``'s statements (a statement there costs ~20-60 µs and no round trip).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from .core import NEAREST
from .dialect import NO_FLUSH
from .liveness import CHANNEL
from .schema import conversations, items, turns
from .schema import responses as responses_table
from .walks import AS_JSON, leaf_and_depth, walk_up

SEQUENCE = sa.Sequence("turns_seq")
"""The order of turns' arrivals on PostgreSQL (``migrations.m008_turn_trips``)."""

RESPONSE_END = ("status", "output_item_id", "usage", "error", "completed_at")
"""The Responses object's columns a turn's end writes (``end`` takes another set elsewhere)."""


def _typed(prefix: str, table: sa.Table, names: tuple[str, ...]) -> list[sa.BindParameter[Any]]:
    return [sa.bindparam(f"{prefix}{name}", type_=table.c[name].type) for name in names]


_ROW = (
    sa.select(*conversations.c, NO_FLUSH)
    .where(conversations.c.id == sa.bindparam("b_conversation"))
    .with_for_update(key_share=True)
    .cte("locked_row")
)
"""The conversation's row, locked: by its id alone, so that every plan reads it through the
primary key. With the tenant in the same condition, a generic plan made before the first
ANALYZE (a 10-page guess, where both indexes cost the same) went through
``ix_conversations_tenant_updated`` and read every conversation of the tenant at each turn."""
_THE_TENANTS = _ROW.c.tenant_id == sa.bindparam("b_tenant")
_LOCKED = sa.select(_ROW.c.id, _ROW.c.head_item_id).where(_THE_TENANTS).cte("locked")
"""The locked row's id and head if it is this tenant's (none for another tenant's id: nothing
is written). Two columns: a start's text stays under the length psycopg parses once
(``walks.AS_JSON``); the statement returns the row's columns from ``_ROW``."""
_RESPONSE_COLUMNS = tuple(column.name for column in responses_table.c)
_TURN_COLUMNS = tuple(column.name for column in turns.c if column.name != "seq")
_QUEUED_COLUMNS = ("status", "inputs", "answer_item_id", "response_id", "started_at")
"""The columns whose value differs between a queued turn and a started one (and ``parent_id``:
none queued, the head as locked started)."""
AHEAD = "turns_ahead"
"""A function (``migrations.m008_turn_trips``) giving a conversation's last open turn (id and
owner), read with a snapshot of its own (``VOLATILE``): called on the locked row, after the
lock, so it sees every turn that arrived before, as a statement after the lock would."""
_AHEAD_FN = getattr(sa.func, AHEAD)(_LOCKED.c.id).table_valued("id", "owner", name="ahead_fn").lateral()
_AHEAD = sa.select(_AHEAD_FN.c.id, _AHEAD_FN.c.owner).select_from(_LOCKED.join(_AHEAD_FN, sa.true())).cte("ahead")
_SOMEONE_AHEAD = sa.exists(sa.select(_AHEAD.c.id))


def _turn_value(name: str, waits: bool) -> sa.ColumnElement[Any]:
    started: sa.ColumnElement[Any] = sa.bindparam(f"t_{name}", type_=turns.c[name].type)
    if not waits:
        return started
    if name == "parent_id":
        return sa.case((_SOMEONE_AHEAD, sa.null()), else_=_LOCKED.c.head_item_id)
    if name in _QUEUED_COLUMNS:
        return sa.case((_SOMEONE_AHEAD, sa.bindparam(f"q_{name}", type_=turns.c[name].type)), else_=started)
    return started


def _nearest(waits: bool) -> sa.Label[Any]:
    """The parent (a turn that waits: the head as locked) and up to ``NEAREST - 1`` of its
    ancestors, none at or above ``b_stop`` (where the caller's cached path ends; null: none), as
    a JSON array of rows, parent first: a turn continuing a chain another process served
    gets the items it lacks in its start's round trip. Read with the statement's snapshot: a
    head committed while the lock was awaited is not found, and the caller reads the path then."""
    leaf = _LOCKED.c.head_item_id if waits else sa.bindparam("b_parent", type_=sa.String)
    stop = sa.bindparam("b_stop", type_=sa.String)
    start = (
        leaf_and_depth(AS_JSON)
        .select_from(_LOCKED.join(items, items.c.id == leaf))
        .where(items.c.conversation_id == _LOCKED.c.id, items.c.id.is_distinct_from(stop))
    )
    walk = walk_up(  # PostgreSQL only: lateral, a lookup by key whatever the plan; each row as JSON
        start,
        "nearest",
        lateral=True,
        going_on=lambda walk: sa.and_(
            walk.c.depth < sa.literal_column(str(NEAREST - 1)), walk.c.parent_id.is_distinct_from(stop)
        ),
        carried=AS_JSON,
    )
    rows = sa.func.json_agg(postgresql.aggregate_order_by(walk.c.row, walk.c.depth))
    return sa.select(rows).select_from(walk).scalar_subquery().label("nearest")


def _start(waits: bool, response: bool, fetch: bool) -> sa.Select[Any]:
    turn = (
        turns.insert()
        .from_select(
            (*_TURN_COLUMNS, "seq"),
            sa.select(*(_turn_value(name, waits) for name in _TURN_COLUMNS), SEQUENCE.next_value()).select_from(
                _LOCKED
            ),
        )
        .returning(turns.c.id)
        .cte("turn")
    )
    columns: list[Any] = [_ROW.c[column.name] for column in conversations.c]
    if waits:
        columns += [
            sa.select(_AHEAD.c.id).scalar_subquery().label("ahead_id"),
            sa.select(_AHEAD.c.owner).scalar_subquery().label("ahead_owner"),
        ]
    if fetch:
        columns.append(_nearest(waits))
    statement = sa.select(*columns).where(_THE_TENANTS).add_cte(turn)
    if response:
        values = sa.select(*_typed("r_", responses_table, _RESPONSE_COLUMNS)).select_from(_LOCKED)
        if waits:
            values = values.where(~_SOMEONE_AHEAD)
        inserted = (
            responses_table.insert()
            .from_select(_RESPONSE_COLUMNS, values)
            .returning(responses_table.c.id)
            .cte("response")
        )
        statement = statement.add_cte(inserted)
    return statement


START = {
    (waits, response, fetch): _start(waits, response, fetch)
    for waits in (False, True)
    for response in (False, True)
    for fetch in (False, True)
}
"""By (the turn waits, it has a Responses object, it fetches the items its cached path lacks):
lock the conversation, then (if nothing is ahead of a turn that waits) insert the Responses
object and the started turn, or (something is ahead) the queued turn. One row: the
conversation as locked, for a turn that waits the turn ahead (``ahead_id``, ``ahead_owner``,
null if none), and if it fetches, ``nearest`` (``_nearest``); no row: no such conversation for
this tenant, nothing inserted."""


def start_params(
    conversation_id: str,
    tenant_id: str,
    turn: dict[str, Any],
    *,
    queued: dict[str, Any] | None = None,
    response: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``turn``: the started turn's row (``parent_id`` unused for a turn that waits: the head);
    ``queued``: the values of ``_QUEUED_COLUMNS`` if it waits and must queue."""
    params = {"b_conversation": conversation_id, "b_tenant": tenant_id}
    params.update((f"t_{name}", turn[name]) for name in _TURN_COLUMNS)
    if queued is not None:
        params.update((f"q_{name}", queued[name]) for name in _QUEUED_COLUMNS)
    if response is not None:
        params.update((f"r_{name}", response[name]) for name in _RESPONSE_COLUMNS)
    return params


_HELD = (
    sa.select(conversations.c.id)
    .where(conversations.c.id == sa.bindparam("b_conversation"))
    .with_for_update(key_share=True)
    .cte("held")
)
_ENDED = (
    turns.delete()
    .where(turns.c.id == sa.bindparam("b_turn"), sa.exists(sa.select(_HELD.c.id)))
    .returning(turns.c.id, turns.c.parent_id, turns.c.response_id, turns.c.conversation_id)
    .cte("ended")
)
"""The conversation's lock first (as every transaction that deletes a conversation or a
response takes it), then the turn's row: gone if it was deleted while the lock was awaited."""
_MOVED = (
    conversations.update()
    .where(conversations.c.id == _ENDED.c.conversation_id)
    .values(head_item_id=sa.bindparam("b_head", type_=sa.String), updated_at=sa.bindparam("b_now", type_=sa.BigInteger))
    .returning(conversations.c.id)
    .cte("moved")
)
_ITEM_COLUMNS = tuple(column.name for column in items.c)
_NEW = (
    sa.func.jsonb_to_recordset(sa.bindparam("b_items", type_=postgresql.JSONB))
    .table_valued(sa.column("first", sa.Boolean), *(sa.column(column.name, column.type) for column in items.c))
    .render_derived("new", with_types=True)
)
_INSERT_ITEMS = (
    items.insert()
    .from_select(
        _ITEM_COLUMNS,
        sa.select(
            *(
                sa.case((_NEW.c.first, _ENDED.c.parent_id), else_=_NEW.c.parent_id)
                if name == "parent_id"
                else _NEW.c[name]
                for name in _ITEM_COLUMNS
            )
        ).select_from(_ENDED.join(_NEW, sa.true())),
    )
    .returning(items.c.id)
    .cte("inserted")
)
"""The first item goes under the parent the turn's row holds now (an erasure may have spliced
the parent the turn started with out of the tree), each next one under the one before."""
_FINISH_RESPONSE = (
    responses_table.update()
    .where(responses_table.c.id == _ENDED.c.response_id)
    .values({name: sa.bindparam(f"f_{name}", type_=responses_table.c[name].type) for name in RESPONSE_END})
    .returning(responses_table.c.id)
    .cte("finished")
)
BESIDES = "turns_besides"
"""A function (``migrations.m008_turn_trips``) telling whether another turn of a conversation is
open. Being ``VOLATILE``, it reads with a snapshot of its own, taken when it is called: after
the lock, so it sees a turn queued while this statement waited for it, which the statement's
own snapshot (taken before) would not."""
_ANNOUNCE = sa.case(
    (
        getattr(sa.func, BESIDES)(_ENDED.c.conversation_id, _ENDED.c.id, type_=sa.Boolean),
        sa.func.pg_notify(CHANNEL, _ENDED.c.id),
    )
).label("announced")
"""Only then may a turn wait for this one, and only then is its end announced."""
END = sa.select(_ENDED.c.parent_id, _ANNOUNCE).add_cte(_MOVED, _INSERT_ITEMS)
"""Lock the conversation, delete the turn's row, move the head, insert the items, announce the
end: one row, or none (the turn was no longer open: nothing written)."""
END_FINISHING = END.add_cte(_FINISH_RESPONSE)
"""The same, finishing the turn's Responses object too."""


def end_params(
    turn_id: str, conversation_id: str, rows: list[dict[str, Any]], response: dict[str, Any] | None, now: int
) -> dict[str, Any]:
    """``rows``: the items' rows (``rows.item_row``), chained, the last one the new head;
    ``response``: ``RESPONSE_END``'s values, or ``None``."""
    params: dict[str, Any] = {
        "b_turn": turn_id,
        "b_conversation": conversation_id,
        "b_head": rows[-1]["id"],
        "b_now": now,
        "b_items": [{"first": n == 0, **row} for n, row in enumerate(rows)],
    }
    if response is not None:
        params.update((f"f_{name}", response[name]) for name in RESPONSE_END)
    return params
