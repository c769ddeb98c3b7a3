"""``multiturn bench``: the benchmarks, one command each (each command's module does the work)."""

from __future__ import annotations

import typer

from . import bench_cache, bench_memory

app = typer.Typer(help="Benchmarks of context management.", no_args_is_help=True)
app.command("memory")(bench_memory.memory)
app.command("cache")(bench_cache.cache)
