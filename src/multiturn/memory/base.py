"""What the engine asks of memory: two protocols, called around each turn.

- ``Recall``: before a turn that recalls is planned, ``recall`` indexes what of the path is not
  indexed yet, then ranks the items outside the newest round against the new input (plus the
  previous turn, for pronouns) and returns candidates with scores; the planner keeps the best
  that fit. After each answer of such a turn its round is indexed (``index_round``), in the
  background.
- ``Compaction``: ``latest`` is the newest stored summary whose covered item is on the path;
  ``compact`` summarizes when the path passes the trigger share of the window (the oldest half
  of the rounds not yet summarized, incrementally from the previous summary) and stores it.

The engine treats both as best effort: an exception from either is logged and the turn goes on
without it ("a summary failure never fails the user's turn").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from ..context.retrieval import Recalled
from ..context.summary import Summary
from ..records import ItemRecord


class Recall(Protocol):
    async def index_round(self, conversation_id: str, items: Sequence[ItemRecord], *, tenant_id: str) -> None:
        """Index a completed round's items (the user's item and what answered it)."""
        ...

    async def recall(
        self, conversation_id: str, path: Sequence[ItemRecord], *, tenant_id: str, budget: int | None = None
    ) -> list[Recalled]:
        """Candidates for the request whose path is ``path`` (the last round is the new input,
        which need not be stored yet), best first, as many as a prompt of ``budget`` tokens may
        use (``None``: the policy sets no budget, so the floors). Items of the newest round are
        never returned; the planner drops those already in the window."""
        ...

    async def recall_unstored(self, path: Sequence[ItemRecord], *, budget: int | None = None) -> list[Recalled]:
        """The same ranking over a path that is not stored (a stateless request's array,
        ranked in memory; nothing is written)."""
        ...


class Compaction(Protocol):
    async def latest(self, conversation_id: str, path: Sequence[ItemRecord], *, tenant_id: str) -> Summary | None:
        """The newest stored summary of this path (its ``through_item_id`` on ``path``)."""
        ...

    async def compact(
        self,
        conversation_id: str,
        system_prompt: str | None,
        path: Sequence[ItemRecord],
        *,
        window_tokens: int,
        tenant_id: str,
    ) -> Summary | None:
        """Summarize if the path passed the trigger; return the summary to use now (new or
        stored, ``None`` when there is none yet)."""
        ...

    async def compact_prefix(self, path: Sequence[ItemRecord], *, window_tokens: int, tenant_id: str) -> Summary | None:
        """``compact`` for an unstored path (a stateless array; its item ids chain hashes of
        the messages): the summary is stored under ``prefix_hash`` = the id of the last item
        it covers and found again by that hash when the array is resent."""
        ...
