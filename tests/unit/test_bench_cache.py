"""The cache benchmark's pure parts: the scripted user side, the policy choices, the summary."""

from __future__ import annotations

import re

import pytest

from multiturn.bench.cache import SLIDING, BenchConfig, CacheBench, PolicyRun, Turn, resolve_policies, to_json
from multiturn.bench.cache_report import memory_note, misses, rows, to_markdown
from multiturn.bench.planning_script import OPENING, TEMPLATES, user_turns
from multiturn.context.plan import preset
from multiturn.errors import InvalidInput
from multiturn.tokens import QwenTokenizer


def test_the_script_is_deterministic_and_realistic() -> None:
    turns = user_turns(150)
    assert turns == user_turns(150)
    assert turns[:20] == user_turns(20)
    assert turns != user_turns(150, seed=1)
    assert turns[0] == OPENING
    assert len(set(turns)) > 140
    tokenizer = QwenTokenizer()
    counts = [tokenizer.count(text) for text in turns]
    assert min(counts) >= 15 and max(counts) <= 70
    assert 25 <= sum(counts) / len(counts) <= 50
    patterns = [re.compile(re.sub(r"\\\{[^}]*\\\}", ".+?", re.escape(t)) + "( .+)?") for t in TEMPLATES]
    used = {i for text in turns[1:] for i, pattern in enumerate(patterns) if pattern.fullmatch(text)}
    assert used == set(range(len(TEMPLATES)))  # every kind of message occurs
    assert user_turns(0) == []
    with pytest.raises(ValueError, match="turns must be >= 0"):
        user_turns(-1)


def test_policy_names() -> None:
    chosen = resolve_policies(["window", " sliding", "auto"])
    assert [name for name, _ in chosen] == ["window", "sliding", "auto"]
    assert chosen[0][1] == preset("window") and chosen[2][1] == preset("auto")
    assert chosen[1][1] is SLIDING and SLIDING.name == "window" and SLIDING.low_water == 1.0
    with pytest.raises(InvalidInput, match="unknown policy 'windw'"):
        resolve_policies(["window", "windw"])
    with pytest.raises(InvalidInput, match="listed twice"):
        resolve_policies(["window", "window"])
    with pytest.raises(InvalidInput, match="no policy"):
        resolve_policies([" "])


def test_config_refuses_what_cannot_run() -> None:
    with pytest.raises(InvalidInput, match="turns must be >= 1"):
        BenchConfig(turns=0)
    with pytest.raises(InvalidInput, match="below half the window"):
        BenchConfig(n_ctx=512, max_tokens=256)
    with pytest.raises(InvalidInput, match="unknown policy"):
        BenchConfig(policies=("cache",))


def _turn(index: int, prompt: int, cached: int, left_out: int) -> Turn:
    return Turn(index, prompt, cached, 8, index - left_out, left_out, 0, 0, prompt, 1.0, 0.5, "completed")


def test_totals_count_from_the_first_turn_that_leaves_a_round_out() -> None:
    window = PolicyRun(
        "window",
        preset("window"),
        (_turn(1, 100, 0, 0), _turn(2, 200, 150, 0), _turn(3, 150, 40, 1), _turn(4, 200, 180, 1)),
    )
    sliding = PolicyRun("sliding", SLIDING, (_turn(1, 100, 0, 0), _turn(2, 200, 40, 1)), error="turn 3: boom")
    assert window.full_from == 3 and [t.index for t in window.full_turns] == [3, 4]
    assert window.totals(window.full_turns)["cached_ratio"] == pytest.approx(220 / 350)
    assert window.totals()["computed_tokens"] == 650 - 370
    assert misses(window) == 1 and misses(sliding) == 1
    never = PolicyRun("window", preset("window"), (_turn(1, 100, 0, 0),))
    assert never.full_from is None and never.totals(never.full_turns)["cached_ratio"] is None

    result = CacheBench(BenchConfig(turns=4), "m", {"compaction": False, "recall": False}, 1.0, (window, sliding))
    table = dict((r[0], r[1:]) for r in rows(result))
    assert table["cached ratio once full"] == ("62.9%", "20.0%")
    assert table["window full from turn"] == ("3", "2")
    assert table["turns"] == ("4", "2 (stopped)")
    page = to_markdown(result, command="multiturn bench cache --turns 4")
    assert "| policy | `window` | `sliding` |" in page and "- `sliding` stopped at turn 3: boom" in page
    assert memory_note(result) is None  # neither policy uses memory
    data = to_json(result)
    assert data["policies"][0]["once_full"]["turns"] == 2 and data["policies"][1]["error"] == "turn 3: boom"


def test_memory_note_names_the_policies_that_ran_without_memory() -> None:
    runs = tuple(PolicyRun(name, preset(name), ()) for name in ("window", "summary", "auto"))
    bare = CacheBench(BenchConfig(), "m", {"compaction": False, "recall": False}, 0.0, runs)
    assert memory_note(bare) == (
        "the engine had no summaries and recall wired, so summary, auto ran without that memory: "
        "summary planned exactly as window, auto as a window over 60 % of the budget"
    )
    half = CacheBench(BenchConfig(), "m", {"compaction": True, "recall": False}, 0.0, runs)
    assert memory_note(half) == "the engine had no recall wired, so auto ran without that memory"
    wired = CacheBench(BenchConfig(), "m", {"compaction": True, "recall": True}, 0.0, runs)
    assert memory_note(wired) is None
