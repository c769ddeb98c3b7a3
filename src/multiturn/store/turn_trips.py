"""A turn's start and end in fewer round trips on PostgreSQL (``turns.py`` says what they do).

On PostgreSQL every statement is a round trip to the server, and so are the ``BEGIN`` and the
``COMMIT`` around a transaction's statements: ~0.2-0.3 ms each on one machine, most of it CPU
in the gateway (SQLAlchemy and psycopg) and the server. A Responses turn took 12 (a read, five
to start, six to end); now 3. Here:

- **Start** (a turn that does not wait, with a Responses object and its parent known: every
  turn of a ``previous_response_id`` chain): one statement, run alone (its own transaction, no
  ``BEGIN``/``COMMIT``): it locks the conversation's row, turns its commit's flush off, inserts
  the Responses object and the turn's row, and returns the conversation. The turn's ``seq`` is
  the next value of a sequence (``turns_seq``), not the largest of its conversation plus one:
  the sequence is read after the lock (the inserts select from the locked row), whereas a
  subquery in the same statement would read the turns as they were before the lock was
  granted. The order it gives is the order in which turns took their conversation's lock, as
  before, across processes too.
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

from .dialect import NO_FLUSH
from .liveness import CHANNEL
from .schema import conversations, items, turns
from .schema import responses as responses_table

SEQUENCE = sa.Sequence("turns_seq")
"""The order of turns' arrivals on PostgreSQL (``migrations.m008_turns_seq``)."""

RESPONSE_END = ("status", "output_item_id", "usage", "error", "completed_at")
"""The Responses object's columns a turn's end writes (``end`` takes another set elsewhere)."""


def _typed(prefix: str, table: sa.Table, names: tuple[str, ...]) -> list[sa.BindParameter[Any]]:
    return [sa.bindparam(f"{prefix}{name}", type_=table.c[name].type) for name in names]


_LOCKED = (
    sa.select(*conversations.c, NO_FLUSH)
    .where(conversations.c.id == sa.bindparam("b_conversation"), conversations.c.tenant_id == sa.bindparam("b_tenant"))
    .with_for_update(key_share=True)
    .cte("locked")
)
_RESPONSE_COLUMNS = tuple(column.name for column in responses_table.c)
_TURN_COLUMNS = tuple(column.name for column in turns.c if column.name != "seq")
_INSERT_RESPONSE = (
    responses_table.insert()
    .from_select(_RESPONSE_COLUMNS, sa.select(*_typed("r_", responses_table, _RESPONSE_COLUMNS)).select_from(_LOCKED))
    .returning(responses_table.c.id)
    .cte("response")
)
_INSERT_TURN = (
    turns.insert()
    .from_select(
        (*_TURN_COLUMNS, "seq"),
        sa.select(*_typed("t_", turns, _TURN_COLUMNS), SEQUENCE.next_value()).select_from(_LOCKED),
    )
    .returning(turns.c.id)
    .cte("turn")
)
START = sa.select(*(_LOCKED.c[column.name] for column in conversations.c)).add_cte(_INSERT_RESPONSE, _INSERT_TURN)
"""Lock the conversation, insert the Responses object and the started turn: the conversation's
row, or no row (no such conversation for this tenant: nothing inserted)."""


def start_params(
    conversation_id: str, tenant_id: str, response: dict[str, Any], turn: dict[str, Any]
) -> dict[str, Any]:
    params = {"b_conversation": conversation_id, "b_tenant": tenant_id}
    params.update((f"r_{name}", response[name]) for name in _RESPONSE_COLUMNS)
    params.update((f"t_{name}", turn[name]) for name in _TURN_COLUMNS)
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
"""A function (``migrations.m008_turns_seq``) telling whether another turn of a conversation is
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
