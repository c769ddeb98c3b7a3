"""``multiturn replay``: a stored conversation re-planned under two policies, no model called.

The conversation is imported (an export file written here, as another machine would have
written it): ten rounds answered under ``full``, each answer's report keeping its whole path.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from .conftest import Cli, one_error_line

ROUNDS = 10
NOTE = "Note {n}: the parcel for room {room} arrives on day {n} and holds {n} blue boxes of spare parts."
PNG = b"\x89PNG\r\n\x1a\n"


def _export(path: Path) -> None:
    lines: list[dict[str, Any]] = []
    parent = None
    for n in range(ROUNDS):
        user, answer = f"item_u{n:02d}", f"item_a{n:02d}"
        lines.append(_item(user, parent, "user", NOTE.format(n=n, room=100 + n), 2 * n))
        report = {"policy": "full", "items": 2 * n + 1, "kept": f"0-{2 * n}", "tokens": 30 * (n + 1), "budget": None}
        usage = {"prompt_tokens": 30 * (n + 1), "completion_tokens": 5, "cached_tokens": 30 * n}
        lines.append(
            {**_item(answer, user, "assistant", f"Noted {n}.", 2 * n + 1), "usage": usage, "context_report": report}
        )
        parent = answer
    head = {"type": "conversation", "id": "conv_x", "created_at": 1, "updated_at": 2, "title": "parcels"}
    head |= {"model": None, "system_prompt": "You keep notes.", "head_item_id": parent, "metadata": {}}
    path.write_text("\n".join(json.dumps(line) for line in [head, *lines]) + "\n")


def _item(item_id: str, parent: str | None, role: str, text: str, at: int) -> dict[str, Any]:
    content = [{"type": "text", "text": text}]
    return {"type": "item", "id": item_id, "parent_id": parent, "role": role, "content": content} | {
        "status": "completed",
        "created_at": 1000 + at,
        "tool_calls": [],
    }


@pytest.fixture
def conversation(cli: Cli, tmp_path: Path) -> str:
    exported = tmp_path / "parcels.jsonl"
    _export(exported)
    done = cli.run("conversations", "import", str(exported))
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.usefixtures("model_pulled")
def test_replay_under_two_policies_as_json_table_and_plot(cli: Cli, conversation: str, tmp_path: Path) -> None:
    plot = tmp_path / "replay.png"
    done = cli.run(
        "replay", conversation, "--policy", "full,window", "--budget", "none,200", "--json", "--plot", str(plot)
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert plot.read_bytes().startswith(PNG)
    runs = {(run["policy"], run["budget"]): run for run in result["runs"]}
    assert list(runs) == [("full", None), ("full", 200), ("window", None), ("window", 200)]
    assert all(len(run["turns"]) == ROUNDS for run in runs.values())

    full = runs[("full", None)]
    assert [turn["turn"] for turn in full["turns"]] == list(range(1, ROUNDS + 1))
    assert full["evidence_lost_turns"] == [] and full["evidence_dropped"] == 0
    assert [turn["report"]["kept"] for turn in full["turns"]] == ["0", *(f"0-{2 * n}" for n in range(1, ROUNDS))]
    # Append-only: each request starts with the whole previous one, so almost all of it is cached.
    assert full["turns"][0]["cached_tokens"] == 0 and full["cached_share"] > 0.5
    assert all(t["cached_tokens"] >= p["tokens"] - 8 for p, t in zip(full["turns"], full["turns"][1:], strict=False))
    assert full["cost"] == 0 and full["currency"] == "USD"  # the embedded model is free

    narrow = runs[("window", 200)]
    assert narrow["evidence_lost_turns"], narrow  # a 200-token window cannot keep ten notes
    lost = narrow["turns"][-1]
    assert lost["tokens"] <= 200 and lost["evidence"]["dropped"]
    assert set(lost["evidence"]["dropped"]) <= set(lost["evidence"]["sent"])
    assert narrow["evidence_lost_turns"] == [t["turn"] for t in narrow["turns"] if t["evidence"]["dropped"]]
    assert runs[("full", 200)]["over_budget_turns"]  # full over its budget: those turns would be refused
    assert result["stored"]["tokens"] == sum(30 * (n + 1) for n in range(ROUNDS))

    table = cli.run("replay", conversation, "--policy", "full,window", "--budget", "none,200")
    assert table.returncode == 0, table.stderr
    out = table.stdout
    assert "as answered" in out and "window" in out and "evidence lost" in out
    cells = [[cell.strip() for cell in line.split("│")[1:-1]] for line in out.splitlines() if "│" in line]
    rows = {(row[0], row[1]): row for row in cells}
    assert set(rows) == {
        ("as answered", ""),
        ("full", "model"),
        ("full", "200"),
        ("window", "model"),
        ("window", "200"),
    }
    assert rows[("window", "200")][6].startswith(f"{len(narrow['evidence_lost_turns'])} turns")
    assert rows[("window", "model")][6] == "-" and rows[("full", "model")][5] == "0 USD"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["conv_missing"], "not found"),
        (["{conv}", "--policy", "window,everything"], "unknown context policy 'everything'"),
        (["{conv}", "--budget", "2k,lots"], "bad budget 'lots'"),
        (["{conv}", "--budget", "0"], "at least one token"),
    ],
)
def test_what_cannot_be_replayed_is_one_line(cli: Cli, conversation: str, args: list[str], message: str) -> None:
    done = cli.run("replay", *[arg.format(conv=conversation) for arg in args])
    assert done.returncode != 0
    assert message in one_error_line(done)
    assert done.stdout == ""
