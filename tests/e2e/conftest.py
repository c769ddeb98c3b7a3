"""End-to-end helpers: run the real ``multiturn`` executable and read what it stored.

Every test gets its own SQLite file and data directory and a config file that does not exist,
so the user's configuration and conversations are never read or touched. The model cache stays
the user's (``make test`` pulls the default model there), except where a test builds its own.
The database is read with the standard library's ``sqlite3``, not with multiturn's store, so a
check never goes through the code under test.
"""

from __future__ import annotations

import json
import os
import re
import selectors
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs
import pytest

from multiturn import catalog
from multiturn.settings import DEFAULT_MODEL

EXE = Path(sys.executable).with_name("multiturn")
TIMEOUT = 120.0  # seconds for one model answer: the model runs on 2 CPU cores, often shared
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]|[\x08\r]")


def default_cache_dir() -> Path:
    explicit = os.environ.get("MULTITURN_CACHE_DIR")
    return Path(explicit) if explicit else platformdirs.user_cache_path("multiturn")


@pytest.fixture(scope="session")
def model_pulled() -> None:
    spec = catalog.find(DEFAULT_MODEL)
    if not catalog.is_pulled(spec, default_cache_dir() / "models"):
        pytest.fail(f"the default model is not pulled: run `multiturn models pull {spec.name}` (make test does)")


@dataclass(frozen=True)
class Cli:
    """Where one test's ``multiturn`` keeps its state, and the environment that points there."""

    home: Path

    @property
    def db(self) -> Path:
        return self.home / "chat.db"

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MULTITURN_")}
        env.update(
            MULTITURN_DB=str(self.db),
            MULTITURN_DATA_DIR=str(self.home / "data"),
            MULTITURN_CONFIG=str(self.home / "absent-config.toml"),
            MULTITURN_CACHE_DIR=str(default_cache_dir()),
            PYTHONFAULTHANDLER="1",
        )
        env.update(extra)
        return env

    def run(
        self, *args: str, timeout: float = TIMEOUT, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run ``multiturn ARGS`` to completion (stdin closed, output captured); ``env`` adds variables."""
        return subprocess.run(
            [str(EXE), *args],
            env=self.env(**(env or {})),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def popen(self, *args: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [str(EXE), *args],
            env=self.env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path)


def read_until(proc: subprocess.Popen[bytes], pattern: str, timeout: float = TIMEOUT) -> str:
    """Read ``proc``'s stdout until ``pattern`` matches what arrived; returns what was read."""
    assert proc.stdout is not None
    regex = re.compile(pattern)
    received = b""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        while not regex.search(received.decode("utf-8", "replace")):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {pattern!r} on stdout within {timeout} s; got {received!r}")
            if selector.select(left):
                chunk = os.read(proc.stdout.fileno(), 4096)
                if not chunk:
                    raise AssertionError(f"stdout closed before {pattern!r}; got {received!r}")
                received += chunk
    return received.decode("utf-8", "replace")


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The single line a failing command writes to stderr (asserts that it is exactly one)."""
    assert result.returncode != 0, result
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {lines!r}"
    assert lines[0].startswith("multiturn: error: "), lines[0]
    return lines[0]


# -- reading the database ------------------------------------------------------------------


def rows(db: Path, sql: str, *params: Any) -> list[dict[str, Any]]:
    with closing(sqlite3.connect(db)) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(row) for row in conn.execute(sql, params)]


def conversations(db: Path) -> list[dict[str, Any]]:
    return rows(db, "SELECT * FROM conversations ORDER BY created_at, id")


def items(db: Path, conversation_id: str | None = None) -> list[dict[str, Any]]:
    if conversation_id is None:
        return rows(db, "SELECT * FROM items ORDER BY created_at, id")
    return rows(db, "SELECT * FROM items WHERE conversation_id = ? ORDER BY created_at, id", conversation_id)


def conversation(db: Path, conversation_id: str) -> dict[str, Any]:
    found = rows(db, "SELECT * FROM conversations WHERE id = ?", conversation_id)
    assert len(found) == 1, f"conversation {conversation_id} not stored"
    return found[0]


def path(db: Path, conversation_id: str) -> list[dict[str, Any]]:
    """The items from the root to the conversation's head, following ``parent_id``."""
    by_id = {item["id"]: item for item in items(db, conversation_id)}
    out: list[dict[str, Any]] = []
    current = conversation(db, conversation_id)["head_item_id"]
    while current is not None:
        out.append(by_id[current])
        current = by_id[current]["parent_id"]
    return out[::-1]


def text(item: dict[str, Any]) -> str:
    parts = json.loads(item["content"])
    return "".join(part["text"] for part in parts if part["type"] == "text")


def dump(db: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every row of ``conversations`` and ``items``, to compare before and after a command."""
    return conversations(db), items(db)
