"""Media go before text: where the planner stops sending older rounds' images, audio and video.

Two boundaries, both a round index before which media become placeholders:

- the policy's own (``keep_images_rounds``, ``media_boundary``): it moves in steps of that many
  rounds, so old rounds keep their bytes between steps;
- under pressure (``fit_media``): when the window would drop a round, ``full`` would be over its
  budget, or the inline bytes would pass ``media_bytes``, later boundaries are tried, oldest
  media first, in steps of ``MEDIA_STEP`` rounds and at most ``MEDIA_TRIES`` of them, and the
  least strained window wins (rounds dropped, then tokens over, then bytes over). The newest
  round's media always stay.

A boundary that moved by one round every turn would change the prompt's prefix every turn (no
cached prefix); by two, every other turn.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeAlias, TypeVar

MEDIA_STEP = 2
"""Rounds whose media go together when a request does not fit: a boundary moved by one round a
turn would change the prompt's prefix every turn (no cached prefix); by two, every other turn."""
MEDIA_TRIES = 6
"""At most this many boundaries are tried a turn (each is a window computed and kept)."""

Strain: TypeAlias = tuple[int, int, int]
"""How far a window is from fitting: rounds dropped, tokens over the budget, inline bytes over the
cap; smaller is better, compared in that order; ``(0, 0, 0)`` fits."""
_W = TypeVar("_W")


def media_boundary(last_round: int, keep: int | None) -> int:
    """Rounds before this index lose their media. It moves in steps of ``keep`` rounds (every
    ``keep`` turns, not every turn, so old rounds keep their bytes between steps) and always
    leaves the newest ``keep`` rounds whole."""
    if keep is None:
        return 0
    return max(0, (last_round + 1 - keep) // keep * keep)


def media_steps(rounds: Sequence[int], boundary: int, newest_round: int) -> list[int]:
    """Boundaries to try, oldest first: past each older round with media, rounded up to a step
    of ``MEDIA_STEP`` and at most the newest round (whose media always stay)."""
    steps = sorted({min(-(-(r + 1) // MEDIA_STEP) * MEDIA_STEP, newest_round) for r in rounds} - {boundary})
    steps = [b for b in steps if b > boundary]
    if len(steps) > MEDIA_TRIES:  # evenly spread, the last (every older media gone) kept
        steps = [steps[round(i * (len(steps) - 1) / (MEDIA_TRIES - 1))] for i in range(MEDIA_TRIES)]
    return steps


def fit_media(
    window_at: Callable[[int], _W],
    strain: Callable[[_W], Strain],
    media_rounds: Sequence[int],
    *,
    first: int,
    boundary: int,
    newest_round: int,
) -> _W:
    """The window with media omitted before ``boundary``, or, when it does not fit and older rounds
    hold media, the least strained of the windows with later boundaries (``media_steps``).

    Args:
        window_at: the window planned with media omitted before a boundary.
        strain: how far a window is from fitting.
        media_rounds: the rounds holding media, ascending.
        first: the first round the window chooses from (earlier ones are never sent).
        boundary: the policy's boundary (``media_boundary``).
        newest_round: the newest round's index (its media stay).
    """
    planned = window_at(boundary)
    older = [r for r in media_rounds if max(first, boundary) <= r < newest_round]
    best = strain(planned) if older else (0, 0, 0)
    if any(best):
        for candidate in media_steps(older, boundary, newest_round):
            tried = window_at(candidate)
            cost = strain(tried)
            if cost < best:
                planned, best = tried, cost
            if not any(best):
                break
    return planned
