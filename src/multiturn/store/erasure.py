"""Deletion: one primitive behind every way of deleting words from the store.

A conversation, the conversations ``prune`` finds stale, a response's turn, an item and its
subtree: each is a set of items erased by ``erase`` in one transaction, with everything
derived from their text:

- the items' rows (their content, reasoning and tool calls);
- the retrieval index's entries of those items, and of the live items whose unit quoted them
  (an assistant item's entry holds the tool results that answered it);
- every summary whose text may hold theirs: a summary covers the path up to its
  ``through_item_id``, so the summaries through an erased item or anything below one;
- the open turns' rows go with a deleted conversation or response (foreign keys).

Two shapes of erasure (``splice``):

- **a subtree** (a conversation, an item and what follows it): the items and all their
  descendants go; a head inside moves back to the erased item's parent;
- **a turn** (a response deleted inside a chain): only its own input and output items go, and
  what followed them is attached to the nearest item above them, as if the turn had never been
  taken. Later turns go on without its words; a later response's ``input_items`` no longer show
  them.

Afterwards the full-text index is merged (``dialect.purge_fulltext``: FTS5 keeps deleted words
in its segments until a merge), the conversation's ``erasures`` count goes up (every process
drops the paths it cached before: ``SQLStore`` compares the count it saw), and the caller
makes the files forget (``Database.forget``: SQLite's ``secure_delete`` already zeroes the
freed bytes of the database file; the WAL is checkpointed and truncated).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..errors import NotFound
from . import dialect
from .schema import conversations, items, memory_entries, responses, summaries, turns

_CHUNK = 500
"""Ids per ``IN (...)`` list (SQLite's host parameters are limited)."""


def erase_conversations(conn: Connection, conversation_ids: Sequence[str]) -> None:
    """Delete whole conversations (their items, summaries, index entries, responses and open
    turns go by cascade) and merge the full-text index."""
    if not conversation_ids:
        return
    for chunk in _chunks(conversation_ids):
        conn.execute(items.delete().where(items.c.conversation_id.in_(chunk)))
        conn.execute(conversations.delete().where(conversations.c.id.in_(chunk)))
    dialect.purge_fulltext(conn)


def erase_subtree(conn: Connection, conversation_id: str, item_id: str, head: str | None) -> str | None:
    """Erase ``item_id`` and everything below it; returns the head the conversation has after.
    Raises NotFound: no such item in the conversation."""
    tree = _Tree(conn, conversation_id)
    if item_id not in tree.parent_of:
        raise NotFound(f"item {item_id!r} not found in conversation {conversation_id!r}")
    doomed = _below(tree.parent_of, [item_id])
    return erase(conn, conversation_id, tree, doomed, head, splice=False)


def erase_turn(conn: Connection, conversation_id: str, item_ids: Iterable[str], head: str | None) -> str | None:
    """Erase one turn's items (those of them stored) and splice the tree around them; returns
    the head the conversation has after."""
    tree = _Tree(conn, conversation_id)
    doomed = {item_id for item_id in item_ids if item_id in tree.parent_of}
    if not doomed:
        return head
    return erase(conn, conversation_id, tree, doomed, head, splice=True)


def erase(
    conn: Connection,
    conversation_id: str,
    tree: _Tree,
    doomed: Collection[str],
    head: str | None,
    *,
    splice: bool,
) -> str | None:
    """The primitive (module docstring): erase ``doomed`` (with ``splice``, reattach their
    children to their nearest surviving ancestor; without, ``doomed`` must hold its own
    subtree) and what was derived from them. Returns the conversation's new head; the caller
    writes it."""
    parent_of = tree.parent_of

    def survivor(item_id: str | None) -> str | None:
        while item_id is not None and item_id in doomed:
            item_id = parent_of[item_id]
        return item_id

    # Summaries through an erased item or below one hold its words (through an erased item
    # they would go by cascade; the ones below would stay).
    covered = list(_below(parent_of, doomed))
    for chunk in _chunks(covered):
        conn.execute(summaries.delete().where(summaries.c.through_item_id.in_(chunk)))
    # Index entries: the erased items' own (cascade) and those of the units that quoted them
    # (a tool result is indexed under the assistant item that called the tool).
    quoting = _quoting_units(parent_of, tree.role_of, doomed)
    for chunk in _chunks(quoting):
        conn.execute(memory_entries.delete().where(memory_entries.c.item_id.in_(chunk)))
    if splice:
        moved = {child for child, parent in parent_of.items() if parent in doomed and child not in doomed}
        for child in moved:
            conn.execute(items.update().where(items.c.id == child).values(parent_id=survivor(parent_of[child])))
        open_under = sa.select(turns.c.id, turns.c.parent_id).where(
            turns.c.conversation_id == conversation_id, turns.c.parent_id.is_not(None)
        )
        for turn_id, parent_id in conn.execute(open_under).all():
            if parent_id in doomed:
                conn.execute(turns.update().where(turns.c.id == turn_id).values(parent_id=survivor(parent_id)))
    doomed_ids = list(doomed)
    for chunk in _chunks(doomed_ids):
        conn.execute(responses.delete().where(responses.c.output_item_id.in_(chunk)))
    for chunk in _chunks(_children_first(parent_of, doomed_ids)):
        conn.execute(items.delete().where(items.c.id.in_(chunk)))
    conn.execute(
        conversations.update()
        .where(conversations.c.id == conversation_id)
        .values(erasures=conversations.c.erasures + 1)
    )
    dialect.purge_fulltext(conn)
    return survivor(head)


# -- the tree ---------------------------------------------------------------------------------


class _Tree:
    """A conversation's items: each one's parent and role."""

    def __init__(self, conn: Connection, conversation_id: str) -> None:
        query = sa.select(items.c.id, items.c.parent_id, items.c.role).where(items.c.conversation_id == conversation_id)
        rows = conn.execute(query).all()
        self.parent_of: dict[str, str | None] = {row.id: row.parent_id for row in rows}
        self.role_of: dict[str, str] = {row.id: row.role for row in rows}


def _below(parent_of: dict[str, str | None], roots: Iterable[str]) -> set[str]:
    """``roots`` and all their descendants."""
    children: dict[str | None, list[str]] = {}
    for child, parent in parent_of.items():
        children.setdefault(parent, []).append(child)
    found: set[str] = set()
    stack = list(roots)
    while stack:
        current = stack.pop()
        if current in found:
            continue
        found.add(current)
        stack.extend(children.get(current, ()))
    return found


def _children_first(parent_of: dict[str, str | None], ids: Sequence[str]) -> list[str]:
    """``ids`` ordered so that no item comes before one of its descendants (deepest first).
    Depths are memoized along each walk up, so a long chain costs its length, not its square."""
    depth: dict[str | None, int] = {None: -1}
    for item_id in ids:
        walk: list[str] = []
        current: str | None = item_id
        while current not in depth:
            assert current is not None
            walk.append(current)
            current = parent_of.get(current)
        known = depth[current]
        for step in reversed(walk):
            known += 1
            depth[step] = known
    return sorted(ids, key=lambda item_id: depth[item_id], reverse=True)


def _quoting_units(parent_of: dict[str, str | None], role_of: dict[str, str], doomed: Collection[str]) -> list[str]:
    """The surviving items whose index entry may quote an erased tool result: for each erased
    tool item, the items above it up to the first that is not a tool result."""
    found: set[str] = set()
    for tool in (item_id for item_id in doomed if role_of[item_id] == "tool"):
        current = parent_of[tool]
        while current is not None:
            if current not in doomed:
                found.add(current)
            if role_of[current] != "tool":
                break
            current = parent_of[current]
    return sorted(found)


def _chunks(values: Sequence[str]) -> list[Sequence[str]]:
    return [values[i : i + _CHUNK] for i in range(0, len(values), _CHUNK)]
