"""``multiturn models list|pull``: the model catalogue."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

from .. import catalog
from ..errors import ModelNotFound
from ..settings import Settings
from .options import settings
from .render import models_table, stdout_console

app = typer.Typer(help="List and pull models from the catalogue.", no_args_is_help=True)


@app.command("list")
def list_models() -> None:
    """Show the catalogue and which models are pulled."""
    s = settings()
    rows = [(spec, catalog.is_pulled(spec, s.models_dir)) for spec in catalog.CATALOG]
    stdout_console().print(models_table(rows, s.model))


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


def embedded_target(s: Settings) -> str:
    """The catalogue model ``s.model`` runs when embedded (an alias's, or itself). Raises
    ModelNotFound: neither an alias nor a catalogue model."""
    alias = s.models.get(s.model)
    if alias is None:
        if any(spec.name == s.model for spec in catalog.CATALOG):
            return s.model
        aliases = ", ".join(s.models) or "none"
        known = ", ".join(spec.name for spec in catalog.CATALOG)
        raise ModelNotFound(
            f"unknown model {s.model!r}: neither an alias ({aliases}) nor a catalogue model ({known}); "
            "configure an alias under [models] or pass --model-path FILE.gguf"
        )
    return alias.model or catalog.embedded_model(s.model, s.model_path)


def ensure_pulled(s: Settings, console: Console) -> None:
    """Pull the catalogue model the configured model runs on (itself, or what its alias runs)
    on first use, with a progress bar; nothing for an upstream alias or a local file. Raises
    NotFound: neither an alias nor a catalogue model."""
    alias = s.models.get(s.model)
    if s.model_path is not None or (alias is not None and alias.backend == "upstream"):
        return
    spec = catalog.find(embedded_target(s))
    if not catalog.is_pulled(spec, s.models_dir):
        console.print(f"[dim]pulling {spec.name} ({spec.size / 1e6:.0f} MB) from {spec.source.describe()}...[/dim]")
        pull_with_progress(spec, s, console)
