"""``bench cache`` on the real model: a short replay with a tiny window, long enough to drop rounds.

The command runs in its own process, as a user runs it, with ``--json`` and ``--out``; the
checks read what the backend reported for every turn. With a 512-token window and 8-token
answers the history outgrows the window after about eight turns, so the last turns show the
difference the window policy exists for: the naive sliding window drops a round from the front
on every turn and loses the cached prefix each time; the block-dropping window keeps it.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from .conftest import Cli

pytestmark = [pytest.mark.model, pytest.mark.usefixtures("model_pulled")]

TURNS, N_CTX, MAX_TOKENS = 14, 512, 8


def _bench(cli: Cli, *args: str) -> subprocess.CompletedProcess[str]:
    return cli.run("bench", "cache", *args, timeout=900)


@pytest.mark.timeout(900)
def test_window_keeps_the_cache_that_a_sliding_window_loses(cli: Cli) -> None:
    report = cli.home / "cache.md"
    done = _bench(
        cli,
        *("--turns", str(TURNS), "--policies", "window,sliding", "--n-ctx", str(N_CTX)),
        *("--max-tokens", str(MAX_TOKENS), "--json", "--out", str(report)),
    )
    assert done.returncode == 0, done.stderr
    assert "window: turn 10/14 · cached" in done.stderr and "sliding: turn 14/14" in done.stderr  # progress in logs
    result = json.loads(done.stdout)

    assert result["config"]["turns"] == TURNS and result["config"]["n_ctx"] == N_CTX
    assert set(result["memory"]) == {"compaction", "recall"}
    runs = {run["name"]: run for run in result["policies"]}
    assert list(runs) == ["window", "sliding"]
    assert runs["sliding"]["policy"]["low_water"] == 1.0

    for run in runs.values():
        turns = run["turns"]
        assert run["error"] is None
        assert [t["index"] for t in turns] == list(range(1, TURNS + 1))
        for t in turns:
            assert t["status"] == "completed"
            assert 0 <= t["cached_tokens"] <= t["prompt_tokens"]
            assert t["computed_tokens"] == t["prompt_tokens"] - t["cached_tokens"]
            assert t["prompt_tokens"] + t["completion_tokens"] <= N_CTX
            assert 0 < t["completion_tokens"] <= MAX_TOKENS
            assert t["rounds_sent"] + t["rounds_left_out"] == t["index"]
        _check_totals(run)

    # Same messages, greedy answers, same budget: both fill the window at (about) the same turn.
    full_from = runs["window"]["full_from"]
    assert full_from is not None and 2 < full_from <= TURNS - 3
    assert abs(runs["sliding"]["full_from"] - full_from) <= 1

    window_full = runs["window"]["turns"][full_from - 1 :]
    sliding_full = runs["sliding"]["turns"][runs["sliding"]["full_from"] - 1 :]
    for full in (window_full, sliding_full):
        left_out = [t["rounds_left_out"] for t in full]
        assert left_out == sorted(left_out)  # the cut never moves back
    # The sliding window drops a round from the front (almost) every turn, and each such turn
    # evaluates nearly the whole prompt again.
    moved = [
        t
        for t, before in zip(sliding_full[1:], sliding_full, strict=False)
        if t["rounds_left_out"] > before["rounds_left_out"]
    ]
    assert len(moved) >= len(sliding_full) - 2
    assert all(t["cached_tokens"] * 2 < t["prompt_tokens"] for t in [sliding_full[0], *moved])
    # The window's cut stays put between drops, and those turns reuse almost all of the prompt.
    assert len({t["rounds_left_out"] for t in window_full}) < len(window_full)
    steady = [
        t
        for t, before in zip(window_full[1:], window_full, strict=False)
        if t["rounds_left_out"] == before["rounds_left_out"]
    ]
    assert steady and all(t["cached_tokens"] > 0.7 * t["prompt_tokens"] for t in steady)

    window_ratio = runs["window"]["once_full"]["cached_ratio"]
    sliding_ratio = runs["sliding"]["once_full"]["cached_ratio"]
    assert 0 <= sliding_ratio < window_ratio <= 1
    assert runs["window"]["once_full"]["computed_tokens"] < runs["sliding"]["once_full"]["computed_tokens"]

    page = report.read_text(encoding="utf-8")
    assert "multiturn bench cache --turns 14 --policies window,sliding --n-ctx 512 --max-tokens 8" in page
    assert "| policy | `window` | `sliding` |" in page
    assert f"| cached ratio once full | {window_ratio:.1%} | {sliding_ratio:.1%} |" in page


def _check_totals(run: dict[str, Any]) -> None:
    turns = run["turns"]
    overall = run["overall"]
    assert overall["turns"] == len(turns)
    assert overall["prompt_tokens"] == sum(t["prompt_tokens"] for t in turns)
    assert overall["cached_tokens"] == sum(t["cached_tokens"] for t in turns)
    assert overall["computed_tokens"] == overall["prompt_tokens"] - overall["cached_tokens"]
    assert 0 <= overall["cached_ratio"] <= 1
    assert overall["mean_ttft"] > 0
    once_full = run["once_full"]
    assert once_full["turns"] == TURNS - run["full_from"] + 1
    assert once_full["prompt_tokens"] == sum(t["prompt_tokens"] for t in turns[run["full_from"] - 1 :])
