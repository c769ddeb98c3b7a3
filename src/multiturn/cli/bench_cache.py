"""``multiturn bench cache``: replay a scripted conversation under each context policy and show
how much of each prompt the model reused from its cache (``bench/cache.py`` does the work)."""

from __future__ import annotations

import asyncio
import json
import shlex
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..bench import cache as harness
from ..bench.cache_report import memory_note, rows, to_markdown
from .models import ensure_pulled
from .options import Model, ModelPath, settings
from .render import stdout_console


def cache(
    turns: Annotated[int, typer.Option(min=1, help="User turns replayed per policy")] = 150,
    policies: Annotated[
        str,
        typer.Option(help=f"Comma-separated, run in this order: {', '.join(harness.POLICY_CHOICES)}"),
    ] = ",".join(harness.DEFAULT_POLICIES),
    n_ctx: Annotated[int, typer.Option("--n-ctx", min=256, help="Context window of the model, in tokens")] = 2048,
    max_tokens: Annotated[int, typer.Option(min=1, help="Most tokens per answer (greedy decoding)")] = 24,
    seed: Annotated[int, typer.Option(help="Seed of the scripted user side")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results (every turn) as JSON")] = False,
    out: Annotated[
        Path | None, typer.Option(help="Also write the results here: Markdown if it ends in .md, else JSON")
    ] = None,
    model: Model = None,
    model_path: ModelPath = None,
) -> None:
    """Cached prompt tokens per context policy over a long scripted conversation.

    sliding is a naive window that drops one round per turn; window drops rounds
    in blocks so the prompt's prefix stays cached. Each policy runs in a fresh
    conversation of a temporary database, one after another. "Once full" counts
    from the first turn whose request left an earlier round out.
    """
    config = harness.BenchConfig(
        turns=turns,
        policies=tuple(name.strip() for name in policies.split(",") if name.strip()),
        n_ctx=n_ctx,
        max_tokens=max_tokens,
        seed=seed,
    )
    s = settings(model=model, model_path=model_path)
    err = Console(stderr=True)
    ensure_pulled(s, err)
    with Progress(
        TextColumn("{task.description:>10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as progress:
        tasks = {name: progress.add_task(name, total=config.turns, status="", start=False) for name in config.policies}
        seen: dict[str, list[harness.Turn]] = {}

        def on_turn(name: str, turn: harness.Turn) -> None:
            done = seen.setdefault(name, [])
            if not done:
                progress.start_task(tasks[name])
            done.append(turn)
            prompt = sum(t.prompt_tokens for t in done)
            cached = sum(t.cached_tokens for t in done)
            status = f"cached {cached / prompt:.0%} · {turn.rounds_sent} rounds" if prompt else ""
            progress.update(tasks[name], completed=len(done), status=status)
            if not err.is_terminal and (len(done) % 10 == 0 or len(done) == config.turns):
                err.print(f"{name}: turn {len(done)}/{config.turns} · {status}", highlight=False)  # logs see progress

        result = asyncio.run(harness.run(s, config, on_turn=on_turn))

    command = _command(config, model, model_path)
    if out is not None:
        text = to_markdown(result, command=command) if out.suffix == ".md" else _json(result)
        out.write_text(text, encoding="utf-8")
    if as_json:
        typer.echo(_json(result), nl=False)
        return
    console = stdout_console()
    console.print(_table(result))
    for run in result.runs:
        if run.error:
            console.print(f"[yellow]{run.name} stopped at {run.error}[/yellow]")
    note = memory_note(result)
    if note:
        console.print(f"[dim]note: {note}[/dim]")


def _table(result: harness.CacheBench) -> Table:
    c = result.config
    table = Table(
        title=f"bench cache · {result.model} · window {c.n_ctx} · {c.turns} turns · answers ≤ {c.max_tokens} tokens"
    )
    table.add_column("")
    for run in result.runs:
        table.add_column(run.name, justify="right")
    for values in rows(result):
        table.add_row(*values)
    return table


def _json(result: harness.CacheBench) -> str:
    return json.dumps(harness.to_json(result), indent=2, ensure_ascii=False) + "\n"


def _command(config: harness.BenchConfig, model: str | None, model_path: Path | None) -> str:
    args = ["multiturn", "bench", "cache", "--turns", str(config.turns), "--policies", ",".join(config.policies)]
    args += ["--n-ctx", str(config.n_ctx), "--max-tokens", str(config.max_tokens)]
    if config.seed:
        args += ["--seed", str(config.seed)]
    if model:
        args += ["--model", model]
    if model_path:
        args += ["--model-path", str(model_path)]
    return shlex.join(args)
