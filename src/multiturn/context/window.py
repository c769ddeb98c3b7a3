"""The window policy: which newest rounds to keep, cutting rarely and in blocks.

A prefix cache (llama.cpp's KV reuse, Model Studio's context cache, vLLM's prefix caching) only
helps while the start of the prompt stays byte-identical between turns. A sliding window that
drops one round per turn changes the start on every turn and collapses reuse to the system prompt
(measured on the embedded model: 0.6-0.9 s to first token per turn instead of 0.11-0.17 s).
So when the kept rounds outgrow the budget, a whole *block* goes at once, back to a low-water
mark, and the cut then stays put until the rounds have grown by (1 - low_water) x budget again.

``first_kept`` computes that cut as a pure function of the rounds' sizes: it replays the
conversation's growth from its first round (for each turn, the earlier rounds as they are now
plus the new round as it was then, its user message; if they exceed the budget, advance the cut
until they fit under the low-water mark). Called on turn t and on turn t+1, it takes the same
decisions on every step up to t, so it gives exactly the cut an incremental, stateful
implementation would, with no state to store. ``advance`` is one step of that replay: the
planner keeps the state after each turn's complete rounds (``context/cache.py``) and resumes
from it, so the cost of a turn does not grow with the conversation. A plan with nothing kept
(a new process, a conversation planned for the first time) need not replay from the first
round either: when a round and the next one's arrival together pass the budget, that step drops
every earlier round whatever the state was, so the replay may start there (``restart``); with
rounds as long as the window's budget (a 10 % window, long answers) that is the last few rounds.

Invariants (for rounds given oldest first, the last being the new input):
- the newest round is always kept, even alone over the budget (the caller reports
  context-too-long);
- the kept rounds fit the budget unless only the newest remains;
- with rounds appended (or the newest round growing, as its answer arrives), the cut never
  moves back; when no round exceeds low_water x budget, two moves are more than
  (1 - low_water) x budget / largest round appended rounds apart (and, with ``max_rounds``,
  at least ``max_rounds - floor(low_water x max_rounds) + 1`` apart).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

DEFAULT_LOW_WATER = 0.6
"""After a block drop the kept rounds hold at most 60 % of the budget: measured on the embedded
model, keeping 6 rounds and dropping back to 3 (one slow turn, then prefix reuse returns) cost
558 evaluated tokens over 10 turns against 1,510 for a one-round-per-turn window."""


@dataclass(frozen=True, slots=True)
class WindowState:
    """Where ``first_kept``'s replay stands after a round: the cut, and the tokens the kept
    rounds hold (``earlier``), with ``rounds`` rounds replayed. A state depends only on the rounds
    replayed, so it can be kept and resumed on the next turn (``advance``): the replay of a
    1,000-round conversation is then one step a turn, not 1,000."""

    cut: int = 0
    earlier: int = 0
    rounds: int = 0


def advance(
    state: WindowState,
    arriving: int,
    tokens: Callable[[int], int],
    budget: int,
    *,
    low_water: float = DEFAULT_LOW_WATER,
    max_rounds: int | None = None,
) -> WindowState:
    """One step of the replay: round ``state.rounds`` arrives with ``arriving`` tokens (its user
    message, or all of it when it is the new input); ``tokens(i)`` is round ``i``'s size as it is
    now (called only for kept rounds). Returns the state after the round, its final size added."""
    budget = max(0, budget)
    end, cut, earlier = state.rounds, state.cut, state.earlier
    kept = earlier + arriving
    if kept > budget or (max_rounds is not None and end - cut > max_rounds):
        low_tokens = low_water * budget
        low_rounds = math.floor(low_water * max_rounds) if max_rounds is not None else 0
        while cut < end and (kept > low_tokens or (max_rounds is not None and end - cut > low_rounds)):
            size = tokens(cut)
            kept -= size
            earlier -= size
            cut += 1
    return WindowState(cut, earlier + tokens(end), end + 1)


def restart(index: int, tokens: Callable[[int], int], arriving: int, budget: int) -> WindowState | None:
    """A state to replay round ``index`` from that gives what the replay from the first round
    gives, when one is known without that replay; else None.

    At round ``index`` the kept rounds hold at least the previous round (a step never drops the
    round before it: the cut stays below the round arriving). So when the previous round
    (``tokens(index - 1)``) and this one's ``arriving`` tokens together pass the budget, the step
    drops rounds until those alone remain, or fewer: the rounds before ``index - 1`` go whatever
    the state was (their tokens kept the total over the budget, so over the low-water mark, all
    the while). Starting from "only round ``index - 1`` kept" takes the same decisions from there.
    """
    if index < 1:
        return None
    previous = tokens(index - 1)
    if previous + arriving > max(0, budget):
        return WindowState(index - 1, previous, index)
    return None


def first_kept(
    round_tokens: Sequence[int],
    budget: int,
    *,
    low_water: float = DEFAULT_LOW_WATER,
    max_rounds: int | None = None,
    input_tokens: Sequence[int] | None = None,
) -> int:
    """The index of the oldest round to keep.

    Args:
        round_tokens: each round's tokens as it is now, oldest first; the last is the new input.
        budget: tokens the kept rounds may take (negative counts as 0).
        low_water: after a drop, the kept rounds hold at most ``low_water x budget`` tokens
            (and at most ``floor(low_water x max_rounds)`` earlier rounds); in (0, 1]. 1.0 is
            the naive sliding window.
        max_rounds: at most this many rounds besides the newest ("the last N rounds").
        input_tokens: each round's tokens when it was the new input (its user message, before
            the answer), so the replay takes the same decisions the earlier turns took; default:
            ``round_tokens`` (rounds arrive whole). Only the rounds before the last are read.

    Returns:
        ``i`` such that ``round_tokens[i:]`` are the kept rounds; ``len - 1`` at most
        (0 for no rounds).

    Raises:
        ValueError: ``low_water`` outside (0, 1], a negative ``max_rounds``, or
            ``input_tokens`` of another length.
    """
    check(low_water, max_rounds)
    if input_tokens is not None and len(input_tokens) != len(round_tokens):
        raise ValueError("input_tokens and round_tokens differ in length")
    arriving = round_tokens if input_tokens is None else [*input_tokens[:-1], *round_tokens[-1:]]
    state = WindowState()
    for tokens in arriving:
        state = advance(state, tokens, round_tokens.__getitem__, budget, low_water=low_water, max_rounds=max_rounds)
    return state.cut


def check(low_water: float, max_rounds: int | None) -> None:
    """Raises ValueError: ``low_water`` outside (0, 1], or a negative ``max_rounds``."""
    if not 0 < low_water <= 1:
        raise ValueError(f"low_water must be in (0, 1], not {low_water}")
    if max_rounds is not None and max_rounds < 0:
        raise ValueError(f"max_rounds must be >= 0, not {max_rounds}")
