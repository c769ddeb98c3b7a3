"""Open turns in the store: the queue of a conversation's turns and their durable state.

A stored turn has a row in ``turns`` from its arrival to its end, and only then; the row is
deleted in the transaction that stores the turn's outcome, so an open turn is exactly a row.

- **Arrival** (``enter``, under the conversation's lock): the turn takes the next ``seq`` of its
  conversation. A turn that ``waits`` (every turn at the head, and an append of items) starts
  only when no turn before it is open: otherwise it is recorded as ``queued`` and the caller waits
  for the turn ahead to end, then calls ``enter`` again. A turn at an explicit parent (a branch:
  ``previous_response_id``, a retry) does not wait.
- **Start**, in the same transaction as its last ``enter``: the parent is fixed (the head as it
  is now, or the parent asked for, which must exist), the row becomes ``generating``, the
  Responses object (if any) is inserted ``in_progress``. The turn's input items are already in
  the row with their ids; they are written to ``items`` only when the turn ends, together with
  the answer, so a turn refused after planning (over the budget) leaves nothing behind.
  The start's commit does not wait for the disk (asked by the statement that locks the
  conversation, ``conversation_row(flush=False)``; drafts by ``dialect.commit_without_flush``):
  if the database server dies before the end, the turn was never answered, and the end's
  commit, which does wait, makes the start durable with it. One flush a turn, not two.
- **End** (``end``): the input items and the answer are inserted under the parent, the head
  moves to the answer, the Responses object is finished, the row is deleted, and (PostgreSQL)
  ``NOTIFY`` tells the other processes. When the row is gone (its conversation or response was
  deleted meanwhile) or its parent was deleted, nothing is written and ``end`` says so.
- **Abandoned** turns (their owner process died: ``liveness.py``) are closed by whoever finds
  them (``close_abandoned``): a queued one is deleted (it wrote nothing, and its client got no
  answer); a generating one gets its inputs written and an ``incomplete`` answer holding the
  ``draft`` the owner saved (possibly empty), and its Responses object becomes ``incomplete``,
  so a chain continues from it.

Every transaction here is short: a few indexed reads and writes, never a model call. On
PostgreSQL a turn's start (unless it enters again after queueing, appends items, or must check
or find its parent) and every end that stores items are one statement each, lock included
(``turn_trips.py``): fewer round trips, the same rows.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, TypeAlias

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection

from .. import codec
from ..errors import NotFound, StoreError
from ..ids import now_ms
from ..records import ConversationRecord, ItemRecord, NewItem
from ..types import ContextReport, TextPart
from . import responses, turn_trips
from .core import StoreCore, conversation_row
from .dialect import commit_without_flush
from .liveness import CHANNEL, Wake
from .rows import conversation_record, item_row
from .schema import conversations, items, turns
from .schema import responses as responses_table

TurnStatus: TypeAlias = Literal["queued", "generating"]
ABANDONED = "the process answering this turn stopped before it finished"
"""The error recorded on a turn closed because its owner died."""


@dataclass(frozen=True, slots=True)
class TurnEntry:
    """A turn as it arrives: who runs it, what it will write, and where.

    ``inputs`` are written, in order and chained, under the parent when the turn ends (their
    ids and the answer's are chosen when the turn starts, so ids follow the order in which turns
    really ran). The parent is the head when the turn starts (``parent_id`` and
    ``after_response`` ``None``), ``parent_id``, or the output item of the response
    ``after_response``. ``answers=False`` is an append of items with no answer: they are
    written as the turn starts, and it ends there. ``response`` is recorded (``in_progress``,
    with the input ids filled in) when the turn starts.
    """

    id: str
    tenant_id: str
    conversation_id: str
    owner: str
    inputs: tuple[NewItem, ...]
    parent_id: str | None = None
    parent_known: bool = False
    """The caller has just read ``parent_id`` where it cannot be missing (a finished response's
    answer): it is not checked again here (the end of the turn would still find it gone)."""
    after_response: str | None = None
    waits: bool = True
    answers: bool = True
    response: responses.ResponseRecord | None = None
    title: str | None = None
    model: str | None = None


@dataclass(frozen=True, slots=True)
class Started:
    """The turn has started: its conversation as it was then, the parent its items go under,
    and the ids its inputs and its answer have."""

    conversation: ConversationRecord
    parent_id: str | None
    started_at: int
    input_ids: tuple[str, ...]
    answer_id: str
    written: tuple[ItemRecord, ...] = ()
    """Items written at the start (an append of items, ``answers=False``)."""


@dataclass(frozen=True, slots=True)
class Blocked:
    """The turn is queued behind another open turn of its conversation."""

    turn_id: str
    owner: str


@dataclass(frozen=True, slots=True)
class OpenTurn:
    id: str
    tenant_id: str
    conversation_id: str
    owner: str
    status: TurnStatus


_OPEN = (
    sa.select(turns.c.id, turns.c.owner, turns.c.seq)
    .where(turns.c.conversation_id == sa.bindparam("b_conversation"))
    .order_by(turns.c.seq)
)
_INSERT_ITEMS = items.insert()
_UPDATE_TURN = turns.update().where(turns.c.id == sa.bindparam("b_turn"))
_LOCK_CONVERSATION = (
    sa.select(conversations.c.id)
    .where(conversations.c.id == sa.bindparam("b_conversation"))
    .with_for_update(key_share=True)
)
_UPDATE_CONVERSATION = conversations.update().where(conversations.c.id == sa.bindparam("b_conversation"))
_OUTPUT = sa.select(responses_table.c.output_item_id).where(
    responses_table.c.id == sa.bindparam("b_response"),
    responses_table.c.conversation_id == sa.bindparam("b_conversation"),
)
_OTHERS = sa.alias(turns, "others")
_INSERT_TURN_NEXT = turns.insert().values(
    seq=sa.select(sa.func.coalesce(sa.func.max(_OTHERS.c.seq), 0) + 1)
    .where(_OTHERS.c.conversation_id == sa.bindparam("b_conversation"))
    .scalar_subquery()
)
"""A new turn takes the next ``seq`` in its insert (under the conversation's lock, as every
``enter``), so a turn that does not wait needs no read of the open turns. PostgreSQL: the next
value of ``turns_seq`` (``turn_trips.py``: a start in one statement must not read the turns)."""
_INSERT_TURN_NEXT_PG = turns.insert().values(seq=turn_trips.SEQUENCE.next_value())


def _insert_turn(conn: Connection) -> sa.Insert:
    return _INSERT_TURN_NEXT_PG if conn.dialect.name == "postgresql" else _INSERT_TURN_NEXT


_END_TURN = (
    turns.delete()
    .where(turns.c.id == sa.bindparam("b_turn"))
    .returning(
        turns.c.parent_id,
        turns.c.response_id,
        sa.exists()
        .where(_OTHERS.c.conversation_id == turns.c.conversation_id, _OTHERS.c.id != turns.c.id)
        .label("others"),
    )
)
"""Statements of the hot path, built once: values are bound at execution (building a statement
with its values costs more than running it on SQLite). Deleting a turn's row also says whether
another turn of its conversation is open: only then can a turn be waiting for this one, and only
then is its end announced (PostgreSQL's ``NOTIFY`` serializes the commits of every transaction
that notifies, and wakes every gateway)."""


def chain(
    inputs: Sequence[NewItem], ids: Sequence[str], conversation_id: str, parent_id: str | None, at: int
) -> list[ItemRecord]:
    """The records ``inputs`` become under ``parent_id``, with ``ids``, each the parent of the next."""
    records: list[ItemRecord] = []
    for new, item_id in zip(inputs, ids, strict=True):
        records.append(
            ItemRecord(
                id=item_id,
                conversation_id=conversation_id,
                parent_id=records[-1].id if records else parent_id,
                role=new.role,
                content=new.content,
                status=new.status,
                created_at=at,
                reasoning=new.reasoning,
                tool_calls=new.tool_calls,
                tool_call_id=new.tool_call_id,
                model=new.model,
                usage=new.usage,
                finish_reason=new.finish_reason,
                token_count=new.token_count,
                context_report=new.context_report,
            )
        )
    return records


@dataclass(frozen=True, slots=True)
class _Open:
    id: str
    owner: str
    seq: int


def locked_with_turns(
    conn: Connection, conversation_id: str, tenant_id: str, *, flush: bool = True
) -> tuple[ConversationRecord, list[_Open]]:
    """The conversation's row, locked, then its open turns in queue order. Two statements, not
    a join: PostgreSQL re-reads a row it waited to lock, but not the rows joined to it, so a
    join would see the turns as they were before the wait (and two turns took one ``seq``).
    ``flush`` as for ``conversation_row``. Raises NotFound: no such conversation for this tenant."""
    conversation = conversation_row(conn, conversation_id, tenant_id, lock=True, flush=flush)
    rows = conn.execute(_OPEN, {"b_conversation": conversation_id})
    return conversation, [_Open(row.id, row.owner, row.seq) for row in rows]


def _split(entry: TurnEntry, ids: Sequence[str]) -> tuple[tuple[str, ...], str]:
    """``ids`` (one more than the inputs) as the inputs' ids and the answer's id."""
    return tuple(ids[: len(entry.inputs)]), ids[len(entry.inputs)]


def _started(
    entry: TurnEntry, parent: str | None, input_ids: Sequence[str], answer_id: str, now: int
) -> dict[str, Any]:
    """What a started turn's row holds beyond a queued one's (``_row``)."""
    return {
        "status": "generating",
        "parent_id": parent,
        "inputs": encode_inputs(entry.inputs, input_ids),
        "answer_item_id": answer_id,
        "response_id": entry.response.id if entry.response is not None else None,
        "started_at": now,
    }


def enter(
    conn: Connection,
    entry: TurnEntry,
    conversation: ConversationRecord,
    open_turns: Sequence[_Open],
    ids: Sequence[str],
    now: int,
) -> Started | Blocked:
    """Queue the turn, or start it (see the module docstring), giving its inputs and its answer
    ``ids`` (one more than the inputs) if it starts. The caller holds the conversation's lock.
    ``open_turns`` are not read for a turn that does not wait (empty): a new turn's row takes
    the next ``seq`` in its insert.

    Raises:
        NotFound: the explicit parent is not in this conversation, or ``after_response`` is
            not a response of it.
    """
    row = next((turn for turn in open_turns if turn.id == entry.id), None)
    if entry.waits:
        ahead = next((turn for turn in reversed(open_turns) if row is None or turn.seq < row.seq), None)
        if ahead is not None:
            if row is None:
                conn.execute(_insert_turn(conn), _row(entry, now))
            return Blocked(ahead.id, ahead.owner)
    parent = _parent(conn, entry, conversation)
    input_ids, answer_id = _split(entry, ids)
    if entry.response is not None:
        responses.insert(conn, replace(entry.response, input_item_ids=input_ids))
    values: dict[str, Any] = {}
    if entry.title is not None and conversation.title is None:
        values["title"] = entry.title
    written: tuple[ItemRecord, ...] = ()
    if not entry.answers:
        written = tuple(chain(entry.inputs, input_ids, entry.conversation_id, parent, now))
        conn.execute(_INSERT_ITEMS, [item_row(record) for record in written])
        values.update(head_item_id=written[-1].id, updated_at=now)
        if row is not None:
            conn.execute(turns.delete().where(turns.c.id == entry.id))
            notify(conn, entry.id)
    else:
        started = _started(entry, parent, input_ids, answer_id, now)
        if row is None:
            conn.execute(_insert_turn(conn), {**_row(entry, now), **started})
        else:
            conn.execute(_UPDATE_TURN, {"b_turn": entry.id, **started})
    if values:
        conn.execute(_UPDATE_CONVERSATION, {"b_conversation": entry.conversation_id, **values})
    now_conversation = conversation if "title" not in values else replace(conversation, title=values["title"])
    return Started(now_conversation, parent, now, input_ids, answer_id, written)


def _starts_in_one(entry: TurnEntry, queued: set[str]) -> bool:
    """Whether ``enter`` would only lock, read the turn ahead (a turn that waits) and insert:
    PostgreSQL does that in one statement (``turn_trips.py``). Not for a turn already queued
    (``queued``: its row exists), an append of items, an explicit parent not known to exist, a
    response to find, or a title to give."""
    if not entry.answers or entry.title is not None or entry.after_response is not None or entry.id in queued:
        return False
    if entry.waits:
        return entry.parent_id is None
    return entry.parent_id is not None and entry.parent_known


def _start_in_one(
    conn: Connection, entry: TurnEntry, ids: Sequence[str], now: int, fetch: bool, stop: str | None
) -> tuple[Started | Blocked, list[dict[str, Any]]]:
    """``enter`` for a turn of which ``_starts_in_one``, as one statement run alone, and (if
    ``fetch``) the rows of its parent and the ancestors below ``stop`` (``turn_trips._nearest``).
    Raises NotFound: no such conversation for this tenant."""
    input_ids, answer_id = _split(entry, ids)
    queued = _row(entry, now)
    turn = {**queued, **_started(entry, entry.parent_id, input_ids, answer_id, now)}
    response = responses.row(replace(entry.response, input_item_ids=input_ids)) if entry.response else None
    params = turn_trips.start_params(
        entry.conversation_id, entry.tenant_id, turn, queued=queued if entry.waits else None, response=response
    )
    params.update(b_parent=entry.parent_id, b_stop=stop)
    row = conn.execute(turn_trips.START[(entry.waits, response is not None, fetch)], params).mappings().first()
    if row is None:
        raise NotFound(f"conversation {entry.conversation_id!r} not found")
    if entry.waits and row["ahead_id"] is not None:
        return Blocked(row["ahead_id"], row["ahead_owner"]), []
    conversation = conversation_record(row)
    parent = conversation.head_item_id if entry.waits else entry.parent_id
    return Started(conversation, parent, now, input_ids, answer_id), (row["nearest"] or []) if fetch else []


def _started_before(conn: Connection, entry: TurnEntry, ids: Sequence[str]) -> Started | None:
    """The start of a turn whose one-statement start committed although its caller got an
    error (its connection died after the commit); ``None`` if it was queued."""
    row = conn.execute(sa.select(turns).where(turns.c.id == entry.id)).mappings().first()
    if row is None or row["status"] != "generating":
        return None
    conversation = conversation_row(conn, entry.conversation_id, entry.tenant_id)
    return Started(conversation, row["parent_id"], row["started_at"], *_split(entry, ids))


def _parent(conn: Connection, entry: TurnEntry, conversation: ConversationRecord) -> str | None:
    if entry.after_response is not None:
        found = conn.execute(_OUTPUT, {"b_response": entry.after_response, "b_conversation": entry.conversation_id})
        output = found.scalar()
        if output is None:
            raise NotFound(f"Previous response with id '{entry.after_response}' not found.")
        return str(output)
    if entry.parent_id is not None:
        if not entry.parent_known:
            _require_item(conn, entry.parent_id, entry.conversation_id)
        return entry.parent_id
    return conversation.head_item_id


def end(
    conn: Connection,
    turn_id: str,
    conversation_id: str,
    records: Sequence[ItemRecord],
    response: dict[str, Any] | None,
    now: int,
    *,
    discard: bool = False,
) -> bool:
    """Store a turn's outcome (``records``: its inputs and its answer, chained under its parent)
    and delete its row. ``False``, writing nothing, when the turn is no longer open (its
    conversation or response was deleted while it ran). ``discard``: the turn ends with nothing
    stored, its Responses object deleted (a turn refused before it reached the model). Raises
    ``sa.exc.IntegrityError`` when its parent was deleted meanwhile (the caller rolls back and
    calls ``drop``). The caller holds the conversation's lock, or takes it here: the
    conversation's row is always locked before a turn's row."""
    if records and not discard:
        move = {"b_conversation": conversation_id, "head_item_id": records[-1].id, "updated_at": now}
        conn.execute(_UPDATE_CONVERSATION, move)  # the conversation's lock, before the turn's row
    else:
        conn.execute(_LOCK_CONVERSATION, {"b_conversation": conversation_id})
    row = conn.execute(_END_TURN, {"b_turn": turn_id}).first()
    if row is None:
        return False
    if discard:
        if row.response_id is not None:
            conn.execute(responses_table.delete().where(responses_table.c.id == row.response_id))
    else:
        if records and records[0].parent_id != row.parent_id:  # an erasure spliced the turn's parent out
            records = [dataclasses.replace(records[0], parent_id=row.parent_id), *records[1:]]
        if records:
            conn.execute(_INSERT_ITEMS, [item_row(record) for record in records])
        if response is not None and row.response_id is not None:
            responses.finish(conn, row.response_id, {**response, "completed_at": now})
    if row.others:  # a turn may be queued behind this one, in this process or another
        notify(conn, turn_id)
    return True


_RESPONSE_END = frozenset(turn_trips.RESPONSE_END) - {"completed_at"}


def _ends_in_one(records: Sequence[ItemRecord], response: dict[str, Any] | None, discard: bool) -> bool:
    """Whether ``end`` would lock, delete the row, move the head, insert ``records`` and finish
    the Responses object: PostgreSQL does that in one statement (``turn_trips.py``)."""
    return bool(records) and not discard and (response is None or response.keys() == _RESPONSE_END)


def _end_in_one(
    conn: Connection,
    turn_id: str,
    conversation_id: str,
    records: Sequence[ItemRecord],
    response: dict[str, Any] | None,
    now: int,
) -> bool:
    """``end`` for a turn of which ``_ends_in_one``, as one statement run alone."""
    if response is not None:
        response = responses.encoded({**response, "completed_at": now})
    statement = turn_trips.END if response is None else turn_trips.END_FINISHING
    params = turn_trips.end_params(turn_id, conversation_id, [item_row(record) for record in records], response, now)
    if conn.execute(statement, params).first() is not None:
        return True
    return _exists(conn, records[-1].id, conversation_id)  # it had run: its connection died after the commit


def drop(conn: Connection, turn_id: str) -> None:
    """Close a turn with nothing stored (its parent is gone)."""
    conn.execute(turns.delete().where(turns.c.id == turn_id))
    notify(conn, turn_id)


def leave(conn: Connection, turn_id: str, conversation_id: str) -> None:
    """Forget a queued turn (its client left before it started); a started one is left alone."""
    gone = conn.execute(turns.delete().where(turns.c.id == turn_id, turns.c.status == "queued"))
    if gone.rowcount:
        notify(conn, turn_id)


def write_draft(conn: Connection, turn_id: str, text: str) -> None:
    conn.execute(turns.update().where(turns.c.id == turn_id).values(draft=text))


def ahead_of(conn: Connection, turn_id: str, conversation_id: str) -> Blocked | None:
    """The open turn right before ``turn_id`` in its conversation's queue (a read: no lock)."""
    mine = sa.select(turns.c.seq).where(turns.c.id == turn_id).scalar_subquery()
    row = (
        conn.execute(
            sa.select(turns.c.id, turns.c.owner)
            .where(turns.c.conversation_id == conversation_id, turns.c.seq < mine)
            .order_by(turns.c.seq.desc())
            .limit(1)
        )
    ).first()
    return Blocked(row.id, row.owner) if row is not None else None


def open_turns(conn: Connection, *, owner: str | None = None) -> list[OpenTurn]:
    query = sa.select(turns.c.id, turns.c.tenant_id, turns.c.conversation_id, turns.c.owner, turns.c.status)
    if owner is not None:
        query = query.where(turns.c.owner == owner)
    return [OpenTurn(*row) for row in conn.execute(query.order_by(turns.c.conversation_id, turns.c.seq))]


def close_abandoned(conn: Connection, turn_id: str, model_fallback: str | None, now: int) -> bool:
    """Close a dead owner's turn (see the module docstring); ``False`` if it is already closed.
    The caller holds the conversation's lock and has checked that the owner is dead."""
    row = (conn.execute(sa.select(turns).where(turns.c.id == turn_id))).mappings().first()
    if row is None:
        return False
    conversation_id = row["conversation_id"]
    if row["status"] == "queued":
        conn.execute(turns.delete().where(turns.c.id == turn_id))
        notify(conn, turn_id)
        return True
    if row["parent_id"] is not None and not _exists(conn, row["parent_id"], conversation_id):
        drop(conn, turn_id)  # its parent was deleted: there is nothing to continue
        return True
    draft = row["draft"] or ""
    answer = NewItem(
        id=row["answer_item_id"],
        role="assistant",
        content=(TextPart(draft),) if draft else (),
        status="incomplete",
        model=row["model"] or model_fallback,
        finish_reason="error",
        context_report=ContextReport.unplanned(ABANDONED),
    )
    inputs = [*decode_inputs(row["inputs"]), answer]
    ids = [str(new.id) for new in inputs]
    records = chain(inputs, ids, conversation_id, row["parent_id"], row["started_at"] or now)
    response = {
        "status": "incomplete",
        "output_item_id": answer.id,
        "usage": None,
        "error": {"code": "server_error", "message": ABANDONED},
    }
    return end(conn, turn_id, conversation_id, records, response, now)


def notify(conn: Connection, turn_id: str) -> None:
    """Announce (PostgreSQL, on commit) that the turn ``turn_id`` ended or left its queue."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.select(sa.func.pg_notify(CHANNEL, turn_id)))


def encode_inputs(inputs: Sequence[NewItem], ids: Sequence[str] | None) -> list[dict[str, Any]]:
    return [
        {
            "id": ids[n] if ids is not None else None,
            "role": new.role,
            "content": codec.encode_parts(new.content),
            "tool_calls": codec.encode_tool_calls(new.tool_calls) if new.tool_calls else None,
            "tool_call_id": new.tool_call_id,
            "token_count": new.token_count,
        }
        for n, new in enumerate(inputs)
    ]


def decode_inputs(data: Sequence[dict[str, Any]]) -> list[NewItem]:
    return [
        NewItem(
            id=d["id"],
            role=d["role"],
            content=codec.decode_parts(d["content"]),
            tool_calls=codec.decode_tool_calls(d.get("tool_calls")),
            tool_call_id=d.get("tool_call_id"),
            token_count=d.get("token_count"),
        )
        for d in data
    ]


def _row(entry: TurnEntry, now: int) -> dict[str, Any]:
    """A queued turn's row for ``_INSERT_TURN_NEXT`` (``enter`` adds what a started one has)."""
    return {
        "id": entry.id,
        "tenant_id": entry.tenant_id,
        "conversation_id": entry.conversation_id,
        "b_conversation": entry.conversation_id,
        "status": "queued",
        "waits": entry.waits,
        "owner": entry.owner,
        "parent_id": None,
        "inputs": encode_inputs(entry.inputs, None),
        "answer_item_id": None,
        "response_id": None,
        "model": entry.model,
        "draft": None,
        "created_at": now,
        "started_at": None,
    }


def _exists(conn: Connection, item_id: str, conversation_id: str) -> bool:
    found = conn.execute(sa.select(items.c.id).where(items.c.id == item_id, items.c.conversation_id == conversation_id))
    return found.first() is not None


def _require_item(conn: Connection, item_id: str, conversation_id: str) -> None:
    if not _exists(conn, item_id, conversation_id):
        raise NotFound(f"item {item_id!r} not found in conversation {conversation_id!r}")


class _Closed(Exception):
    """The turn was no longer open: roll its end back."""


class TurnTables(StoreCore):
    """The store's side of the turn lifecycle (``engine/turns.py`` runs it)."""

    @property
    def owner(self) -> str:
        """This process's owner token (``liveness.py``)."""
        return self.liveness.token

    @property
    def announces_turn_ends(self) -> bool:
        """Whether turns ending in other processes are announced (PostgreSQL) or must be polled."""
        return self.liveness.notifies

    async def own_turns(self, wake: Wake) -> None:
        """Start owning turns as this process; ``wake(turn_id)`` hears of turns that ended in
        other processes. Raises StoreError: the database cannot be reached."""
        try:
            await self.liveness.start(wake)
        except Exception as exc:
            raise StoreError(f"cannot open the database {self._describe()}: {exc}") from exc

    async def enter_turn(self, entry: TurnEntry) -> Started | Blocked:
        """Queue or start a turn (module docstring). Raises NotFound: the conversation (of this
        tenant), or an explicit parent in it, does not exist."""

        if self._db.dialect == "postgresql" and _starts_in_one(entry, self._queued):
            ids = [self._ids("item") for _ in range(len(entry.inputs) + 1)]
            now = now_ms()
            outcome: Started | Blocked | None
            # the parent's path, if not cached here (another process served the last turns), comes with the start
            fetch = entry.waits or self._paths.get(entry.parent_id or "") is None
            stop = self._paths.latest(entry.conversation_id)
            try:
                outcome, nearest = await self._write(
                    lambda conn: _start_in_one(conn, entry, ids, now, fetch, stop), alone=True
                )
                if isinstance(outcome, Started) and nearest:
                    path = self._below_cached(nearest)
                    if path is not None and path[-1].id == outcome.parent_id:
                        self._paths.put(path[-1].id, path)
            except StoreError as exc:
                if not isinstance(exc.__cause__, sa_exc.IntegrityError):
                    raise
                # it ran twice: the first run committed, then its connection died before the answer
                outcome = await self._read(lambda conn: _started_before(conn, entry, ids))
                # None: it was queued; enter below as a queued turn does
            if isinstance(outcome, Blocked):
                self._queued.add(entry.id)  # its row exists: it enters again below
            if outcome is not None:
                return outcome
        else:
            self._queued.discard(entry.id)

        def run(conn: Connection) -> Started | Blocked:
            flush = not entry.answers  # a turn that answers writes no item at its start: lost harmlessly
            if entry.waits:
                conversation, open_turns = locked_with_turns(conn, entry.conversation_id, entry.tenant_id, flush=flush)
            else:  # a branch: it queues behind nothing, so the open turns need not be read
                conversation = conversation_row(conn, entry.conversation_id, entry.tenant_id, lock=True, flush=flush)
                open_turns = []
            ids = [self._ids("item") for _ in range(len(entry.inputs) + 1)]
            return enter(conn, entry, conversation, open_turns, ids, now_ms())

        outcome = await self._write(run)
        if isinstance(outcome, Started) and outcome.written:
            self._paths.extend(outcome.parent_id, outcome.written)
        return outcome

    async def turn_ahead(self, turn_id: str, conversation_id: str) -> Blocked | None:
        return await self._read(lambda conn: ahead_of(conn, turn_id, conversation_id))

    async def end_turn(
        self,
        turn_id: str,
        conversation_id: str,
        records: Sequence[ItemRecord],
        *,
        response: dict[str, Any] | None = None,
        parent_id: str | None = None,
        discard: bool = False,
    ) -> bool:
        """Store a started turn's outcome; ``False`` when it could not be (see ``end``)."""

        def run(conn: Connection) -> None:
            if not end(conn, turn_id, conversation_id, records, response, now_ms(), discard=discard):
                raise _Closed  # roll back: the conversation's head and time stay as they were

        def run_alone(conn: Connection) -> None:
            if not _end_in_one(conn, turn_id, conversation_id, records, response, now_ms()):
                raise _Closed

        try:
            if self._db.dialect == "postgresql" and _ends_in_one(records, response, discard):
                await self._write(run_alone, alone=True)
            else:
                await self._write(run)
        except _Closed:
            return False
        except StoreError as exc:
            if not isinstance(exc.__cause__, sa_exc.IntegrityError):
                raise
            await self._write(lambda conn: drop(conn, turn_id))  # the parent was deleted while the turn ran
            return False
        if records and not discard:
            self._paths.extend(parent_id, records)
        return True

    async def leave_turn(self, turn_id: str, conversation_id: str) -> None:
        self._queued.discard(turn_id)
        await self._write(lambda conn: leave(conn, turn_id, conversation_id))

    async def save_draft(self, turn_id: str, text: str) -> None:
        def run(conn: Connection) -> None:
            commit_without_flush(conn)
            write_draft(conn, turn_id, text)

        await self._write(run)

    async def abandoned_turns(self) -> list[OpenTurn]:
        """Open turns whose owner process is dead."""

        def run(conn: Connection) -> list[OpenTurn]:
            found = open_turns(conn)
            if not found:
                return []
            live = self.liveness.alive(conn, {turn.owner for turn in found})
            return [turn for turn in found if turn.owner not in live]

        return await self._read(run)

    async def is_alive(self, owner: str) -> bool:
        return await self._read(lambda conn: owner in self.liveness.alive(conn, [owner]))

    async def close_abandoned(self, turn_id: str, conversation_id: str, owner: str) -> bool:
        """Close a dead owner's turn (``close_abandoned``), after checking again, under the
        conversation's lock, that its owner is dead; ``False`` when there was nothing to do."""

        def run(conn: Connection) -> bool:
            locked = conn.execute(
                sa.select(conversations.c.model)
                .where(conversations.c.id == conversation_id)
                .with_for_update(key_share=True)
            )
            row = locked.first()
            if row is None or owner in self.liveness.alive(conn, [owner]):
                return False
            return close_abandoned(conn, turn_id, row.model, now_ms())

        return await self._write(run)
