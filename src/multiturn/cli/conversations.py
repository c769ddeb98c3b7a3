"""``multiturn conversations list|show|export|delete``."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console

from .. import export as jsonl
from ..client import AsyncClient
from .options import Db, settings
from .render import conversations_table, history

app = typer.Typer(help="List, show, export and delete stored conversations.", no_args_is_help=True)
T = TypeVar("T")

ConversationId = Annotated[str, typer.Argument(help="Conversation id (see `multiturn conversations list`)")]


def run(db: str | None, job: Callable[[AsyncClient], Awaitable[T]]) -> T:
    async def main() -> T:
        async with AsyncClient(settings(db=db)) as client:
            return await job(client)

    return asyncio.run(main())


@app.command("list")
def list_conversations(
    db: Db = None,
    limit: Annotated[int, typer.Option(min=1, help="How many, newest first")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line")] = False,
) -> None:
    """List conversations, most recently active first."""
    records = run(db, lambda c: c.list(limit))
    if as_json:
        for record in records:
            typer.echo(json.dumps(jsonl.conversation_to_json(record), ensure_ascii=False))
    elif records:
        Console().print(conversations_table(records))
    else:
        typer.echo("no conversations yet: start one with `multiturn chat`", err=True)


@app.command("show")
def show(
    conversation_id: ConversationId,
    db: Db = None,
    as_json: Annotated[bool, typer.Option("--json", help="The current path as JSON lines")] = False,
) -> None:
    """Show a conversation's current path (root to head)."""

    async def job(client: AsyncClient) -> None:
        conversation = await client.conversation(conversation_id)
        record = await conversation.record()
        items = await conversation.history()
        if as_json:
            for line in jsonl.to_jsonl(record, items):
                typer.echo(line)
        else:
            console = Console()
            console.print(f"[bold]{record.title or '(untitled)'}[/bold]  [dim]{record.id}[/dim]")
            console.print(history(items, record.system_prompt))

    run(db, job)


@app.command("export")
def export(
    conversation_id: ConversationId,
    db: Db = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File to write (default: stdout)")] = None,
) -> None:
    """Export a conversation with its whole tree (every branch) as JSON Lines."""

    async def job(client: AsyncClient) -> list[str]:
        record = await (await client.conversation(conversation_id)).record()
        items = await client.store.items(conversation_id)
        return list(jsonl.to_jsonl(record, items))

    lines = run(db, job)
    if output is None:
        sys.stdout.write("".join(line + "\n" for line in lines))
    else:
        output.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        typer.echo(f"wrote {len(lines) - 1} items to {output}", err=True)


@app.command("delete")
def delete(
    conversation_id: ConversationId,
    db: Db = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation")] = False,
) -> None:
    """Delete a conversation and every item of it."""

    async def check(client: AsyncClient) -> None:
        await client.conversation(conversation_id)

    run(db, check)
    if not yes and not typer.confirm(f"delete {conversation_id} and all its items?"):
        raise typer.Exit(1)
    run(db, lambda c: c.store.delete_conversation(conversation_id))
    typer.echo(f"deleted {conversation_id}", err=True)
