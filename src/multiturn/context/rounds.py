"""Rounds: the unit the context policies keep, drop, summarize and recall.

A round is one user item and everything up to the next user item: the assistant's answer(s),
its tool calls and their results. Policies never cut inside a round, so a tool call and its
results always travel together.

Items before the first user item (a system item a client sent, an assistant's greeting) form
round 0 of their own, the *preamble*, rather than being glued to the first user round: the first
exchange is then an ordinary round that can be dropped in its block like any other, while the
planner can treat the preamble specially (it pins preamble system items next to the system
prompt).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..records import ItemRecord


@dataclass(frozen=True, slots=True)
class Round:
    """Consecutive items of a path: a user item and what followed it (or the preamble)."""

    index: int
    items: tuple[ItemRecord, ...]

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(item.id for item in self.items)

    @property
    def user(self) -> ItemRecord | None:
        """The user item that opens the round; ``None`` for the preamble."""
        first = self.items[0] if self.items else None
        return first if first is not None and first.role == "user" else None

    @property
    def is_preamble(self) -> bool:
        return self.user is None


def split_rounds(path: Sequence[ItemRecord]) -> list[Round]:
    """Cut ``path`` before every user item; each round's ``index`` is its position in the list.

    Concatenating the rounds' items gives ``path`` back unchanged.
    """
    groups: list[list[ItemRecord]] = []
    for item in path:
        if item.role == "user" or not groups:
            groups.append([item])
        else:
            groups[-1].append(item)
    return [Round(index=i, items=tuple(group)) for i, group in enumerate(groups)]


def last_round_items(path: Sequence[ItemRecord]) -> tuple[ItemRecord, ...]:
    """The items of ``path``'s last round (``split_rounds(path)[-1].items``), found from the end
    without splitting the whole path."""
    for start in range(len(path) - 1, -1, -1):
        if path[start].role == "user":
            return tuple(path[start:])
    return tuple(path)
