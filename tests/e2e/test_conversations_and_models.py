"""``multiturn conversations export`` and ``models`` on real state, and ``--model-path``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from multiturn import catalog
from multiturn.settings import DEFAULT_MODEL

from .conftest import Cli, conversations, default_cache_dir, items

pytestmark = [pytest.mark.model, pytest.mark.usefixtures("model_pulled")]


def test_export_writes_the_whole_tree_as_json_lines(cli: Cli, tmp_path: Path) -> None:
    assert cli.run("chat", "--once", "Name a colour.", "--max-tokens", "8", "--temperature", "0").returncode == 0
    [conversation] = conversations(cli.db)
    out = tmp_path / "conv.jsonl"
    result = cli.run("conversations", "export", conversation["id"], "-o", str(out))
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines[0]["type"] == "conversation" and lines[0]["id"] == conversation["id"]
    assert [line["role"] for line in lines[1:]] == ["user", "assistant"]
    assert lines[2]["parent_id"] == lines[1]["id"] and lines[1]["parent_id"] is None
    assert {line["id"] for line in lines[1:]} == {row["id"] for row in items(cli.db)}

    shown = cli.run("conversations", "list", "--json")
    assert json.loads(shown.stdout.splitlines()[0])["id"] == conversation["id"]
    assert cli.run("conversations", "delete", conversation["id"], "--yes").returncode == 0
    assert conversations(cli.db) == [] and items(cli.db) == []


def test_models_list_names_the_catalogue(cli: Cli) -> None:
    result = cli.run("models", "list")
    assert result.returncode == 0, result.stderr
    for spec in catalog.CATALOG:
        assert spec.name in result.stdout


def test_a_local_gguf_file_serves_as_the_model(cli: Cli) -> None:
    gguf = default_cache_dir() / "models" / catalog.find(DEFAULT_MODEL).filename
    result = cli.run("chat", "--model-path", str(gguf), "--once", "Say hi.", "--max-tokens", "8", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["content"].strip()


def test_a_file_that_is_not_gguf_is_refused_in_one_line(cli: Cli, tmp_path: Path) -> None:
    fake = tmp_path / "model.gguf"
    fake.write_bytes(b"not a model at all")
    result = cli.run("chat", "--model-path", str(fake), "--once", "Say hi.")
    assert result.returncode != 0
    assert result.stderr.count("\n") == 1 and "not a GGUF" in result.stderr
    assert not cli.db.exists() or items(cli.db) == []
