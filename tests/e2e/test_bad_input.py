"""Bad input: one line on stderr, a non-zero exit code, and nothing stored changes.

One real turn is stored first (on the real model), so "nothing changed" compares a non-empty
database: every row of ``conversations`` and ``items``, before and after.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from multiturn import catalog
from multiturn.settings import DEFAULT_MODEL

from .conftest import Cli, dump, one_error_line

pytestmark = [pytest.mark.model, pytest.mark.usefixtures("model_pulled")]


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> Cli:
    """A database holding one completed turn."""
    cli = Cli(tmp_path_factory.mktemp("bad-input"))
    result = cli.run("chat", "--once", "Say hello.", "--max-tokens", "16", "--temperature", "0")
    assert result.returncode == 0, result.stderr
    conversations, items = dump(cli.db)
    assert len(conversations) == 1 and len(items) == 2
    return cli


def fails(cli: Cli, *args: str, code: int | None = None, env: dict[str, str] | None = None) -> str:
    """Run a command that must fail without touching the database; returns its error line."""
    before = dump(cli.db)
    result = cli.run(*args, env=env)
    line = one_error_line(result)
    if code is not None:
        assert result.returncode == code, result
    assert result.stdout == ""
    assert dump(cli.db) == before
    return line


@pytest.mark.parametrize(
    "args",
    [
        ("conversations", "show", "nope"),
        ("conversations", "export", "nope"),
        ("conversations", "delete", "nope", "--yes"),
        ("chat", "--conversation", "nope", "--once", "hi", "--max-tokens", "16"),
    ],
    ids=["show", "export", "delete", "chat"],
)
def test_unknown_conversation(stored: Cli, args: tuple[str, ...]) -> None:
    line = fails(stored, *args, code=1)
    assert "'nope'" in line and "not found" in line


@pytest.mark.parametrize("message", ["", "   "], ids=["empty", "blank"])
def test_empty_message(stored: Cli, message: str) -> None:
    line = fails(stored, "chat", "--once", message, code=2)
    assert "empty" in line


def test_json_needs_once(stored: Cli) -> None:
    line = fails(stored, "chat", "--json", code=2)
    assert "--json needs --once" in line


def test_unknown_model(stored: Cli) -> None:
    line = fails(stored, "chat", "--model", "nosuch", "--once", "hi", code=1)
    assert "unknown model 'nosuch'" in line


def test_database_under_a_regular_file(stored: Cli, tmp_path: Path) -> None:
    blocker = tmp_path / "afile"
    blocker.write_text("not a directory\n")
    line = fails(stored, "chat", "--once", "hi", env={"MULTITURN_DB": str(blocker / "x.db")})
    assert "database" in line
    assert blocker.read_text() == "not a directory\n"


def test_database_in_a_forbidden_directory(stored: Cli) -> None:
    line = fails(stored, "chat", "--db", "/proc/forbidden/x.db", "--once", "hi")
    assert "database" in line


def test_model_file_with_a_wrong_sha256(stored: Cli, tmp_path: Path) -> None:
    spec = catalog.find(DEFAULT_MODEL)
    models = tmp_path / "cache" / "models"
    models.mkdir(parents=True)
    fake = models / spec.filename
    with fake.open("wb") as handle:  # the right size, sparse: all zeros
        handle.seek(spec.size - 1)
        handle.write(b"\0")
    line = fails(stored, "chat", "--once", "hi", env={"MULTITURN_CACHE_DIR": str(tmp_path / "cache")})
    assert "SHA-256" in line
    assert spec.sha256 in line
    assert not (models / f"{spec.filename}.verified").exists()  # the bad file was not marked as verified


def test_a_message_too_big_for_the_window_is_refused_and_the_conversation_stays(stored: Cli) -> None:
    """The turn that cannot fit stores nothing, says what does not fit in one line, and the
    conversation goes on with every earlier round (none dropped because of it)."""
    oversized = "lorem ipsum dolor sit amet " * 3000  # ~15k tokens: over the default 8k window
    line = fails(stored, "chat", "--continue", "--once", oversized, "--max-tokens", "8", code=2)
    assert "Range of input length should be [1, " in line and "the newest message alone needs" in line, line
    assert "nothing was stored" in line
    result = stored.run("chat", "--continue", "--once", "And again?", "--max-tokens", "8", "--temperature", "0")
    assert result.returncode == 0, result.stderr
    _, items = dump(stored.db)
    assert [item["role"] for item in items][-2:] == ["user", "assistant"] and len(items) == 4
    assert json.loads(items[-1]["context_report"])["kept"] == "0-2"  # every item of its path was sent
