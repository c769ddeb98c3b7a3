"""``chat -m NAME`` (and ``MULTITURN_MODEL``) takes every name the gateway serves: an alias of the
embedded model, an upstream alias (which loads and pulls no embedded model), a catalogue model;
anything else is one line naming what exists."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from support.fake_upstream import FakeUpstream

from .conftest import Cli, items, one_error_line

pytestmark = [pytest.mark.model, pytest.mark.usefixtures("model_pulled")]


@pytest.mark.parametrize("how", ["flag", "env"])
def test_an_alias_of_the_embedded_model_chats(cli: Cli, how: str) -> None:
    args = ["chat", "--once", "Say hi.", "--max-tokens", "4", "--temperature", "0"]
    extra = {"MULTITURN_MODEL": "qwen-max"} if how == "env" else {}
    done = cli.run(*args, *(["-m", "qwen-plus"] if how == "flag" else []), env=extra)
    assert done.returncode in (0, 1), done.stderr  # 1: cut by max_tokens (incomplete)
    assert done.stdout.strip()
    [_, answer] = items(cli.db)
    assert answer["role"] == "assistant" and answer["model"] == ("qwen-plus" if how == "flag" else "qwen-max")


def test_an_upstream_alias_chats_without_an_embedded_model(cli: Cli, tmp_path: Path) -> None:
    empty_cache = tmp_path / "no-models"  # nothing pulled: loading the embedded model would fail
    with FakeUpstream() as upstream:
        models = {"remote": {"backend": "upstream", "base_url": upstream.base_url, "model": "qwen-plus"}}
        env = {"MULTITURN_MODELS": json.dumps(models), "MULTITURN_CACHE_DIR": str(empty_cache)}
        done = cli.run("chat", "-m", "remote", "--once", "Say hi.", env=env)
        assert done.returncode == 0, done.stderr
        assert "You said: Say hi." in done.stdout
        assert [r.body["model"] for r in upstream.requests if r.path.endswith("/chat/completions")] == ["qwen-plus"]
    assert not (empty_cache / "models").exists() or not any((empty_cache / "models").iterdir())


def test_an_unknown_name_is_one_line_naming_the_aliases_and_the_catalogue(cli: Cli) -> None:
    line = one_error_line(cli.run("chat", "-m", "nosuch", "--once", "hi"))
    assert "unknown model 'nosuch'" in line and "qwen-plus" in line and "qwen2.5-coder-0.5b" in line
