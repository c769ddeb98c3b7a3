"""Progress of a long command on stderr: a bar on a terminal, a line every tenth otherwise."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

Advance = Callable[[int, int], None]
"""``advance(done, total)``: ``done`` of ``total`` steps are finished."""


@contextmanager
def counting(label: str, err: Console, *, lines_above: int = 0) -> Iterator[Advance]:
    """A progress bar on ``err`` labelled ``label`` while the block runs; when ``err`` is not a
    terminal (a log), a line ``label: done/total`` at every tenth of the way and at the end,
    only for more than ``lines_above`` steps."""
    with Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    ) as bar:
        task = bar.add_task(label, total=None)
        shown = 0

        def advance(done: int, total: int) -> None:
            nonlocal shown
            bar.update(task, completed=done, total=total)
            step = max(1, total // 10)
            if not err.is_terminal and total > lines_above and (done // step > shown // step or done == total):
                err.print(f"{label}: {done}/{total}", highlight=False)
            shown = done

        yield advance
