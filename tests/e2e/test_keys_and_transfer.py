"""The real ``multiturn`` executable: ``keys``, ``conversations import|export|prune`` and the
``--tenant`` scoping of conversation commands. No model is needed; the database is filled by
the store and read back with ``sqlite3``."""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
from contextlib import closing
from typing import Any

from multiturn import Settings
from multiturn.store import NewItem, SQLStore
from multiturn.types import ContextReport, TextPart, Usage

from .conftest import Cli, conversations, dump, items, one_error_line, read_until, rows

ID = re.compile(r"\b(?:conv|item)_[0-9a-f]{24}\b")


def _fill(cli: Cli, tenant_id: str = "default") -> str:
    """A conversation with a branch, stored through the library; returns its id."""

    async def main() -> str:
        store = SQLStore(Settings(db=str(cli.db)).database_url)
        try:
            await store.migrate()
            conv = await store.create_conversation(tenant_id=tenant_id, title="t", system_prompt="be brief")
            user = await store.append(
                conv.id, None, NewItem(role="user", content=(TextPart("hi"),)), tenant_id=tenant_id
            )
            answer = NewItem(
                role="assistant",
                content=(TextPart("hello"),),
                reasoning="greet back",
                usage=Usage(prompt_tokens=3, completion_tokens=1),
                context_report=ContextReport(policy="window", items=1, kept=((0, 0),)),
            )
            await store.append(conv.id, user.id, answer, tenant_id=tenant_id)
            failed = NewItem(role="assistant", content=(), status="failed", finish_reason="error")
            await store.append(conv.id, user.id, failed, tenant_id=tenant_id, move_head=False)
            return conv.id
        finally:
            await store.close()

    return asyncio.run(main())


def _without_ids(text: str) -> list[dict[str, Any]]:
    names: dict[str, str] = {}
    return [
        json.loads(ID.sub(lambda m: names.setdefault(m.group(0), f"<id{len(names)}>"), line))
        for line in text.splitlines()
    ]


def test_keys_create_prints_the_key_once_and_list_never_shows_it(cli: Cli) -> None:
    created = cli.run("keys", "create", "--tenant", "acme", "--name", "ci", "--policy", "summary")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert re.fullmatch(r"mt-[A-Za-z0-9_-]{43}", key), created.stdout
    assert "not shown again" in created.stderr and key not in created.stderr

    listed = cli.run("keys", "list")
    as_json = cli.run("keys", "list", "--json")
    assert listed.returncode == as_json.returncode == 0
    assert key not in listed.stdout + listed.stderr + as_json.stdout
    [record] = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert (record["tenant_id"], record["name"], record["policy"], record["revoked_at"]) == (
        "acme",
        "ci",
        "summary",
        None,
    )
    assert key.startswith(record["prefix"]) and record["prefix"] in listed.stdout
    [stored] = rows(cli.db, "SELECT * FROM api_keys")
    assert all(key not in str(value) for value in stored.values())

    assert "not found" in one_error_line(cli.run("keys", "revoke", record["id"], "--tenant", "other"))
    revoked = cli.run("keys", "revoke", record["id"])
    assert revoked.returncode == 0, revoked.stderr
    assert json.loads(cli.run("keys", "list", "--json").stdout)["revoked_at"] is not None
    assert cli.run("keys", "list", "--json", "--tenant", "other").stdout == ""


def test_keys_bad_input_is_one_line(cli: Cli) -> None:
    assert "unknown context policy 'nonsense'" in one_error_line(cli.run("keys", "create", "--policy", "nonsense"))
    assert "not found" in one_error_line(cli.run("keys", "revoke", "key_missing"))
    assert "--tenant is empty" in one_error_line(cli.run("keys", "create", "--tenant", " "))
    assert rows(cli.db, "SELECT * FROM api_keys") == []


def test_export_import_export_round_trips_through_the_cli(cli: Cli) -> None:
    original = _fill(cli)
    exported = cli.run("conversations", "export", original)
    assert exported.returncode == 0, exported.stderr
    file = cli.home / "conv.jsonl"
    file.write_text(exported.stdout)

    imported = cli.run("conversations", "import", str(file))
    assert imported.returncode == 0, imported.stderr
    copy = imported.stdout.strip()
    assert copy.startswith("conv_") and copy != original
    again = cli.run("conversations", "export", copy)
    assert again.returncode == 0, again.stderr
    assert _without_ids(again.stdout) == _without_ids(exported.stdout)
    assert len(items(cli.db, copy)) == 3
    assert not set(ID.findall(exported.stdout)) & set(ID.findall(again.stdout))


def test_a_bad_import_file_is_one_line_and_writes_nothing(cli: Cli) -> None:
    original = _fill(cli)
    lines = cli.run("conversations", "export", original).stdout.splitlines()
    before = dump(cli.db)
    broken = cli.home / "broken.jsonl"
    broken.write_text("\n".join([*lines[:2], "{oops", *lines[2:]]) + "\n")
    assert "line 3: not JSON" in one_error_line(cli.run("conversations", "import", str(broken)))
    orphan = json.loads(lines[2])
    orphan["parent_id"] = "item_elsewhere"
    broken.write_text("\n".join([lines[0], lines[1], json.dumps(orphan)]) + "\n")
    assert "line 3: the parent 'item_elsewhere'" in one_error_line(cli.run("conversations", "import", str(broken)))
    assert "cannot read" in one_error_line(cli.run("conversations", "import", str(cli.home / "missing.jsonl")))
    assert dump(cli.db) == before


def test_conversation_commands_are_scoped_by_tenant(cli: Cli) -> None:
    theirs = _fill(cli, tenant_id="acme")
    for command in (("export", theirs), ("show", theirs), ("delete", theirs, "--yes")):
        assert "not found" in one_error_line(cli.run("conversations", *command))
    assert cli.run("conversations", "list", "--json").stdout == ""
    listed = cli.run("conversations", "list", "--json", "--tenant", "acme")
    assert [json.loads(line)["id"] for line in listed.stdout.splitlines()] == [theirs]

    exported = cli.run("conversations", "export", theirs, "--tenant", "acme")
    assert exported.returncode == 0, exported.stderr
    file = cli.home / "theirs.jsonl"
    file.write_text(exported.stdout)
    copy = cli.run("conversations", "import", str(file), "--tenant", "beta").stdout.strip()
    assert rows(cli.db, "SELECT tenant_id FROM conversations WHERE id = ?", copy) == [{"tenant_id": "beta"}]
    assert "not found" in one_error_line(cli.run("conversations", "export", copy, "--tenant", "acme"))

    deleted = cli.run("conversations", "delete", theirs, "--tenant", "acme", "--yes")
    assert deleted.returncode == 0, deleted.stderr
    assert items(cli.db, theirs) == []


def test_prune_deletes_conversations_idle_for_longer_than_asked(cli: Cli) -> None:
    old = _fill(cli)
    other_tenant_old = _fill(cli, tenant_id="acme")
    fresh = _fill(cli)
    forty_days_ms = 40 * 86400 * 1000
    with closing(sqlite3.connect(cli.db)) as conn, conn:
        conn.execute(
            "UPDATE conversations SET updated_at = updated_at - ? WHERE id IN (?, ?)",
            (forty_days_ms, old, other_tenant_old),
        )

    assert "expected a number and a unit" in one_error_line(cli.run("conversations", "prune", "--older-than", "soon"))
    only_acme = cli.run("conversations", "prune", "--older-than", "30d", "--tenant", "acme", "--yes")
    assert only_acme.returncode == 0, only_acme.stderr
    assert only_acme.stdout.split() == [other_tenant_old]
    everyone = cli.run("conversations", "prune", "--older-than", "30d", "--yes")
    assert everyone.stdout.split() == [old]
    assert "deleted 1 conversations" in everyone.stderr
    assert [c["id"] for c in conversations(cli.db)] == [fresh]
    assert {i["conversation_id"] for i in items(cli.db)} == {fresh}


def test_serve_beyond_loopback_accepts_stored_keys_instead_of_static_ones(cli: Cli) -> None:
    refused = cli.run("serve", "--host", "0.0.0.0", "--port", "0")
    assert "exposes the gateway beyond this machine" in one_error_line(refused)
    assert cli.run("keys", "create", "--tenant", "acme").returncode == 0
    proc = cli.popen("serve", "--host", "0.0.0.0", "--port", "0")
    try:
        assert "listening on http://0.0.0.0:" in read_until(proc, r"listening on \S+")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
