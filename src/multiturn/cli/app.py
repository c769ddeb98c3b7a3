"""The ``multiturn`` command: one Typer app, one module per command group.

Errors never reach the terminal as tracebacks: a ``MultiturnError`` (or invalid settings)
becomes one line on stderr and the error's exit code.
"""

from __future__ import annotations

import sys

import typer
from pydantic import ValidationError

from ..errors import MultiturnError
from . import bench, chat, conversations, keys, models, replay, serve
from .render import one_line

app = typer.Typer(
    name="multiturn",
    help="Durable multi-turn conversations on top of stateless chat APIs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
)
app.command("chat")(chat.chat)
app.command("serve")(serve.serve)
app.command("replay")(replay.replay_command)
app.add_typer(conversations.app, name="conversations")
app.add_typer(models.app, name="models")
app.add_typer(bench.app, name="bench")
app.add_typer(keys.app, name="keys")


def main() -> None:
    try:
        app()
    except MultiturnError as exc:
        typer.echo(f"multiturn: error: {one_line(exc.message)}", err=True)
        sys.exit(exc.exit_code)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        typer.echo(f"multiturn: error: invalid setting: {problems}", err=True)
        sys.exit(2)
