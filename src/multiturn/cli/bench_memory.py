"""``multiturn bench memory``: evidence recall, tokens and assembly latency per context policy
and budget on a LoCoMo or LongMemEval file (``bench/memory.py`` does the work)."""

from __future__ import annotations

import asyncio
import json
import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ..bench import memory as harness
from ..bench import memory_report
from ..errors import InvalidInput, MissingDependency
from .progress import counting
from .render import stdout_console


def _csv(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


def _budgets(value: str) -> tuple[int, ...]:
    try:
        return tuple(int(float(b[:-1]) * 1000) if b.lower().endswith("k") else int(b) for b in _csv(value))
    except ValueError:
        raise InvalidInput(f"bad budgets {value!r}: use token counts such as 1000,2000 or 1k,2k") from None


def memory(
    data: Annotated[
        Path, typer.Option(help="LoCoMo (locomo10.json) or LongMemEval JSON file", exists=True, dir_okay=False)
    ],
    policies: Annotated[str, typer.Option(help=f"Comma-separated: {', '.join(harness.POLICY_CHOICES)}")] = ",".join(
        harness.DEFAULT_POLICIES
    ),
    budgets: Annotated[str, typer.Option(help="Comma-separated token budgets (1000 or 1k)")] = "1k,2k,4k,8k",
    conversations: Annotated[int | None, typer.Option(min=1, help="Use the first N conversations")] = None,
    questions: Annotated[int | None, typer.Option(min=1, help="At most N questions per conversation")] = None,
    categories: Annotated[
        str | None, typer.Option(help="Question categories to keep (default: LoCoMo 1-4, every LongMemEval type)")
    ] = None,
    db: Annotated[str | None, typer.Option(help="Store to replay into (default: a temporary SQLite file)")] = None,
    embedder: Annotated[str, typer.Option(help="wordllama, none (lexical only), or an upstream alias")] = "wordllama",
    answer: Annotated[
        bool,
        typer.Option(
            "--answer",
            help="Also ask each question through --model and score the answer (token F1). The embedded "
            "0.5B model is too weak for answer accuracy to mean much; use a strong upstream alias.",
        ),
    ] = False,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Model alias that answers (with --answer)")] = None,
    max_tokens: Annotated[int, typer.Option(min=1, help="Most tokens per answer")] = 64,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON")] = False,
    plot: Annotated[Path | None, typer.Option(help="Write a PNG plot of recall against tokens here")] = None,
    out: Annotated[Path | None, typer.Option(help="Write the table and the command as Markdown here")] = None,
    by_category: Annotated[
        bool, typer.Option("--by-category", help="Also show recall per question category or type")
    ] = False,
    per_question: Annotated[
        Path | None,
        typer.Option(help="Write one JSON line per question, policy and budget here (recall, tokens, evidence)"),
    ] = None,
) -> None:
    """Evidence recall per context policy and token budget on a long-conversation data set.

    Every conversation is replayed into a store and indexed (no model is called); for each
    question the context a turn asking it would send is built (Engine.preview) under each policy
    and budget. Recall is the share of the question's evidence turns present verbatim in it;
    tokens are counted with the Qwen tokenizer; latency is the whole context assembly.
    """
    if answer and not model:
        raise InvalidInput("--answer needs --model ALIAS (the model that answers)")
    options = harness.Options(
        data=data,
        policies=_csv(policies),
        budgets=_budgets(budgets),
        conversations=conversations,
        questions=questions,
        categories=frozenset(_csv(categories)) if categories else None,
        db=db,
        embedder=embedder,
        answer_model=model if answer else None,
        max_tokens=max_tokens,
    )
    err = Console(stderr=True)
    with counting("questions", err) as advance:
        result = asyncio.run(harness.run(options, progress=advance))
    command = "multiturn bench memory " + shlex.join(sys.argv[3:] if sys.argv[1:3] == ["bench", "memory"] else [])
    if out is not None:
        out.write_text(memory_report.to_markdown(result, command.strip()))
    if plot is not None:
        try:
            memory_report.plot(result, plot)
        except MissingDependency as exc:
            err.print(f"no plot: {exc.message}")
    if per_question is not None:
        with per_question.open("w", encoding="utf-8") as lines:
            for cell in result.cells:
                for record in cell.per_question():
                    lines.write(json.dumps(record, ensure_ascii=False) + "\n")
    if as_json:
        typer.echo(json.dumps(result.as_json(), indent=2))
        return
    table = Table(title=f"{data.name}: {result.questions} questions, {result.conversations} conversations")
    for column in memory_report.columns(result):
        table.add_column(column, justify="left" if column == "policy" else "right")
    for row in memory_report.rows(result):
        table.add_row(*row)
    stdout_console().print(table)
    if by_category:
        stdout_console().print(_category_table(result))


def _category_table(result: harness.Result) -> Table:
    """Recall per category (columns) for every policy and budget (rows)."""
    categories = sorted({c for cell in result.cells for c in cell.by_category()})
    table = Table(title="recall by question category (questions in brackets)")
    table.add_column("policy")
    table.add_column("budget", justify="right")
    for category in categories:
        table.add_column(category, justify="right")
    for cell in result.cells:
        found = cell.by_category()
        shown = [f"{found[c]['recall']:.3f} ({int(found[c]['questions'])})" if c in found else "-" for c in categories]
        table.add_row(cell.policy, str(cell.budget), *shown)
    return table
