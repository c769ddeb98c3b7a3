"""The planner's cache (``context/cache.py``) changes what a turn costs, never what it plans: a
conversation planned turn after turn with one cache gives exactly what planning each turn
afresh gives, and every part of the cache stays within its bound."""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import given, settings
from hypothesis import strategies as st

from multiturn.context.cache import PlanCache
from multiturn.context.plan import PRESETS, Policy, plan_context
from multiturn.context.summary import Summary
from multiturn.records import ItemRecord
from multiturn.tokens import EstimateTokenizer
from multiturn.types import ContextReport, Message, TextPart

from .paths import PathBuilder, conversations
from .test_plan_policies import policies

TOKENIZER = EstimateTokenizer()
PlanResult = tuple[list[Message], ContextReport]


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


@settings(max_examples=100, deadline=None)
@given(
    conversations(max_rounds=20),
    st.sampled_from(list(PRESETS.values())) | policies,
    st.integers(60, 3000),
)
def test_branches_from_a_shared_history_plan_what_a_fresh_planner_does(
    path: list[ItemRecord], policy: Policy, window: int
) -> None:
    """Turns go on from a history one branch already extended: the assembled rounds are shared
    along a chain and copied for a branch, and neither branch sees the other's rounds."""
    cache = PlanCache(size=64)
    args = {"policy": policy, "window_tokens": window, "reserved_output": 50, "tokenizer": TOKENIZER}
    for n, turn in enumerate(_turns(path)):
        assert plan_context("sys", turn, cache=cache, **args) == plan_context("sys", turn, **args)
        if len(turn) < 2:
            continue
        base = turn[:-1]  # a sibling answer and a new question under the same parent, planned after
        answer = ItemRecord(
            id=f"b{n}a",
            conversation_id="conv",
            parent_id=base[-1].id,
            role="assistant",
            content=(TextPart(f"another answer {n}"),),
            status="completed",
            created_at=1000 + n,
        )
        question = ItemRecord(
            id=f"b{n}q",
            conversation_id="conv",
            parent_id=answer.id,
            role="user",
            content=(TextPart(f"and then {n}?"),),
            status="completed",
            created_at=1001 + n,
        )
        branch = [*base, answer, question]
        assert plan_context("sys", branch, cache=cache, **args) == plan_context("sys", branch, **args)


def _long_chain(cache: PlanCache, window_tokens: int, work: Callable[[], int]) -> tuple[list[int], PlanResult]:
    """300 turns of one conversation planned with ``cache``: the ``work`` each turn did, and the
    last plan."""
    builder = PathBuilder()
    done: list[int] = []
    for n in range(300):
        builder.round(f"question {n} " * 5, f"answer {n} " * 8)
        builder.add("user", "and now?")
        before = work()
        plan = plan_context(
            None,
            list(builder.items),
            policy=PRESETS["window"],
            window_tokens=window_tokens,
            reserved_output=100,
            tokenizer=TOKENIZER,
            cache=cache,
        )
        done.append(work() - before)
        builder.items.pop()
    return done, plan


def test_a_whole_history_window_costs_a_turn_its_new_round() -> None:
    """With a window that keeps everything, a turn adds one complete round to the history it goes
    on from, however long the conversation (planned without the cache: every round, every turn)."""
    cache = _CountingBlocks()
    built, (messages, report) = _long_chain(cache, 1_000_000, lambda: cache.built)
    assert len(messages) == 601 and report.count("kept") == 601
    assert cache.sizes()["histories"] == 1  # a chain holds one history, replaced turn by turn
    assert set(built[1:]) == {1}  # the round the last turn left open (the input is planned apart)


class _CountingBlocks(PlanCache):
    """Counts the rounds a history assembles."""

    built = 0

    def history(self, key, begin, end, last_item, block_at, positions):  # type: ignore[no-untyped-def]
        def counted(index):  # type: ignore[no-untyped-def]
            self.built += 1
            return block_at(index)

        return super().history(key, begin, end, last_item, counted, positions)


class _CountingSteps(PlanCache):
    """Counts the window's replay steps."""

    steps = 0

    def window(self, key, rounds, last_item, step, restart=lambda index: None):  # type: ignore[no-untyped-def]
        def counted(state, index):  # type: ignore[no-untyped-def]
            self.steps += 1
            return step(state, index)

        return super().window(key, rounds, last_item, counted, restart)


def test_a_turn_resumes_the_window_where_the_last_one_left_it() -> None:
    """After the first turn, a turn replays the round its predecessor left open and its own new
    input: two steps, however long the conversation (planned without the cache: all of them)."""
    cache = _CountingSteps()
    steps, (_, report) = _long_chain(cache, 800, lambda: cache.steps)
    assert report.count("dropped") > 500  # the window dropped most of the conversation
    assert steps[0] == 2 and set(steps[1:]) == {2}


def test_every_part_is_bounded_and_plans_stay_exact() -> None:
    """Conversations taking turns fill every part past its bound: each stays within it (least
    recently used out) and every plan still equals a fresh one."""
    cache = PlanCache(size=64)
    builders = [PathBuilder(prefix=f"c{k}.") for k in range(12)]
    args = {"policy": PRESETS["window"], "window_tokens": 400, "reserved_output": 50, "tokenizer": TOKENIZER}
    peak = dict.fromkeys(cache.sizes(), 0)
    for n in range(40):
        for k, builder in enumerate(builders):
            builder.round(f"q{k}.{n}", f"a{k}.{n}")
            builder.add("user", f"now {k}.{n}")
            assert plan_context(None, list(builder.items), cache=cache, **args) == plan_context(
                None, list(builder.items), **args
            )
            builder.items.pop()
            peak = {part: max(peak[part], size) for part, size in cache.sizes().items()}
    assert peak["counts"] == 16 and peak["rounds"] == 4  # filled to their bounds (a quarter, a sixteenth), not more
    assert peak["shapes"] == 4 and peak["windows"] == 4 and peak["histories"] == 4
    assert peak["history_rounds"] <= 64


def test_a_chain_keeps_one_shape_and_one_window_state() -> None:
    """Each turn's shape and window state replace the ones it extended: a chain's planning holds
    one of each and its recent rounds, however long it grows."""
    cache = PlanCache(size=4096)
    builder = PathBuilder(prefix="c.")
    for n in range(200):
        builder.add("user", f"question {n}")
        plan_context(
            None,
            list(builder.items),
            policy=PRESETS["window"],
            window_tokens=400,
            reserved_output=50,
            tokenizer=TOKENIZER,
            cache=cache,
        )
        builder.add("assistant", f"answer {n}")
    sizes = cache.sizes()
    assert sizes["shapes"] == 1 and sizes["windows"] == 1
    assert sizes["rounds"] == 256  # its bound (4096 // 16): the rounds themselves live in the history


def test_positions_are_found_whatever_the_order_of_the_ids() -> None:
    ordered = PathBuilder(prefix="item_")  # item_0 ... item_9: in order, found by bisection
    unordered = PathBuilder()  # i0, i1, ... i10, i11: "i10" sorts before "i2", found by a scan
    for n in range(6):
        ordered.round(f"q{n}", f"a{n}")
        unordered.round(f"q{n}", f"a{n}")
    for builder in (ordered, unordered):
        positions = PlanCache().positions(builder.items)
        assert [positions[item.id] for item in builder.items] == list(range(12))
        assert positions.get("elsewhere") == -1 and "elsewhere" not in positions and positions.get(None, 7) == 7


def test_histories_are_bounded_by_the_rounds_they_hold() -> None:
    """Many long conversations with whole-history windows: the assembled histories together hold
    no more rounds than the bound (least recently used out), and a plan is still exact."""
    cache = PlanCache(size=64)
    builders = [PathBuilder() for _ in range(8)]
    args = {"policy": PRESETS["window"], "window_tokens": 1_000_000, "reserved_output": 100, "tokenizer": TOKENIZER}
    peak = 0
    for n in range(30):
        for k, builder in enumerate(builders):  # the conversations take turns, as clients do
            builder.round(f"q{k}.{n}", f"a{k}.{n}")
            builder.add("user", "next?")
            assert plan_context(None, list(builder.items), cache=cache, **args) == plan_context(
                None, list(builder.items), **args
            )
            builder.items.pop()
            peak = max(peak, cache.sizes()["history_rounds"])
    assert 32 < peak <= 64  # the histories filled the bound, not more


class _FromTheStart(PlanCache):
    """Replays every window from the first round (no restart)."""

    def window(self, key, rounds, last_item, step, restart=lambda index: None):  # type: ignore[no-untyped-def]
        return super().window(key, rounds, last_item, step)


class _Counting(EstimateTokenizer):
    """Counts the texts it counts."""

    def __init__(self) -> None:
        self.texts = 0

    def count(self, text: str) -> int:
        self.texts += 1
        return super().count(text)


def test_a_first_plan_of_long_rounds_reads_the_last_rounds_only() -> None:
    """Planned for the first time (a new process), a conversation whose rounds outgrow the
    window's share is cut where a replay from its first round cuts it, counting a few rounds."""
    builder = PathBuilder()
    for n in range(300):
        builder.round(f"question {n} " * 25, f"answer {n} " * 60)  # ~100 and ~240 tokens
    builder.add("user", "and the first one?")
    args = {"policy": PRESETS["retrieval"], "window_tokens": 4000, "reserved_output": 0}
    restarted, replayed = _Counting(), _Counting()
    plan = plan_context(None, builder.items, tokenizer=restarted, cache=PlanCache(), **args)
    assert plan == plan_context(None, builder.items, tokenizer=replayed, cache=_FromTheStart(), **args)
    assert plan[1].count("kept") < 10 and replayed.texts > 600  # the whole replay counts every round
    assert restarted.texts < 20
