"""The CLI shows what a turn cost: the footer after each answer, and ``--json``'s ``cost``."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from support.fake_upstream import FakeUpstream

from .conftest import Cli, path

PRICE = {"currency": "USD", "input": 2.0, "output": 8.0, "cached_input": 0.5}
FOOTER = re.compile(r"cost (\S+) USD \(conversation (\S+) USD\)")


def priced(usage: dict[str, int]) -> float:
    cached = usage["cached_tokens"]
    return ((usage["prompt_tokens"] - cached) * 2.0 + cached * 0.5 + usage["completion_tokens"] * 8.0) / 1e6


def test_the_footer_and_the_json_reply_show_the_cost(cli: Cli, tmp_path: Path) -> None:
    with FakeUpstream() as upstream:
        models = {"remote": {"backend": "upstream", "base_url": upstream.base_url, "model": "plain", "price": PRICE}}
        env = {"MULTITURN_MODELS": json.dumps(models), "MULTITURN_CACHE_DIR": str(tmp_path / "no-models")}
        first = cli.run("chat", "-m", "remote", "--once", "What does it cost?", "--json", env=env)
        assert first.returncode == 0, first.stderr
        reply = json.loads(first.stdout)
        assert reply["cost"]["currency"] == "USD"
        assert reply["cost"]["total"] == pytest.approx(priced(reply["usage"]), rel=1e-9)
        assert reply["cost"]["conversation"] == pytest.approx(reply["cost"]["total"], rel=1e-9)

        second = cli.run("chat", "-m", "remote", "--continue", "--once", "And now?", env=env)
        assert second.returncode == 0, second.stderr
    found = FOOTER.search(" ".join(second.stderr.split()))  # Rich wraps stderr at 80 columns
    assert found, second.stderr
    stored = [item for item in path(cli.db, reply["conversation_id"]) if item["role"] == "assistant"]
    usage = json.loads(stored[-1]["usage"])
    assert usage["cached_tokens"] > 0  # the resent first turn hit the upstream's cache
    assert float(found.group(1)) == pytest.approx(priced(usage), rel=1e-6, abs=1e-8)
    assert float(found.group(2)) == pytest.approx(reply["cost"]["total"] + priced(usage), rel=1e-6, abs=1e-8)
    assert usage["cost"]["total"] == pytest.approx(priced(usage), rel=1e-9)  # stored with the turn
