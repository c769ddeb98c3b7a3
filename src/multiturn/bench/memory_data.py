"""Long-conversation memory data sets, read into one shape: conversations of turns and questions
whose evidence names turns.

- LoCoMo (``locomo10.json``): a list of samples ``{sample_id, conversation, qa}``; the
  conversation holds ``speaker_a``, ``speaker_b`` and ``session_<N>`` lists of turns
  ``{speaker, dia_id, text, [blip_caption]}`` with ``session_<N>_date_time``; each question has
  ``evidence`` (``dia_id`` values, a few irregular: ``'D8:6; D9:17'``, ``'D:11:26'``) and a
  ``category`` 1-5 (5: adversarial, no answer in the conversation). A range ``D12:3-D12:5``
  (or ``D12:3-5``) names every turn from the first to the last. ``speaker_a`` becomes the
  user, ``speaker_b`` the assistant; each turn's text is prefixed with its speaker's name, and
  the first turn of a session with the session's date. A turn's time is its session's date
  (plus a second per turn, to keep their order); a question's, the last session's.
- LongMemEval (``longmemeval_*.json``): a list of questions, each with its own haystack
  (``haystack_sessions``: lists of ``{role, content, has_answer?}``, ``haystack_dates``,
  ``answer_session_ids``). Evidence is the ``has_answer`` turns (turn level) or, for a question
  with none, every turn of its answer sessions, one of which suffices per session (session
  level). A turn's time is its session's ``haystack_dates`` entry (plus a second per turn); a
  question's, its ``question_date``.

Either may be gzip'd (``.json.gz``). Malformed files fail with one clear ``InvalidInput`` line.
"""

from __future__ import annotations

import gzip
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import orjson

from ..errors import InvalidInput
from ..types import Role

LOCOMO_CATEGORIES = frozenset({"1", "2", "3", "4"})
"""Multi-hop, temporal, open-domain, single-hop; 5 (adversarial) has no answer to recall."""
_SESSION = re.compile(r"^session_(\d+)$")
_DIA = re.compile(r"D:?(\d+):(\d+)(?:\s*-\s*(?:D:?(\d+):)?(\d+))?")
"""A turn id, or a range of them within one session (``D12:3-D12:5``, ``D12:3-5``)."""


@dataclass(frozen=True, slots=True)
class Turn:
    key: str
    """The data set's id of the turn (``D3:7``; ``s<session>:<turn>`` for LongMemEval)."""
    role: Role
    text: str
    """The item's content as replayed; evidence is present when this text is, verbatim."""
    group: str
    """The session it belongs to."""
    at: int | None = None
    """When it was written (epoch ms), when the data says."""


@dataclass(frozen=True, slots=True)
class Question:
    text: str
    answer: str
    evidence: tuple[str, ...]
    """Turn keys (turn level) or session names (session level: any turn of the session counts)."""
    category: str
    level: Literal["turn", "session"] = "turn"
    at: int | None = None
    """When it is asked (epoch ms), when the data says."""


@dataclass(frozen=True, slots=True)
class Conversation:
    name: str
    turns: tuple[Turn, ...]
    questions: tuple[Question, ...]


_LOCOMO_DATE = re.compile(r"(\d{1,2}):(\d{2})\s*([ap]m)\s+on\s+(\d{1,2})\s+(\w+),?\s+(\d{4})", re.I)
_LONGMEMEVAL_DATE = re.compile(r"(\d{4})/(\d{2})/(\d{2})(?:\s*\(\w+\))?(?:\s*(\d{1,2}):(\d{2}))?")
_MONTHS = {
    m: n + 1 for n, m in enumerate(["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"])
}


def parse_date(text: str | None) -> int | None:
    """Epoch ms (UTC) of a LoCoMo date ("1:56 pm on 8 May, 2023") or a LongMemEval one
    ("2023/04/24 (Mon) 12:02"); ``None`` for anything else."""
    if not text:
        return None
    try:
        if m := _LOCOMO_DATE.search(text):
            hour, minute, half, day, month, year = m.groups()
            h = int(hour) % 12 + (12 if half.lower() == "pm" else 0)
            at = datetime(int(year), _MONTHS[month.lower()[:3]], int(day), h, int(minute), tzinfo=UTC)
        elif m := _LONGMEMEVAL_DATE.search(text):
            year, month, day, hour, minute = (int(g) if g else 0 for g in m.groups())
            at = datetime(year, month, day, hour, minute, tzinfo=UTC)
        else:
            return None
    except (KeyError, ValueError):
        return None
    return int(at.timestamp() * 1000)


def load(path: Path, *, categories: frozenset[str] | None = None) -> list[Conversation]:
    """Read a LoCoMo or LongMemEval file (told apart by its shape); keep only questions with
    evidence in ``categories`` (LoCoMo's ``1``-``5``, LongMemEval's question types; default:
    LoCoMo's ``1``-``4``, every LongMemEval type)."""
    try:
        raw = path.read_bytes()
        data = orjson.loads(gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw)
    except OSError as exc:  # gzip's BadGzipFile is an OSError too
        raise InvalidInput(f"cannot read the data file {str(path)!r}: {exc.strerror or exc}") from exc
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"the data file {str(path)!r} is not JSON: {exc}") from exc
    if not isinstance(data, list) or not data or not isinstance(data[0], dict):
        raise InvalidInput(f"the data file {str(path)!r} is not a list of LoCoMo samples or LongMemEval questions")
    try:
        if "conversation" in data[0]:
            conversations = [_locomo(sample) for sample in data]
            categories = categories if categories is not None else LOCOMO_CATEGORIES
        elif "haystack_sessions" in data[0]:
            conversations = [_longmemeval(question) for question in data]
        else:
            raise InvalidInput(f"the data file {str(path)!r} is neither LoCoMo (conversation) nor LongMemEval")
    except (KeyError, TypeError, AttributeError) as exc:
        raise InvalidInput(f"the data file {str(path)!r} has an unexpected shape: missing or bad {exc}") from exc
    if categories is not None:
        conversations = [
            Conversation(c.name, c.turns, tuple(q for q in c.questions if q.category in categories))
            for c in conversations
        ]
    return [c for c in conversations if c.questions]


def _locomo(sample: dict[str, Any]) -> Conversation:
    conversation = sample["conversation"]
    user = conversation["speaker_a"]
    sessions = sorted(
        ((int(m.group(1)), key) for key in conversation if (m := _SESSION.match(key))), key=lambda pair: pair[0]
    )
    turns: list[Turn] = []
    for number, key in sessions:
        date = conversation.get(f"{key}_date_time")
        at = parse_date(date)
        for n, turn in enumerate(conversation[key]):
            text = f"{turn['speaker']}: {turn['text']}"
            if turn.get("blip_caption"):
                text += f" [shares a photo: {turn['blip_caption']}]"
            if n == 0 and date:
                text = f"[{date}] {text}"
            role: Role = "user" if turn["speaker"] == user else "assistant"
            key_ = _dia(turn["dia_id"]) or turn["dia_id"]
            stamp = at + 1000 * n if at is not None else None
            turns.append(Turn(key=key_, role=role, text=text, group=str(number), at=stamp))
    known = {t.key for t in turns}
    asked = max((t.at for t in turns if t.at is not None), default=None)
    questions = []
    for qa in sample["qa"]:
        evidence = tuple(dict.fromkeys(d for e in qa.get("evidence", []) for d in _dias(str(e)) if d in known))
        if not evidence:
            continue
        answer = qa.get("answer", qa.get("adversarial_answer", ""))
        questions.append(Question(str(qa["question"]), str(answer), evidence, str(qa["category"]), at=asked))
    return Conversation(str(sample.get("sample_id", len(turns))), tuple(turns), tuple(questions))


def _dia(value: str) -> str | None:
    found = _dias(value)
    return found[0] if found else None


def _dias(value: str) -> list[str]:
    found: list[str] = []
    for session, turn, other, last in _DIA.findall(value):
        first, end = int(turn), int(last) if last else int(turn)
        if other and int(other) != int(session):  # a range across sessions: its two ends only
            found += [f"D{int(session)}:{first}", f"D{int(other)}:{end}"]
            continue
        found += [f"D{int(session)}:{t}" for t in range(first, max(first, end) + 1)]
    return found


def _longmemeval(entry: dict[str, Any]) -> Conversation:
    turns: list[Turn] = []
    evidence: list[str] = []
    names = entry.get("haystack_session_ids") or [str(n) for n in range(len(entry["haystack_sessions"]))]
    dates = entry.get("haystack_dates") or [None] * len(names)
    for number, (name, date, session) in enumerate(zip(names, dates, entry["haystack_sessions"], strict=True)):
        at = parse_date(date)
        for n, turn in enumerate(session):
            text = str(turn["content"])
            if n == 0 and date:
                text = f"[{date}] {text}"
            role: Role = "user" if turn["role"] == "user" else "assistant"
            key = f"s{number}:{n}"
            turns.append(Turn(key=key, role=role, text=text, group=str(name), at=at + 1000 * n if at else None))
            if turn.get("has_answer"):
                evidence.append(key)
    level: Literal["turn", "session"] = "turn"
    if not evidence:
        wanted = {str(s) for s in entry.get("answer_session_ids", [])}
        evidence = [str(name) for name in names if str(name) in wanted]
        level = "session"
    question = Question(
        str(entry["question"]),
        str(entry.get("answer", "")),
        tuple(evidence),
        str(entry.get("question_type", "")),
        level,
        parse_date(entry.get("question_date")),
    )
    return Conversation(str(entry.get("question_id", len(turns))), tuple(turns), (question,) if evidence else ())
