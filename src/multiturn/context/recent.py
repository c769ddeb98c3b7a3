"""The planner's window step: which recent rounds a request sends, as blocks.

The window chooses from the rounds with an item after the summary that is not pinned: the last
rounds of the path (the summary covers a prefix; pinned system items open it). ``Recent`` sees
a path's rounds that way and plans a window for a media boundary (``media.py``):

- its cut (``window.advance``'s replay of the conversation's growth, resumed from the state a
  recent turn left in the cache: a turn replays two rounds, not the conversation);
- its complete rounds assembled (``cache.History``: extended turn by turn along a chain);
- the newest round, which is always sent (unless the window holds no round at all).

Everything it computes goes through the ``PlanCache`` (checked by identity), so a cached window
equals a fresh one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..records import ItemRecord
from ..types import Message
from .blocks import Block, build_block
from .cache import History, PlanCache, Positions
from .media import Strain
from .policy import Policy
from .window import WindowState, advance, check, restart


@dataclass(frozen=True, slots=True)
class Window:
    """A planned window: rounds cut from its start, its complete rounds, and the newest round
    (empty when the window holds no round)."""

    cut: int
    history: History
    newest: tuple[Block, ...]
    path: Sequence[ItemRecord] = ()
    start: int = 0
    """Where in ``path`` the items it chooses from begin (its first round's, after the summary)."""

    @property
    def items(self) -> Sequence[ItemRecord]:
        """The items of its rounds the window chooses from, sent or left out (never recalled)."""
        return self.path[self.start :]

    @property
    def tokens(self) -> int:
        return self.history.tokens + sum(b.tokens for b in self.newest)

    @property
    def input_tokens(self) -> int:
        return self.newest[0].tokens if self.newest else 0

    @property
    def rounds(self) -> int:
        """How many rounds it sends."""
        return self.history.size + len(self.newest)

    @property
    def media_bytes(self) -> int:
        """The bytes of media its rounds send inline."""
        return self.history.media_bytes + sum(b.media_bytes for b in self.newest)

    @property
    def messages(self) -> list[Message]:
        return [*self.history.messages, *(m for b in self.newest for m in b.messages)]


def window_budget(policy: Policy, available: int, summary_tokens: int) -> int:
    """The window's share of ``available`` (what the head, the reply primer and the template's
    overhead leave): the rest is the memory share (at least ``1 - recent_share`` of it), taken
    by the summary first and recalled rounds after; a summary larger than the memory share
    takes from the window."""
    memory = available - math.floor(policy.recent_share * available) if available > 0 else 0
    return available - max(summary_tokens, memory)


def window_items(items: Sequence[ItemRecord], start: int, through: int, pinned: set[str]) -> list[ItemRecord]:
    """The items of a round starting at ``start`` that the window may send: after the summary
    (positions past ``through``), not pinned."""
    return [item for n, item in enumerate(items) if start + n > through and item.id not in pinned]


class Recent:
    """A path's rounds as the window sees them (see the module docstring).

    Args:
        path: the conversation's items, root first; the last round is the new input.
        starts: where its rounds start (``PlanCache.shape``).
        through: the position of the last item the summary covers (-1: no summary).
        pinned: ids of the pinned system items (sent in the head, never in the window).
        count: a message's tokens.
    """

    def __init__(
        self,
        path: Sequence[ItemRecord],
        starts: Sequence[int],
        positions: Positions,
        *,
        through: int,
        pinned: set[str],
        policy: Policy,
        count: Callable[[Message], int],
        cache: PlanCache,
    ) -> None:
        self._path, self._starts, self._positions = path, starts, positions
        self._ends = [*starts[1:], len(path)]
        self._through, self._pinned, self._policy = through, pinned, policy
        self._count, self._cache = count, cache
        self.newest_round = len(starts) - 1
        first = 0
        while first < len(starts) and not self._items(first):
            first += 1
        self.first = first
        """The first round the window chooses from."""
        self.rounds = len(starts) - first
        """How many rounds it chooses from, the newest included."""

    def _items(self, index: int) -> list[ItemRecord]:
        items = self._path[self._starts[index] : self._ends[index]]
        return window_items(items, self._starts[index], self._through, self._pinned)

    def block(self, index: int, boundary: int) -> Block:
        """Round ``index`` as sent, its media omitted when it lies before ``boundary``."""
        items = self._items(index)
        omit = index < boundary
        replay = self._policy.reasoning_replay
        if replay == "tool_chain" and index != self.newest_round:
            replay = "drop"  # only the active chain, the newest round's, keeps its reasoning
        key = (items[-1].id if items else None, len(items), replay, omit)
        found = self._cache.rounds.get(key, items)
        if isinstance(found, Block):
            return found
        built = build_block(items, replay=replay, omit=omit, count=self._count)
        self._cache.rounds.put(key, items, built)
        return built

    def cut(self, boundary: int, budget: int) -> int:
        """How many of the rounds go when the window holds ``budget`` tokens, media omitted
        before ``boundary`` (``full`` never cuts)."""
        policy, first, rounds = self._policy, self.first, self.rounds
        if policy.name == "full" or rounds == 0:
            return 0
        check(policy.low_water, policy.max_rounds)

        def step(state: WindowState, index: int) -> WindowState:
            block = self.block(first + index, boundary)
            arriving = block.tokens if index == rounds - 1 else block.arrival
            return advance(
                state,
                arriving,
                lambda i: self.block(first + i, boundary).tokens,
                budget,
                low_water=policy.low_water,
                max_rounds=policy.max_rounds,
            )

        def start(index: int) -> WindowState | None:
            arriving = self.block(first + index, boundary).arrival  # a complete round: its user message
            return restart(index, lambda i: self.block(first + i, boundary).tokens, arriving, budget)

        key = (budget, policy.low_water, policy.max_rounds, self._through, first, boundary, policy.reasoning_replay)
        last = lambda index: self._path[self._ends[first + index] - 1]  # noqa: E731
        return self._cache.window(key, rounds, last, step, start).cut

    def window(self, boundary: int, budget: int) -> Window:
        """The window with media omitted before ``boundary``: its cut, its complete rounds
        (assembled once per chain and extended turn by turn: a whole-history window costs a
        turn its new rounds, not the conversation), and the newest round."""
        cut = self.cut(boundary, budget)
        first, rounds = self.first, self.rounds
        history = self._cache.history(
            (self._through, boundary, self._policy.reasoning_replay == "keep"),
            first + cut,
            first + max(cut, rounds - 1),
            lambda index: self._path[self._ends[index] - 1],
            lambda index: self.block(index, boundary),
            self._positions,
        )
        newest = (self.block(first + rounds - 1, boundary),) if cut < rounds else ()
        start = self._starts[first + cut] if cut < rounds else len(self._path)
        return Window(cut, history, newest, self._path, max(start, self._through + 1))


def strain(window: Window, policy: Policy, available: int, summary_tokens: int) -> Strain:
    """How far ``window`` is from fitting (``media.Strain``): rounds it dropped, tokens over
    ``available`` (``full`` only: it never drops), inline media bytes over ``media_bytes``."""
    over = max(0, window.tokens + summary_tokens - available) if policy.name == "full" else 0
    if policy.media_bytes is None:
        return window.cut, over, 0
    return window.cut, over, max(0, window.media_bytes - policy.media_bytes)
