"""``multiturn keys create|list|revoke``: the gateway's stored API keys.

A key is printed once, by ``create``, and never again: the database keeps only its SHA-256
and its first characters. Once any key exists the gateway requires a key on every request
(see ``server/auth.py``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any, TypeVar

import typer
from rich.table import Table

from ..context.plan import preset
from ..errors import InvalidInput
from ..store.base import DEFAULT_TENANT, ApiKeyRecord
from ..store.sql import SQLStore
from .options import Db, settings
from .render import stdout_console, when

app = typer.Typer(help="Create, list and revoke the gateway's API keys.", no_args_is_help=True)
T = TypeVar("T")

Tenant = Annotated[str | None, typer.Option("--tenant", help="Only this tenant's keys [default: every tenant]")]


def run(db: str | None, job: Callable[[SQLStore], Awaitable[T]]) -> T:
    async def main() -> T:
        store = SQLStore(settings(db=db).database_url)
        try:
            await store.migrate()
            return await job(store)
        finally:
            await store.close()

    return asyncio.run(main())


@app.command("create")
def create(
    db: Db = None,
    tenant: Annotated[str, typer.Option("--tenant", help="The tenant the key acts for")] = DEFAULT_TENANT,
    name: Annotated[str | None, typer.Option("--name", help="A label to tell keys apart")] = None,
    policy: Annotated[
        str | None, typer.Option("--policy", help="Context policy preset for requests made with this key")
    ] = None,
) -> None:
    """Create a key and print it (once: it is not stored and cannot be shown again)."""
    if not tenant.strip():
        raise InvalidInput("--tenant is empty")
    if policy is not None:
        preset(policy)  # an unknown preset fails here, as one line
    record, key = run(db, lambda store: store.create_api_key(tenant_id=tenant, name=name, policy=policy))
    typer.echo(key)
    typer.echo(f"created {record.id} for tenant {record.tenant_id}: store the key now, it is not shown again", err=True)


@app.command("list")
def list_keys(
    db: Db = None,
    tenant: Tenant = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line")] = False,
) -> None:
    """List keys (never the keys themselves): id, tenant, name, prefix, created, revoked."""
    records = run(db, lambda store: store.list_api_keys(tenant_id=tenant))
    if as_json:
        for record in records:
            typer.echo(json.dumps(key_to_json(record), ensure_ascii=False))
    elif records:
        stdout_console().print(keys_table(records))
    else:
        typer.echo("no API keys: create one with `multiturn keys create`", err=True)


@app.command("revoke")
def revoke(
    key_id: Annotated[str, typer.Argument(help="Key id (see `multiturn keys list`)")],
    db: Db = None,
    tenant: Annotated[str | None, typer.Option("--tenant", help="Refuse a key of another tenant")] = None,
) -> None:
    """Revoke a key: gateways refuse it within a few seconds (their cache's lifetime)."""
    record = run(db, lambda store: store.revoke_api_key(key_id, tenant_id=tenant))
    typer.echo(f"revoked {record.id} ({record.prefix}…, tenant {record.tenant_id})", err=True)


def key_to_json(record: ApiKeyRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "tenant_id": record.tenant_id,
        "name": record.name,
        "prefix": record.prefix,
        "policy": record.policy,
        "created_at": record.created_at,
        "revoked_at": record.revoked_at,
    }


def keys_table(records: Sequence[ApiKeyRecord]) -> Table:
    table = Table(box=None, pad_edge=False)
    for column in ("id", "tenant", "name", "prefix", "policy", "created", "revoked"):
        table.add_column(column, no_wrap=column in ("id", "prefix", "created", "revoked"))
    for r in records:
        table.add_row(
            r.id,
            r.tenant_id,
            r.name or "",
            r.prefix + "…",
            r.policy or "",
            when(r.created_at),
            when(r.revoked_at) if r.revoked_at is not None else "",
        )
    return table
