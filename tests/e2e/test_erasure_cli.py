"""The CLI's deletions erase: after ``conversations delete`` and ``conversations prune`` no
deleted word is in the database file or its WAL (read as bytes), and what was kept is."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from support.scan import in_files

from .conftest import Cli, conversations

SECRET = "xylophonequirk"
KEPT = "keepsake"


def _text(text: str) -> dict[str, object]:
    return {"content": [{"type": "text", "text": text}], "status": "completed", "created_at": 1_000}


def _import(cli: Cli, tmp_path: Path, word: str, updated_at: int) -> str:
    lines = [
        {"type": "conversation", "id": f"c-{word}", "created_at": updated_at, "updated_at": updated_at},
        {"type": "item", "id": "i1", "parent_id": None, "role": "user", **_text(f"{word} question")},
        {"type": "item", "id": "i2", "parent_id": "i1", "role": "assistant", **_text(f"{word} answer")},
    ]
    path = tmp_path / f"{word}.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines))
    done = cli.run("conversations", "import", str(path))
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.parametrize("command", ["delete", "prune"])
def test_a_cli_deletion_leaves_no_word_in_the_files(cli: Cli, tmp_path: Path, command: str) -> None:
    doomed = _import(cli, tmp_path, SECRET, updated_at=1_000)
    _import(cli, tmp_path, KEPT, updated_at=4_000_000_000_000)
    assert in_files(cli.db, SECRET)
    if command == "delete":
        done = cli.run("conversations", "delete", doomed, "--yes")
    else:
        done = cli.run("conversations", "prune", "--older-than", "1d", "--yes")
    assert done.returncode == 0, done.stderr
    assert [c["id"] for c in conversations(cli.db)] != [] and doomed not in {c["id"] for c in conversations(cli.db)}
    assert in_files(cli.db, SECRET) == []
    assert in_files(cli.db, KEPT)
