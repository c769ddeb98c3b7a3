"""Summarizers: what turns the previous summary and the next rounds into the new summary.

- ``Summarizer`` is the seam the rolling summary (``compaction.py``) calls, once per compaction,
  with the previous summary (``None`` the first time) and the items of the rounds to fold in.
- ``ExtractiveSummarizer`` (the offline default) writes no new prose: it keeps the salient
  sentences verbatim, as ``role: text`` lines. Every sentence of the previous summary and of the
  new rounds is scored by what it carries (numbers, dates, names, decisions, open questions;
  user sentences weigh more than the assistant's) and the best are kept within the token target,
  then put back in chronological order. Incremental by construction: the previous summary's
  sentences compete with the new ones, so old facts stay until newer, more salient ones crowd
  them out. Deterministic for the same inputs. The embedded 0.5B model cannot write a usable
  summary (DESIGN.md, measured), which is why this, not a model, is the default.
- ``ModelSummarizer`` makes one generation call on a backend (an upstream model configured by
  alias) with a prompt that asks to keep names, numbers, dates, decisions and open questions;
  its output is bounded by ``max_tokens`` and its reasoning is dropped.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from contextlib import aclosing
from dataclasses import dataclass
from typing import Protocol

from ..backends.base import Backend, completes
from ..context.retrieval import render_items
from ..errors import BackendError
from ..records import ItemRecord
from ..tokens import Tokenizer
from ..types import Accumulator, GenerationParams, Message, TextPart


class Summarizer(Protocol):
    @property
    def name(self) -> str:
        """What wrote the summary (``extractive``, a model alias); stored with it."""
        ...

    async def summarize(self, previous: str | None, items: Sequence[ItemRecord], *, target_tokens: int) -> str:
        """The summary of ``previous`` (the summary so far, or ``None``) followed by ``items``.

        Args:
            items: the items of the rounds to fold in, in path order (failed items included;
                a summarizer skips them).
            target_tokens: the summary's size limit.
        Returns:
            The new summary (empty when there was nothing to keep).
        Raises:
            BackendError: a model summarizer's call failed.
        """
        ...


# -- extractive ----------------------------------------------------------------------------------

_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+|\s*\n+\s*")
_LIST_MARK = re.compile(r"^(?:\d+[.)]|[-*•#>]+)\s+")
_NUMBER = re.compile(r"(?<![A-Za-z])\d+(?:[.,:/-]\d+)*(?:\s?%)?")
_DATE = re.compile(
    r"\b(?:January|February|March|April|May|June|July|August|September|October|November|December"
    r"|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sept?|Oct|Nov|Dec|Monday|Tuesday|Wednesday|Thursday|Friday"
    r"|Saturday|Sunday)\b|\b\d{1,2}:\d{2}\b|\b\d{4}-\d{2}-\d{2}\b",
)
_WHEN = re.compile(r"\b(?:today|tomorrow|yesterday|tonight|weekend|(?:next|last|this) (?:week|month|year))\b", re.I)
_SMALL_TALK = re.compile(
    r"^(?:hi|hello|hey|thanks|thank you|ok|okay|sure|great|cool|bye|good (?:morning|evening|night))\b"
    r"|\bhow are you\b|\banything else\b|\bhow can i help\b|\bhappy to help\b",
    re.I,
)
_DECISION = re.compile(
    r"\b(?:decid\w*|agreed?|chose|choose|chosen|settled|confirmed|booked|reserved|planned|plan to"
    r"|will|won't|going to|let's|we'll|i'll|must|deadline|instead|switch\w*|cancel\w*|prefer\w*)\b",
    re.IGNORECASE,
)
_OPEN = re.compile(
    r"\?$|\b(?:todo|to do|open question|not sure|unsure|need to|still need|pending|remind|follow up|tbd)\b",
    re.IGNORECASE,
)
_CAPITALIZED = re.compile(r"\b[A-Z][\w'\u2019-]*[A-Za-z]\b|\b[\w.+-]+@[\w-]+\.[\w.]+\b|https?://\S+")
_OPENERS = """I I'm I've I'll I'd The A An We You He She It They This That These Those What How When Where Why Who
Which Can Could Would Should Will Shall Do Does Did Is Are Was Were Be Have Has Had My Our Your
Their His Her Its And But Or So Also Then If Please Thanks Thank Sure Ok Okay Yes No Hi Hello Hey
Great Good Well Sounds Let Let's Here There Now Just Maybe Of For In On At To From With As By Not
Any All Some Each Every One First Second Next Last Note Sorry Alright Right"""
_COMMON = frozenset(_OPENERS.split())
"""Capitalized words that are not names (sentence openers)."""
_LINE = re.compile(r"^(user|assistant|tool|system): (.*)$")
_ROLE_WEIGHT = {"user": 1.0, "tool": 0.8, "assistant": 0.6, "": 1.0}
_GAP = " … "
"""Joins two kept sentences of one turn that were not adjacent."""


@dataclass(frozen=True, slots=True)
class _Unit:
    """A sentence that may go into the summary: its line (``group``), place and score."""

    group: int
    index: int
    role: str
    text: str
    score: float


def salience(text: str, role: str) -> float:
    """How much a sentence is worth keeping: numbers, dates, names, decisions, open questions.

    Each kind counts a few times at most, so a long list does not outscore a decision; the
    sum is weighted by who said it (the user's facts first). Small talk scores nothing; a
    capitalized word opening the sentence is not taken for a name (acronyms are).
    """
    if _SMALL_TALK.search(text) and len(text.split()) <= 8:
        return 0.0
    numbers = len(_NUMBER.findall(text))
    dates = len(_DATE.findall(text))
    names = sum(1 for m in _CAPITALIZED.finditer(text) if _is_name(m.group(0), at_start=m.start() == 0))
    score = 2.0 * min(numbers, 3) + 3.0 * min(dates, 2) + 1.5 * bool(_WHEN.search(text)) + 2.0 * min(names, 3)
    score += 3.0 * bool(_DECISION.search(text)) + 2.0 * (role == "user" and bool(_OPEN.search(text)))
    return score * _ROLE_WEIGHT.get(role, 1.0)


def _is_name(word: str, *, at_start: bool) -> bool:
    if word in _COMMON or _DATE.fullmatch(word):
        return False
    return not at_start or word.isupper() or "@" in word or "://" in word


def _is_topic(sentence: str) -> bool:
    """Whether a user turn's opening sentence says what the turn is about (not small talk)."""
    return len(sentence.split()) >= 3 and not _SMALL_TALK.search(sentence)


def _sentences(text: str) -> list[str]:
    pieces = (_LIST_MARK.sub("", piece.strip()).strip() for piece in _SENTENCE_END.split(text.replace(_GAP, "\n")))
    return [piece for piece in pieces if piece]


def _item_text(item: ItemRecord) -> str:
    return "".join(p.text for p in item.content if isinstance(p, TextPart))


class ExtractiveSummarizer:
    """Keeps the most salient sentences verbatim, within the token target (see the module doc).

    Args:
        tokenizer: counts the summary against ``target_tokens``.
        min_score: sentences scoring below this are dropped, except the opening sentence of
            each user turn (its topic), which is kept when there is room.
    """

    name = "extractive"

    def __init__(self, tokenizer: Tokenizer, *, min_score: float = 2.0) -> None:
        self._tokenizer = tokenizer
        self._min_score = min_score

    async def summarize(self, previous: str | None, items: Sequence[ItemRecord], *, target_tokens: int) -> str:
        return self.extract(previous, items, target_tokens=target_tokens)

    def extract(self, previous: str | None, items: Sequence[ItemRecord], *, target_tokens: int) -> str:
        """The synchronous body of ``summarize`` (no I/O)."""
        units = self._units(previous, items)
        if not units or target_tokens <= 0:
            return ""
        ranked = sorted(units, key=lambda u: (-u.score, -u.group, u.index))
        chosen: list[_Unit] = []
        used = 0
        for unit in ranked:
            cost = self._tokenizer.count(unit.text) + 2
            if used + cost <= target_tokens:
                chosen.append(unit)
                used += cost
        if not chosen:  # even the best sentence is over the target: keep its beginning
            best = ranked[0]
            words = best.text.split()
            while len(words) > 1 and self._tokenizer.count(_render([_cut(best, words)])) > target_tokens:
                words = words[: max(1, len(words) * 3 // 4)]
            chosen = [_cut(best, words)]
        text = _render(chosen)
        while len(chosen) > 1 and self._tokenizer.count(text) > target_tokens:
            chosen.remove(min(chosen, key=lambda u: (u.score, u.group, -u.index)))
            text = _render(chosen)
        return text

    def _units(self, previous: str | None, items: Sequence[ItemRecord]) -> list[_Unit]:
        units: list[_Unit] = []
        seen: set[str] = set()
        groups: list[tuple[str, str]] = []  # (role, text) per line, previous summary first
        for line in (previous or "").splitlines():
            match = _LINE.match(line.strip())
            groups.append((match.group(1), match.group(2)) if match else ("", line.strip()))
        for item in items:
            if item.status != "failed" and item.role != "system":
                groups.append((item.role, _item_text(item)))
        for group, (role, text) in enumerate(groups):
            for index, sentence in enumerate(_sentences(text)):
                key = " ".join(sentence.lower().split())
                if key in seen:
                    continue
                score = salience(sentence, role)
                if score < self._min_score:
                    if not (index == 0 and role == "user" and _is_topic(sentence)):
                        continue
                    score = 0.25 + score / 2  # a topic line: below every fact, kept when there is room
                seen.add(key)
                units.append(_Unit(group, index, role, sentence, score))
        return units


def _cut(unit: _Unit, words: list[str]) -> _Unit:
    text = " ".join(words)
    return _Unit(unit.group, unit.index, unit.role, text if text == unit.text else text + " …", unit.score)


def _render(units: Sequence[_Unit]) -> str:
    """One ``role: text`` line per source line, sentences in their order, gaps marked."""
    lines: list[str] = []
    ordered = sorted(units, key=lambda u: (u.group, u.index))
    for position, unit in enumerate(ordered):
        before = ordered[position - 1] if position else None
        if before is not None and before.group == unit.group:
            lines[-1] += (" " if unit.index == before.index + 1 else _GAP) + unit.text
        else:
            lines.append(f"{unit.role}: {unit.text}" if unit.role else unit.text)
    return "\n".join(lines)


# -- model ---------------------------------------------------------------------------------------

SUMMARY_INSTRUCTIONS = (
    "You keep the running summary of a conversation between a user and an assistant. Merge the "
    "previous summary and the new rounds into one updated summary, as short bullet points "
    '("- "). Keep every name, number, amount, date and time, every decision made and every open '
    "question or pending task, exactly as stated. Leave out greetings, small talk and whatever the "
    "new rounds made obsolete. Never add facts that are not in the text. Answer with the summary only."
)


def summary_request(previous: str | None, items: Sequence[ItemRecord], *, target_tokens: int) -> list[Message]:
    """The messages a model summarizer sends: the instructions, then the material."""
    words = max(20, target_tokens * 3 // 4)
    material = (
        f"Previous summary:\n{previous.strip() if previous and previous.strip() else '(none yet)'}\n\n"
        f"New rounds:\n{render_items([i for i in items if i.role != 'system'])}\n\n"
        f"Write the updated summary in at most {words} words."
    )
    return [Message.of("system", SUMMARY_INSTRUCTIONS), Message.of("user", material)]


_THINK = re.compile(r"<think>.*?(?:</think>|$)", re.DOTALL)


class ModelSummarizer:
    """One generation call per compaction on ``backend`` (see the module doc).

    Args:
        backend: the summarizing model (an upstream alias: the embedded 0.5B model cannot do it).
        temperature: sampling temperature of the call (low: a summary is not creative writing).
    """

    def __init__(self, backend: Backend, *, temperature: float = 0.2) -> None:
        self._backend = backend
        self._temperature = temperature

    @property
    def name(self) -> str:
        return self._backend.info().name

    async def summarize(self, previous: str | None, items: Sequence[ItemRecord], *, target_tokens: int) -> str:
        messages = summary_request(previous, items, target_tokens=target_tokens)
        params = GenerationParams(max_tokens=max(1, target_tokens), temperature=self._temperature)
        await self._backend.prepare()
        if completes(self._backend):
            completion = await self._backend.complete(messages, params)
        else:
            answer = Accumulator()
            async with aclosing(self._backend.generate(messages, params)) as deltas:
                async for delta in deltas:
                    answer.add(delta)
            completion = answer.completion()
        text = _THINK.sub("", completion.content).strip()  # reasoning is never part of a summary
        if completion.finish_reason == "length" and "\n" in text:
            text = text.rsplit("\n", 1)[0].rstrip()  # the last line was cut off mid-way
        if not text:
            raise BackendError(f"the summary model {self.name!r} returned no text")
        return text


__all__ = [
    "SUMMARY_INSTRUCTIONS",
    "ExtractiveSummarizer",
    "ModelSummarizer",
    "Summarizer",
    "salience",
    "summary_request",
]
