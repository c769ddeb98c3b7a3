"""The cache benchmark's summary: one column per policy, as plain values and as Markdown. Pure.

A *miss* is a turn, once the window is full, that evaluated more than half of its prompt again
(the cached prefix was lost: a round dropped from the front, a new summary, recalled rounds
that changed).
"""

from __future__ import annotations

from collections.abc import Sequence

from .cache import CacheBench, PolicyRun


def _ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def misses(run: PolicyRun) -> int:
    return sum(1 for t in run.full_turns if t.computed_tokens * 2 > t.prompt_tokens)


def column(run: PolicyRun) -> tuple[str, ...]:
    """One policy's values, in the order of ``METRICS``."""
    overall, full = run.totals(), run.totals(run.full_turns)
    return (
        str(overall["turns"]) + (" (stopped)" if run.error else ""),
        f"{overall['prompt_tokens']:,}",
        f"{overall['cached_tokens']:,}",
        _ratio(overall["cached_ratio"]),
        "—" if run.full_from is None else str(run.full_from),
        _ratio(full["cached_ratio"]),
        f"{misses(run)}/{full['turns']}" if full["turns"] else "—",
        f"{overall['computed_tokens']:,}",
        f"{full['computed_tokens']:,}" if full["turns"] else "—",
        f"{overall['seconds']:.1f}",
        _seconds(overall["mean_ttft"]),
        _seconds(full["mean_ttft"]),
    )


METRICS = (
    "turns",
    "prompt tokens",
    "cached tokens",
    "cached ratio",
    "window full from turn",
    "cached ratio once full",
    "misses once full",
    "computed tokens",
    "computed once full",
    "wall time, s",
    "mean TTFT, s",
    "mean TTFT once full, s",
)


def rows(result: CacheBench) -> list[tuple[str, ...]]:
    """One row per metric, one column per policy (narrow enough for a terminal)."""
    columns = [column(run) for run in result.runs]
    return [(metric, *(values[i] for values in columns)) for i, metric in enumerate(METRICS)]


def memory_note(result: CacheBench) -> str | None:
    """A warning when ``summary``/``retrieval``/``auto`` ran without the memory they use."""
    compaction, recall = result.memory.get("compaction", False), result.memory.get("recall", False)
    short = [
        run.name
        for run in result.runs
        if (run.policy.uses_summary and not compaction) or (run.policy.uses_recall and not recall)
    ]
    if not short:
        return None
    missing = " and ".join(what for what, wired in (("summaries", compaction), ("recall", recall)) if not wired)
    note = f"the engine had no {missing} wired, so {', '.join(short)} ran without that memory"
    if not compaction and not recall:
        note += ": summary planned exactly as window, auto as a window over 60 % of the budget"
    return note


def to_markdown(result: CacheBench, *, command: str | None = None, notes: Sequence[str] = ()) -> str:
    """A results page: the command, the configuration, the table, the errors and notes."""
    c = result.config
    lines = ["# Cache benchmark: cached prompt tokens per context policy", ""]
    if command:
        lines += ["```", command, "```", ""]
    lines += [
        f"Model `{result.model}`, window {c.n_ctx} tokens, answers of at most {c.max_tokens} tokens "
        f"(greedy), {c.turns} scripted user turns (seed {c.seed}); model load {result.load_seconds:.1f} s.",
        "",
        "| " + " | ".join(["policy", *(f"`{run.name}`" for run in result.runs)]) + " |",
        "|---|" + "---:|" * len(result.runs),
    ]
    lines += ["| " + " | ".join(values) + " |" for values in rows(result)]
    lines.append("")
    for run in result.runs:
        if run.error:
            lines.append(f"- `{run.name}` stopped at {run.error}")
    note = memory_note(result)
    lines += [f"- {text}" for text in ([note] if note else []) + list(notes)]
    return "\n".join(lines).rstrip() + "\n"
