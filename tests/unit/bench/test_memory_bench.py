"""The memory benchmark's pure parts: reading the data sets, evidence recall, F1, percentiles."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from multiturn.bench.memory import _percentile, evidence_recall, token_f1
from multiturn.bench.memory_data import load, parse_date
from multiturn.context.retrieval import with_recalled
from multiturn.context.summary import Summary, with_summary
from multiturn.errors import InvalidInput
from multiturn.types import Message

FIXTURES = Path(__file__).parent.parent.parent / "fixtures"


def test_locomo_turns_questions_and_irregular_evidence(tmp_path: Path) -> None:
    [conversation] = load(FIXTURES / "memory_tiny_locomo.json")
    assert len(conversation.turns) == 56 and conversation.turns[0].role == "user"
    assert conversation.turns[0].text.startswith("[10:00 am on 1 March, 2024] Caroline: ")
    assert conversation.turns[1].role == "assistant" and conversation.turns[1].text.startswith("Melanie: ")
    assert [(q.evidence, q.category) for q in conversation.questions] == [(("D1:3",), "4"), (("D2:27",), "2")]
    every = load(FIXTURES / "memory_tiny_locomo.json", categories=frozenset({"5"}))
    assert [q.answer for q in every[0].questions] == ["nothing"]
    data = json.loads((FIXTURES / "memory_tiny_locomo.json").read_text())
    data[0]["qa"] = [{"question": "q", "answer": "a", "evidence": ["D1:3; D2:05", "D9:9", "D:1:4"], "category": 1}]
    odd = tmp_path / "odd.json"
    odd.write_text(json.dumps(data))
    assert load(odd)[0].questions[0].evidence == ("D1:3", "D2:5", "D1:4")  # D9:9 names no turn


def test_evidence_counts_only_verbatim_text_outside_summaries_and_the_question() -> None:
    [conversation] = load(FIXTURES / "memory_tiny_locomo.json")
    texts = {t.key: t.text for t in conversation.turns}
    question = conversation.questions[0]
    evidence = texts["D1:3"]
    assert evidence_recall([Message.of("user", evidence), Message.of("user", "q")], conversation, texts, question) == 1
    brief = [Message.of("system", "Be brief.")]
    ask = Message.of("user", "q")
    assert evidence_recall([*with_recalled(brief, ["user: " + evidence]), ask], conversation, texts, question) == 1
    summary = with_summary(brief, Summary(evidence, "i0"))
    assert evidence_recall([*summary, ask], conversation, texts, question) == 0
    both = with_recalled(summary, ["user: " + evidence])  # the summary does not count; the quotation does
    assert evidence_recall([*both, ask], conversation, texts, question) == 1
    assert evidence_recall([*with_recalled(summary, ["user: other"]), ask], conversation, texts, question) == 0
    assert evidence_recall([Message.of("user", evidence)], conversation, texts, question) == 0  # the question
    assert (
        evidence_recall([Message.of("user", evidence[:-1]), Message.of("user", "q")], conversation, texts, question)
        == 0
    )


def test_token_f1_and_percentiles() -> None:
    assert token_f1("Cremona, Italy", "cremona") == pytest.approx(2 / 3)
    assert token_f1("The answer is 7 May 2023.", "7 May 2023") == pytest.approx(0.75)  # 3 of 5 words, all 3
    assert token_f1("", "") == 1.0 and token_f1("no", "yes") == 0.0
    values = [float(n) for n in range(1, 101)]
    assert (_percentile(values, 50), _percentile(values, 95), _percentile([], 95)) == (50.0, 95.0, 0.0)


def test_bad_files_fail_with_one_clear_line(tmp_path: Path) -> None:
    missing = tmp_path / "missing.json"
    with pytest.raises(InvalidInput, match="cannot read the data file"):
        load(missing)
    broken = tmp_path / "broken.json"
    broken.write_text("[{")
    with pytest.raises(InvalidInput, match="is not JSON"):
        load(broken)
    shapeless = tmp_path / "shapeless.json"
    shapeless.write_text('[{"conversation": {"speaker_a": "A"}}]')
    with pytest.raises(InvalidInput, match="unexpected shape: missing or bad 'qa'"):
        load(shapeless)


def _utc(*fields: int) -> int:
    return int(datetime(*fields, tzinfo=UTC).timestamp() * 1000)


def test_turns_carry_their_sessions_dates_and_questions_the_time_they_are_asked() -> None:
    [locomo] = load(FIXTURES / "memory_tiny_locomo.json")
    first, second = locomo.turns[0], locomo.turns[1]
    assert first.at == _utc(2024, 3, 1, 10, 0) and second.at == first.at + 1000  # a second a turn: their order
    assert all(q.at == max(t.at or 0 for t in locomo.turns) for q in locomo.questions)  # asked after the last session
    longmemeval = load(FIXTURES / "memory_tiny_longmemeval.json")[0]
    assert longmemeval.turns[0].at == _utc(2024, 3, 1)
    assert {t.at for t in longmemeval.turns if t.group == "s-b"} >= {_utc(2024, 4, 20)}
    assert longmemeval.questions[0].at == _utc(2024, 5, 1)
    assert parse_date("2023/04/24 (Mon) 12:02") == _utc(2023, 4, 24, 12, 2)
    assert parse_date("1:56 pm on 8 May, 2023") == _utc(2023, 5, 8, 13, 56)
    assert parse_date("sometime in spring") is None
