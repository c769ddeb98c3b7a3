"""``multiturn conversations list|show|export|import|delete|prune``.

Every command acts for one tenant (``--tenant``, default ``default``): another tenant's
conversation is "not found". ``prune`` is the exception: it applies the retention rule to every
tenant unless ``--tenant`` narrows it.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from .. import export as jsonl
from ..client import AsyncClient
from ..errors import InvalidInput
from ..store.base import DEFAULT_TENANT
from .options import Db, settings
from .render import conversations_table, history, stdout_console, when

app = typer.Typer(help="List, show, export, import, delete and prune stored conversations.", no_args_is_help=True)
T = TypeVar("T")

ConversationId = Annotated[str, typer.Argument(help="Conversation id (see `multiturn conversations list`)")]
Tenant = Annotated[str, typer.Option("--tenant", help="The tenant whose conversations these are")]


def run(db: str | None, job: Callable[[AsyncClient], Awaitable[T]], tenant: str = DEFAULT_TENANT) -> T:
    """Run ``job`` with a client whose engine acts for ``tenant``."""

    async def main() -> T:
        async with AsyncClient(settings(db=db)) as client:
            client.engine = client.engine.for_tenant(tenant)
            return await job(client)

    return asyncio.run(main())


@app.command("list")
def list_conversations(
    db: Db = None,
    limit: Annotated[int, typer.Option(min=1, help="How many, newest first")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line")] = False,
    tenant: Tenant = DEFAULT_TENANT,
) -> None:
    """List conversations, most recently active first."""
    records = run(db, lambda c: c.list(limit), tenant)
    if as_json:
        for record in records:
            typer.echo(json.dumps(jsonl.conversation_to_json(record), ensure_ascii=False))
    elif records:
        stdout_console().print(conversations_table(records))
    else:
        typer.echo("no conversations yet: start one with `multiturn chat`", err=True)


@app.command("show")
def show(
    conversation_id: ConversationId,
    db: Db = None,
    as_json: Annotated[bool, typer.Option("--json", help="The current path as JSON lines")] = False,
    tenant: Tenant = DEFAULT_TENANT,
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
            console = stdout_console()
            console.print(f"[bold]{record.title or '(untitled)'}[/bold]  [dim]{record.id}[/dim]")
            console.print(history(items, record.system_prompt))

    run(db, job, tenant)


@app.command("export")
def export(
    conversation_id: ConversationId,
    db: Db = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File to write (default: stdout)")] = None,
    tenant: Tenant = DEFAULT_TENANT,
) -> None:
    """Export a conversation with its whole tree (every branch) as JSON Lines."""

    async def job(client: AsyncClient) -> list[str]:
        record = await (await client.conversation(conversation_id)).record()
        items = await client.store.items(conversation_id, tenant_id=tenant)
        return list(jsonl.to_jsonl(record, items))

    lines = run(db, job, tenant)
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
    tenant: Tenant = DEFAULT_TENANT,
) -> None:
    """Delete a conversation and everything stored about it (items, summaries, index rows)."""

    async def check(client: AsyncClient) -> None:
        await client.conversation(conversation_id)

    run(db, check, tenant)
    if not yes and not typer.confirm(f"delete {conversation_id} and all its items?"):
        raise typer.Exit(1)
    run(db, lambda c: c.store.delete_conversation(conversation_id, tenant_id=tenant))
    typer.echo(f"deleted {conversation_id}", err=True)


@app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(help="A file written by `multiturn conversations export`; - for stdin")],
    db: Db = None,
    tenant: Tenant = DEFAULT_TENANT,
) -> None:
    """Import an exported conversation (its whole tree) under new ids; prints the new id.

    The file is checked whole before anything is written, and written in one transaction."""
    if str(file) == "-":
        text = sys.stdin.read()
    else:
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise InvalidInput(f"cannot read {file}: {reason}") from exc
    conversation, items = jsonl.from_jsonl(text.splitlines())
    record = run(db, lambda c: c.store.import_conversation(conversation, items, tenant_id=tenant), tenant)
    typer.echo(record.id)
    typer.echo(f"imported {len(items)} items as {record.id}", err=True)


@app.command("prune")
def prune(
    older_than: Annotated[str, typer.Option("--older-than", help="Age of the last activity: 30d, 12h, 90m, 2w")],
    db: Db = None,
    tenant: Annotated[
        str | None, typer.Option("--tenant", help="Only this tenant's conversations [default: every tenant]")
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation")] = False,
) -> None:
    """Delete every conversation with no activity for that long (retention)."""
    cutoff = int(time.time() * 1000) - duration_ms(older_than)
    scope = f"tenant {tenant}" if tenant is not None else "every tenant"
    if not yes and not typer.confirm(f"delete the conversations of {scope} with no activity since {when(cutoff)}?"):
        raise typer.Exit(1)
    deleted = run(db, lambda c: c.store.prune(cutoff, tenant_id=tenant))
    for conversation_id in deleted:
        typer.echo(conversation_id)
    typer.echo(f"deleted {len(deleted)} conversations with no activity since {when(cutoff)}", err=True)


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"\s*(\d+)\s*([smhdw])\s*")


def duration_ms(text: str) -> int:
    """``30d`` (also s, m, h, w) in milliseconds. Raises ``InvalidInput``."""
    match = _DURATION.fullmatch(text)
    if match is None:
        raise InvalidInput(f"--older-than {text!r}: expected a number and a unit, as in 30d, 12h, 90m, 2w or 45s")
    return int(match.group(1)) * _UNITS[match.group(2)] * 1000
