"""``multiturn bench memory`` end to end on tiny synthetic LoCoMo- and LongMemEval-format files.

The LoCoMo fixture is one conversation of two sessions (56 turns, ~1,500 tokens) with two
questions: one whose evidence is the third turn, one whose evidence is the second-to-last turn
(a category-5 question and one without evidence are left out). At 300 tokens the window can
only hold the end, so it recalls half; retrieval finds the early turn too. At 2,000 tokens
everything fits.
"""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import pytest

from support.fake_upstream import FakeUpstream

from .conftest import Cli, one_error_line

FIXTURES = Path(__file__).parent.parent / "fixtures"
LOCOMO = FIXTURES / "memory_tiny_locomo.json"
LONGMEMEVAL = FIXTURES / "memory_tiny_longmemeval.json"


def _cells(stdout: str) -> dict[tuple[str, int], dict[str, float]]:
    return {(c["policy"], c["budget"]): c for c in json.loads(stdout)["cells"]}


def test_retrieval_recalls_the_early_evidence_the_window_cannot_hold(cli: Cli, tmp_path: Path) -> None:
    plot, report = tmp_path / "memory.png", tmp_path / "memory.md"
    args = ["--budgets", "300,2k", "--policies", "window,retrieval", "--plot", str(plot), "--out", str(report)]
    result = cli.run("bench", "memory", "--data", str(LOCOMO), *args, "--json")
    assert result.returncode == 0, result.stderr
    assert re.search(r"^questions: (\d+)/\1$", result.stderr, re.MULTILINE), result.stderr  # progress in logs
    summary = json.loads(result.stdout)
    assert (summary["conversations"], summary["questions"]) == (1, 2)
    cells = _cells(result.stdout)
    assert cells[("window", 300)]["recall"] == 0.5
    assert cells[("retrieval", 300)]["recall"] == 1.0
    assert cells[("window", 2000)]["recall"] == cells[("retrieval", 2000)]["recall"] == 1.0
    for (_, budget), cell in cells.items():
        assert 0 < cell["tokens"] <= budget
        assert 0 < cell["p50_ms"] <= cell["p95_ms"]
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    markdown = report.read_text()
    assert f"multiturn bench memory --data {LOCOMO} {' '.join(args)} --json" in markdown
    assert "| retrieval | 300 | 2 | 1.000 |" in markdown and "| window | 300 | 2 | 0.500 |" in markdown


def test_summarized_turns_do_not_count_as_recalled(cli: Cli) -> None:
    """At 2,000 tokens the replay compacts (the history passes 70 % of the budget): under
    ``summary`` the early evidence survives only inside the summary, which does not count;
    ``auto`` recalls it verbatim."""
    args = ["--budgets", "2000", "--policies", "window,summary,auto", "--json"]
    result = cli.run("bench", "memory", "--data", str(LOCOMO), *args)
    assert result.returncode == 0, result.stderr
    cells = _cells(result.stdout)
    assert cells[("window", 2000)]["recall"] == 1.0
    assert cells[("summary", 2000)]["recall"] == 0.5
    assert cells[("auto", 2000)]["recall"] == 1.0
    assert cells[("summary", 2000)]["tokens"] < cells[("window", 2000)]["tokens"]


def test_longmemeval_turn_and_session_level_evidence(cli: Cli) -> None:
    result = cli.run(
        "bench", "memory", "--data", str(LONGMEMEVAL), "--budgets", "300", "--policies", "window,retrieval", "--json"
    )
    assert result.returncode == 0, result.stderr
    cells = _cells(result.stdout)
    # q-1: a has_answer turn of the first session (early); q-2: any turn of the last session
    assert cells[("window", 300)]["recall"] == 0.5
    assert cells[("retrieval", 300)]["recall"] == 1.0


def test_an_upstream_embedder_is_called_and_closed(cli: Cli) -> None:
    """``--embedder`` naming an upstream alias: the bench embeds through it and closes its HTTP
    session at the end (stderr holds the progress lines and nothing else: no "Unclosed client
    session" warning)."""
    with FakeUpstream(embeddings=True) as fake:
        models = {"emb": {"backend": "upstream", "base_url": fake.base_url, "model": "hashed-words"}}
        args = ["--budgets", "300", "--policies", "retrieval", "--embedder", "emb", "--json"]
        result = cli.run("bench", "memory", "--data", str(LOCOMO), *args, env={"MULTITURN_MODELS": json.dumps(models)})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["embedder"] == "upstream:hashed-words"
    assert _cells(result.stdout)[("retrieval", 300)]["recall"] == 1.0
    assert [r for r in fake.requests if r.path == "/v1/embeddings"], "the embedder was never called"
    noise = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith("questions:")]
    assert noise == [], result.stderr


def test_the_table_prints_without_json(cli: Cli) -> None:
    result = cli.run(
        "bench", "memory", "--data", str(LOCOMO), "--budgets", "300", "--policies", "retrieval", "--embedder", "none"
    )
    assert result.returncode == 0, result.stderr
    row = next(line for line in result.stdout.splitlines() if "retrieval" in line)
    assert [cell.strip() for cell in row.split("│")[1:5]] == ["retrieval", "300", "2", "1.000"]
    baseline = next(line for line in result.stdout.splitlines() if "bm25-turns" in line)
    assert [cell.strip() for cell in baseline.split("│")[1:4]] == ["bm25-turns", "300", "2"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--policies", "window,bogus"], "unknown policy bogus"),
        (["--budgets", "1k,lots"], "bad budgets '1k,lots'"),
        (["--answer"], "--answer needs --model ALIAS"),
        (["--embedder", "qwen-plus"], "unknown embedder 'qwen-plus'"),
    ],
)
def test_bad_options_are_one_line(cli: Cli, args: list[str], message: str) -> None:
    assert message in one_error_line(cli.run("bench", "memory", "--data", str(LOCOMO), *args))


def test_a_file_that_is_not_a_data_set_is_one_line(cli: Cli, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"not": "a list"}')
    assert "is not a list of LoCoMo samples" in one_error_line(cli.run("bench", "memory", "--data", str(bad)))


@pytest.mark.model
def test_answer_mode_scores_the_embedded_models_answer(cli: Cli, model_pulled: None) -> None:
    args = ["--budgets", "300", "--policies", "retrieval", "--questions", "1", "--answer", "--max-tokens", "8"]
    result = cli.run("bench", "memory", "--data", str(LOCOMO), *args, "--model", "qwen2.5-coder-0.5b", "--json")
    assert result.returncode == 0, result.stderr
    cell = _cells(result.stdout)[("retrieval", 300)]
    assert cell["questions"] == 1 and cell["recall"] == 1.0
    assert isinstance(cell["f1"], float) and 0.0 <= cell["f1"] <= 1.0


def test_by_category_and_per_question_and_a_gzipped_file(cli: Cli, tmp_path: Path) -> None:
    packed = tmp_path / "tiny.json.gz"
    packed.write_bytes(gzip.compress(LOCOMO.read_bytes()))
    lines = tmp_path / "questions.jsonl"
    args = ["--budgets", "300", "--policies", "window,retrieval", "--embedder", "none", "--by-category"]
    result = cli.run("bench", "memory", "--data", str(packed), *args, "--per-question", str(lines))
    assert result.returncode == 0, result.stderr
    assert "recall by question category" in result.stdout
    records = [json.loads(line) for line in lines.read_text().splitlines()]
    assert len(records) == 2 * 3  # two questions; the BM25 baseline and two policies; one budget
    assert {(r["policy"], r["budget"]) for r in records} == {("bm25-turns", 300), ("window", 300), ("retrieval", 300)}
    window = [r["recall"] for r in records if r["policy"] == "window"]
    assert sorted(window) == [0.0, 1.0]  # the early evidence is out of the window, the late one in
    assert all(r["evidence"] and r["category"] and r["question"] for r in records)
    summary = cli.run("bench", "memory", "--data", str(packed), *args, "--json")
    by_category = json.loads(summary.stdout)["cells"][0]["by_category"]
    assert sum(int(c["questions"]) for c in by_category.values()) == 2
