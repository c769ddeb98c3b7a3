"""The planner's cache (``context/cache.py``) changes what a turn costs, never what it plans: a
conversation planned turn after turn with one cache gives exactly what planning each turn
afresh gives, and every part of the cache stays within its bound."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from multiturn.context.cache import PlanCache
from multiturn.context.plan import PRESETS, Policy, plan_context
from multiturn.context.summary import Summary
from multiturn.records import ItemRecord
from multiturn.tokens import EstimateTokenizer

from .paths import PathBuilder, conversations
from .test_plan_policies import policies

TOKENIZER = EstimateTokenizer()


def _turns(path: list[ItemRecord]) -> list[list[ItemRecord]]:
    """The path of every turn of a conversation: each prefix ending with a user item."""
    return [path[: end + 1] for end, item in enumerate(path) if item.role == "user"]


@settings(max_examples=150, deadline=None)
@given(
    conversations(max_rounds=30),
    st.sampled_from(list(PRESETS.values())) | policies,
    st.integers(60, 3000),
    st.none() | st.integers(0, 40),
)
def test_a_cached_plan_equals_a_fresh_one_at_every_turn(
    path: list[ItemRecord], policy: Policy, window: int, summary_at: int | None
) -> None:
    cache = PlanCache(size=64)  # small, so that eviction happens too
    for turn in _turns(path):
        summary = None
        if summary_at is not None and summary_at < len(turn) - 1:  # a summary appears mid-way
            summary = Summary("the story so far", through_item_id=turn[summary_at].id)
        args = {"policy": policy, "window_tokens": window, "reserved_output": 50, "tokenizer": TOKENIZER}
        cached = plan_context("sys", turn, summary=summary, cache=cache, **args)
        fresh = plan_context("sys", turn, summary=summary, **args)
        assert cached == fresh


class _CountingSteps(PlanCache):
    """Counts the window's replay steps."""

    steps = 0

    def window(self, key, rounds, last_item, step):  # type: ignore[no-untyped-def]
        def counted(state, index):  # type: ignore[no-untyped-def]
            self.steps += 1
            return step(state, index)

        return super().window(key, rounds, last_item, counted)


def test_a_turn_resumes_the_window_where_the_last_one_left_it() -> None:
    """After the first turn, a turn replays the round its predecessor left open and its own new
    input: two steps, however long the conversation (planned without the cache: all of them)."""
    builder = PathBuilder()
    cache = _CountingSteps()
    steps: list[int] = []
    for n in range(300):
        builder.round(f"question {n} " * 5, f"answer {n} " * 8)
        builder.add("user", "and now?")
        before = cache.steps
        _, report = plan_context(
            None,
            list(builder.items),
            policy=PRESETS["window"],
            window_tokens=800,
            reserved_output=100,
            tokenizer=TOKENIZER,
            cache=cache,
        )
        steps.append(cache.steps - before)
        builder.items.pop()
    assert report.count("dropped") > 500  # the window dropped most of the conversation
    assert steps[0] == 2 and set(steps[1:]) == {2}


def test_every_part_is_bounded() -> None:
    builder = PathBuilder()
    cache = PlanCache(size=64)
    for n in range(400):
        builder.round(f"q{n}", f"a{n}")
        builder.add("user", f"now {n}")
        plan_context(
            None,
            list(builder.items),
            policy=PRESETS["window"],
            window_tokens=400,
            reserved_output=50,
            tokenizer=TOKENIZER,
            cache=cache,
        )
        builder.items.pop()
    sizes = cache.sizes()
    assert sizes["counts"] <= 64 and sizes["blocks"] <= 64
    assert sizes["shapes"] <= 4 and sizes["windows"] <= 4 and sizes["depths"] <= 256
    assert sizes["counts"] == 64  # it did fill: the bound, not the workload, stopped it
