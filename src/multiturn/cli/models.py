"""``multiturn models list|pull``: the model catalogue."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

from .. import catalog
from ..settings import Settings
from .options import settings
from .render import models_table

app = typer.Typer(help="List and pull models from the catalogue.", no_args_is_help=True)


@app.command("list")
def list_models() -> None:
    """Show the catalogue and which models are pulled."""
    s = settings()
    rows = [(spec, catalog.is_pulled(spec, s.models_dir)) for spec in catalog.CATALOG]
    Console().print(models_table(rows, s.model))


@app.command("pull")
def pull(name: Annotated[str | None, typer.Argument(help="Model name (default: the configured model)")] = None) -> None:
    """Fetch a catalogue model into the cache directory and verify its SHA-256."""
    s = settings()
    spec = catalog.find(name or s.model)
    path = pull_with_progress(spec, s, Console(stderr=True))
    typer.echo(str(path))


def pull_with_progress(spec: catalog.ModelSpec, s: Settings, console: Console) -> str:
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    ) as progress:
        tasks: dict[str, TaskID] = {}

        def report(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = progress.add_task(f"{stage} {spec.name}", total=total)
            progress.update(tasks[stage], completed=done, total=total)

        path = catalog.pull(spec, s.models_dir, report)
    return str(path)


def ensure_pulled(s: Settings, console: Console) -> None:
    """Pull the configured catalogue model on first use, with a progress bar."""
    if s.model_path is not None:
        return
    spec = catalog.find(s.model)
    if not catalog.is_pulled(spec, s.models_dir):
        console.print(f"[dim]pulling {spec.name} ({spec.size / 1e6:.0f} MB) from {spec.source.describe()}...[/dim]")
        pull_with_progress(spec, s, console)
