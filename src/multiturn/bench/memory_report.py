"""The memory benchmark's outputs: table rows, a Markdown report, a PNG plot of recall against
tokens (matplotlib, the ``bench`` extra; imported only when a plot is asked for)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .memory import Result
from .plots import pyplot

COLUMNS = ("policy", "budget", "questions", "recall", "tokens", "p50 ms", "p95 ms")


def rows(result: Result) -> list[tuple[str, ...]]:
    """One row of strings per policy x budget (F1 added when answers were scored)."""
    out: list[tuple[str, ...]] = []
    for cell in result.cells:
        s = cell.summary()
        row = (
            str(s["policy"]),
            f"{s['budget']:,}",
            str(s["questions"]),
            f"{s['recall']:.3f}",
            f"{s['tokens']:,.0f}",
            f"{s['p50_ms']:.1f}",
            f"{s['p95_ms']:.1f}",
        )
        out.append((*row, f"{s['f1']:.3f}") if s["f1"] is not None else row)
    return out


def columns(result: Result) -> tuple[str, ...]:
    return (*COLUMNS, "answer F1") if result.answer_model else COLUMNS


def to_markdown(result: Result, command: str) -> str:
    head = columns(result)
    lines = [
        "| " + " | ".join(head) + " |",
        "| " + " | ".join("---" for _ in head) + " |",
        *("| " + " | ".join(row) + " |" for row in rows(result)),
    ]
    summary = result.as_json()
    return "\n".join(
        [
            f"Data: `{result.data}`: {result.conversations} conversations, {result.questions} questions, "
            f"history {summary['history_tokens_median']:,.0f} tokens (median).",
            f"Embedder: {result.embedder or 'none (lexical only)'}.",
            "",
            "```",
            command,
            "```",
            "",
            *lines,
            "",
        ]
    )


def plot(result: Result, path: Path) -> None:
    """Recall against mean tokens sent, one line per policy, a point per budget.

    Raises:
        MissingDependency: matplotlib (the ``bench`` extra) is not installed.
    """
    plt = pyplot()
    figure, axes = plt.subplots(figsize=(7, 4.5), dpi=120)
    by_policy: dict[str, list[dict[str, Any]]] = {}
    for cell in result.cells:
        by_policy.setdefault(cell.policy, []).append(cell.summary())
    for policy, cells in by_policy.items():
        cells.sort(key=lambda c: c["budget"])
        axes.plot([c["tokens"] for c in cells], [c["recall"] for c in cells], marker="o", label=policy)
        for c in cells:
            axes.annotate(
                f"{c['budget'] / 1000:g}k",
                (c["tokens"], c["recall"]),
                textcoords="offset points",
                xytext=(4, -10),
                fontsize=7,
            )
    axes.set_xlabel("tokens sent (mean per question)")
    axes.set_ylabel("evidence recall")
    axes.set_ylim(0, 1)
    axes.grid(True, alpha=0.3)
    axes.legend()
    axes.set_title(f"{Path(result.data).name}: {result.questions} questions")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
