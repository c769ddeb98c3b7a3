"""``multiturn.context.window.first_kept``: block drops, replayed from the conversation's start;
``restart``: where a replay may start instead, with the same result."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from multiturn.context.window import WindowState, advance, first_kept, restart

sizes = st.lists(st.integers(0, 300), max_size=60)
budgets = st.integers(0, 3000)
low_waters = st.sampled_from([0.3, 0.5, 0.6, 0.8, 1.0])


def test_nothing_to_cut() -> None:
    assert first_kept([], 100) == 0
    assert first_kept([10, 20, 30], 100) == 0


def test_the_newest_round_is_kept_even_alone_over_budget() -> None:
    assert first_kept([10, 20, 500], 100) == 2
    assert first_kept([500], 100) == 0
    assert first_kept([10, 20], 0) == 1


def test_a_block_goes_back_to_the_low_water_mark() -> None:
    # 10 rounds of 10 tokens under a budget of 50: the 6th overflows, and the oldest go until
    # at most 30 tokens remain; the cut then stays until the budget overflows again.
    cuts = [first_kept([10] * n, 50, low_water=0.6) for n in range(1, 11)]
    assert cuts == [0, 0, 0, 0, 0, 3, 3, 3, 6, 6]


def test_the_embedded_model_block_drop_schedule() -> None:
    # reference/embedded-anchors.md 4.3: keep <= 6 earlier rounds; when exceeded, drop back to 3.
    earlier_rounds = [n - 1 - first_kept([50] * n, 10**6, max_rounds=6) for n in range(1, 11)]
    assert earlier_rounds == [0, 1, 2, 3, 4, 5, 6, 3, 4, 5]


def test_max_rounds_zero_keeps_only_the_newest() -> None:
    assert first_kept([1, 1, 1], 100, max_rounds=0) == 2


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="low_water"):
        first_kept([1], 10, low_water=0)
    with pytest.raises(ValueError, match="max_rounds"):
        first_kept([1], 10, max_rounds=-1)


@given(sizes, budgets, low_waters, st.none() | st.integers(0, 12))
def test_kept_rounds_fit_unless_only_the_newest_remains(
    tokens: list[int], budget: int, low_water: float, max_rounds: int | None
) -> None:
    cut = first_kept(tokens, budget, low_water=low_water, max_rounds=max_rounds)
    assert 0 <= cut <= max(0, len(tokens) - 1)
    if cut < len(tokens) - 1:
        assert sum(tokens[cut:]) <= budget
        if max_rounds is not None:
            assert len(tokens) - 1 - cut <= max_rounds
    assert cut == first_kept(tokens, budget, low_water=low_water, max_rounds=max_rounds)  # deterministic


@given(sizes, budgets, low_waters, st.none() | st.integers(0, 12))
def test_the_cut_never_moves_back_as_the_conversation_grows(
    tokens: list[int], budget: int, low_water: float, max_rounds: int | None
) -> None:
    cuts = [first_kept(tokens[:n], budget, low_water=low_water, max_rounds=max_rounds) for n in range(len(tokens) + 1)]
    assert cuts == sorted(cuts)


@given(sizes, budgets, low_waters, st.integers(0, 300))
def test_the_newest_round_growing_never_moves_the_cut_back(
    tokens: list[int], budget: int, low_water: float, extra: int
) -> None:
    # Turn t plans with the newest round holding only the user's input; turn t+1 sees it complete.
    if tokens:
        grown = [*tokens[:-1], tokens[-1] + extra]
        assert first_kept(grown, budget, low_water=low_water) >= first_kept(tokens, budget, low_water=low_water)


@given(st.lists(st.integers(1, 100), max_size=80), st.integers(300, 3000), low_waters)
def test_block_drops_are_rare(tokens: list[int], budget: int, low_water: float) -> None:
    # Rounds of at most 100 tokens, each below low_water x budget: after a drop the rounds must
    # grow by more than (1 - low_water) x budget before the next one.
    cuts = [first_kept(tokens[:n], budget, low_water=low_water) for n in range(1, len(tokens) + 1)]
    moves = [n for n in range(1, len(cuts)) if cuts[n] != cuts[n - 1]]
    gap = math.floor((1 - low_water) * budget / 100)
    assert all(b - a >= gap for a, b in itertools.pairwise(moves))


@given(st.lists(st.integers(0, 50), max_size=60), st.integers(1, 12), low_waters)
def test_max_rounds_drops_are_spaced(tokens: list[int], max_rounds: int, low_water: float) -> None:
    cuts = [
        first_kept(tokens[:n], 10**6, low_water=low_water, max_rounds=max_rounds) for n in range(1, len(tokens) + 1)
    ]
    moves = [n for n in range(1, len(cuts)) if cuts[n] != cuts[n - 1]]
    gap = max_rounds - math.floor(low_water * max_rounds) + 1
    assert all(b - a >= gap for a, b in itertools.pairwise(moves))


@given(sizes, budgets)
def test_low_water_one_is_the_naive_sliding_window(tokens: list[int], budget: int) -> None:
    # The smallest cut whose rounds fit: the window slides by one round whenever it must.
    cut = first_kept(tokens, budget, low_water=1.0)
    fitting = [c for c in range(len(tokens)) if sum(tokens[c:]) <= budget]
    assert cut == (min(fitting) if fitting else max(0, len(tokens) - 1))


@given(st.lists(st.tuples(st.integers(1, 50), st.integers(0, 50)), max_size=80), st.integers(300, 3000), low_waters)
def test_rounds_answered_after_they_arrive_still_drop_rarely(
    rounds: list[tuple[int, int]], budget: int, low_water: float
) -> None:
    # Each turn plans with the newest round holding only its user message; its answer arrives
    # after. Replaying each round as it arrived keeps every turn's decisions.
    inputs = [user for user, _ in rounds]
    whole = [user + answer for user, answer in rounds]
    cuts = [
        first_kept([*whole[: n - 1], inputs[n - 1]], budget, low_water=low_water, input_tokens=inputs[:n])
        for n in range(1, len(rounds) + 1)
    ]
    assert cuts == sorted(cuts)
    moves = [n for n in range(1, len(cuts)) if cuts[n] != cuts[n - 1]]
    gap = math.floor((1 - low_water) * budget / 100)
    assert all(b - a >= gap for a, b in itertools.pairwise(moves))


def test_input_tokens_must_match_the_rounds() -> None:
    with pytest.raises(ValueError, match="length"):
        first_kept([1, 2], 10, input_tokens=[1])


def _replay_from_restart(
    whole: list[int], inputs: list[int], budget: int, low_water: float, max_rounds: int | None
) -> tuple[int, int]:
    """The cut as the planner's cache computes it cold: from the latest complete round
    ``restart`` gives a state for (else the first), then step by step; and where it started."""
    state, start = WindowState(), 0
    for index in range(len(whole) - 2, 0, -1):
        found = restart(index, whole.__getitem__, inputs[index], budget)
        if found is not None:
            state, start = found, index
            break
    for index in range(state.rounds, len(whole)):
        arriving = whole[index] if index == len(whole) - 1 else inputs[index]
        state = advance(state, arriving, whole.__getitem__, budget, low_water=low_water, max_rounds=max_rounds)
    return state.cut, start


@given(
    st.lists(st.tuples(st.integers(0, 400), st.integers(0, 400)), max_size=60),
    st.integers(-50, 1500),
    low_waters,
    st.none() | st.integers(0, 12),
)
def test_a_replay_from_a_restart_cuts_where_the_whole_replay_does(
    rounds: list[tuple[int, int]], budget: int, low_water: float, max_rounds: int | None
) -> None:
    inputs = [user for user, _ in rounds]
    whole = [user + answer for user, answer in rounds]
    cut, _ = _replay_from_restart(whole, inputs, budget, low_water, max_rounds)
    assert cut == first_kept(whole, budget, low_water=low_water, max_rounds=max_rounds, input_tokens=inputs)


def test_long_rounds_restart_near_the_end() -> None:
    # Rounds of 400 tokens under a 360-token window: a round and the next arrival pass the budget.
    whole, inputs = [400] * 250, [100] * 250
    cut, start = _replay_from_restart(whole, inputs, 360, 0.6, None)
    assert start == 248 and cut == first_kept(whole, 360, input_tokens=inputs)
    short = [30] * 250  # short rounds never restart: the whole replay
    assert _replay_from_restart(short, [10] * 250, 360, 0.6, None)[1] == 0
    assert restart(0, whole.__getitem__, 100, 10) is None  # nothing before the first round
