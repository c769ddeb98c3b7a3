"""The memory benchmark: how much of what a question needs each policy keeps, per token sent.

Each conversation of a LoCoMo or LongMemEval file (``memory_data``) is replayed into a store
through the real store and retrieval index (items appended directly, indexed by ``IndexRecall``;
no model is called). Then, for every question and every policy x budget, ``Engine.preview``
builds the context a turn asking that question would send, and we measure:

- **evidence recall**: the share of the question's evidence turns whose text is present,
  verbatim, in the assembled messages (the question itself and a summary do not count);
- **tokens sent**: the plan's prompt tokens (the Qwen tokenizer);
- **assembly latency**: the whole ``preview`` call (path read, recall, planning), p50 and p95.

For ``summary`` and ``auto`` the conversation is replayed once more per budget with the
configured rolling summary (extractive unless ``summary_model`` is set) run before each user
turn against that budget, as the engine runs it; their previews read that replay.

With ``answer_model`` set, each context is also sent to that model and the answer scored by
token F1 against the gold answer (SQuAD-style normalization). That is meaningful with a strong
upstream model only: the embedded 0.5B model is too weak for answer accuracy to mean much.
"""

from __future__ import annotations

import math
import re
import statistics
import string
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..backends.base import Backend
from ..backends.registry import BackendRegistry
from ..context.plan import preset
from ..context.summary import SUMMARY_PREFIX, SUMMARY_SUFFIX
from ..embeddings import load_embedder
from ..engine import Engine
from ..errors import InvalidInput
from ..ids import now_ms
from ..memory.base import Compaction
from ..memory.compaction import build_compaction
from ..memory.lexical import BM25
from ..memory.recall import IndexRecall, Tuning
from ..records import ConversationRecord, ItemRecord
from ..settings import Settings
from ..store import SQLStore
from ..tokens import QwenTokenizer, message_tokens
from ..types import Accumulator, GenerationParams, Message, TextPart
from .memory_data import Conversation, Question, load

POLICY_CHOICES = ("window", "retrieval", "auto", "summary", "full")
BASELINE = "bm25-turns"
"""The baseline printed beside every policy: the question's best single turns by BM25 (the
formula of the store's full-text index), most relevant first, as many as the budget holds."""
DEFAULT_POLICIES = ("window", "retrieval", "auto")
DEFAULT_BUDGETS = (1000, 2000, 4000, 8000)
ANSWER_PROMPT = "Answer the last question from the conversation above in a few words."


@dataclass(frozen=True, slots=True)
class Options:
    data: Path
    policies: tuple[str, ...] = DEFAULT_POLICIES
    budgets: tuple[int, ...] = DEFAULT_BUDGETS
    conversations: int | None = None
    questions: int | None = None
    """At most this many questions per conversation."""
    categories: frozenset[str] | None = None
    db: str | None = None
    """Store URL or SQLite path; default a temporary SQLite file."""
    embedder: str = "wordllama"
    tuning: Tuning = field(default_factory=Tuning)
    answer_model: str | None = None
    max_tokens: int = 64
    baseline: bool = True
    """Also measure ``BASELINE`` at every budget."""

    def __post_init__(self) -> None:
        unknown = [p for p in self.policies if p not in POLICY_CHOICES]
        if unknown or not self.policies:
            raise InvalidInput(f"unknown policy {', '.join(unknown) or '(none)'}: use {', '.join(POLICY_CHOICES)}")
        if not self.budgets or any(b < 100 for b in self.budgets):
            raise InvalidInput("budgets must be token counts of at least 100")


@dataclass
class Cell:
    """One policy x budget: a value per question."""

    policy: str
    budget: int
    recall: list[float] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)
    latency_ms: list[float] = field(default_factory=list)
    f1: list[float] = field(default_factory=list)
    asked: list[tuple[str, Question]] = field(default_factory=list)
    """The conversation and question of each value, in the same order."""

    def by_category(self) -> dict[str, dict[str, float]]:
        """Recall (and tokens) per question category (LoCoMo's 1-4, LongMemEval's types)."""
        groups: dict[str, list[int]] = {}
        for n, (_, question) in enumerate(self.asked):
            groups.setdefault(question.category, []).append(n)
        return {
            category: {
                "questions": len(ns),
                "recall": _mean([self.recall[n] for n in ns]),
                "tokens": _mean([self.tokens[n] for n in ns]),
            }
            for category, ns in sorted(groups.items())
        }

    def per_question(self) -> Iterator[dict[str, Any]]:
        """One record per question: what it asked, its evidence, and what this cell gave it."""
        for n, (conversation, question) in enumerate(self.asked):
            yield {
                "conversation": conversation,
                "question": question.text,
                "category": question.category,
                "evidence": list(question.evidence),
                "policy": self.policy,
                "budget": self.budget,
                "recall": self.recall[n],
                "tokens": self.tokens[n],
                "latency_ms": round(self.latency_ms[n], 3),
                **({"f1": self.f1[n]} if self.f1 else {}),
            }

    def summary(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "budget": self.budget,
            "questions": len(self.recall),
            "recall": _mean(self.recall),
            "tokens": _mean(self.tokens),
            "p50_ms": _percentile(self.latency_ms, 50),
            "p95_ms": _percentile(self.latency_ms, 95),
            "f1": _mean(self.f1) if self.f1 else None,
            "by_category": self.by_category(),
        }


@dataclass
class Result:
    data: str
    conversations: int
    questions: int
    history_tokens: list[int]
    cells: list[Cell]
    embedder: str | None
    answer_model: str | None

    def as_json(self) -> dict[str, Any]:
        return {
            "data": self.data,
            "conversations": self.conversations,
            "questions": self.questions,
            "history_tokens_median": statistics.median(self.history_tokens) if self.history_tokens else 0,
            "embedder": self.embedder,
            "answer_model": self.answer_model,
            "cells": [cell.summary() for cell in self.cells],
        }


@dataclass
class QuestionClock:
    """Recall's clock during the bench: the time the question being previewed is asked (its
    data's date), so "four weeks ago" is read as the data means it; the wall clock without one."""

    at: int | None = None

    def __call__(self) -> int:
        return self.at if self.at is not None else now_ms()


Progress = Callable[[int, int], None]
"""Called with (done, total) evaluations."""


async def run(options: Options, *, progress: Progress | None = None) -> Result:
    """Replay, then evaluate every question under every policy x budget."""
    conversations = load(options.data, categories=options.categories)[: options.conversations]
    conversations = [replace(c, questions=c.questions[: options.questions]) for c in conversations]
    if not conversations:
        raise InvalidInput(f"no question with evidence in {str(options.data)!r}")
    with tempfile.TemporaryDirectory(prefix="multiturn-bench-") as tmp:
        return await _run(options, conversations, Path(tmp), progress)


async def _run(options: Options, conversations: list[Conversation], tmp: Path, progress: Progress | None) -> Result:
    answering = options.answer_model is not None
    window = max(options.budgets) + options.max_tokens
    settings = Settings.load(
        db=options.db or str(tmp / "memory.db"),
        data_dir=tmp,
        embedder=options.embedder,
        n_ctx=window if answering else 4 * window,
        max_tokens=options.max_tokens,
    )
    model = options.answer_model or settings.model
    store = SQLStore(settings.database_url)
    registry = BackendRegistry(settings)
    recall: IndexRecall | None = None
    try:
        await store.migrate()
        embedder = load_embedder(settings)
        clock = QuestionClock()
        recall = IndexRecall(store, embedder, tuning=options.tuning, clock=clock)
        tokenizer = QwenTokenizer()
        summarizing = any(preset(p).uses_summary for p in options.policies)
        compaction = build_compaction(settings, store, registry.get, tokenizer) if summarizing else None
        engine = Engine(
            store, registry.get, default_model=model, recall=recall, compaction=compaction, tokenizer=tokenizer
        )
        answerer = registry.get(options.answer_model) if options.answer_model else None
        baselines = {b: Cell(BASELINE, b) for b in options.budgets} if options.baseline else {}
        cells = {(p, b): Cell(p, b) for p in options.policies for b in options.budgets}
        total = sum(len(c.questions) for c in conversations) * len(cells)
        done = 0
        history: list[int] = []
        for conversation in conversations:
            conversation_id, texts, tokens = await _replay(engine, recall, conversation, answering)
            history.append(tokens)
            # the engine compacts against the prompt budget: one summarized replay per budget
            summarized = {
                b: (await _replay(engine, recall, conversation, answering, compaction=compaction, budget=b))[0]
                for b in options.budgets
                if compaction is not None
            }
            index = BM25([turn.text for turn in conversation.turns]) if baselines else None
            costs = [message_tokens(Message.of(t.role, t.text), tokenizer) for t in conversation.turns] if index else []
            for question in conversation.questions:
                clock.at = question.at
                for budget, cell in baselines.items():
                    assert index is not None
                    _baseline(index, costs, conversation, question, budget, cell)
                for (policy, budget), cell in cells.items():
                    target = summarized[budget] if preset(policy).uses_summary and summarized else conversation_id
                    await _evaluate(
                        engine, target, conversation, texts, question, policy, budget, cell, options, answerer
                    )
                    done += 1
                    if progress is not None:
                        progress(done, total)
        return Result(
            data=str(options.data),
            conversations=len(conversations),
            questions=sum(len(c.questions) for c in conversations),
            history_tokens=history,
            cells=[*baselines.values(), *cells.values()],
            embedder=embedder.name if embedder is not None else None,
            answer_model=options.answer_model,
        )
    finally:
        if recall is not None:
            await recall.aclose()  # an upstream embedder's HTTP session
        await registry.aclose()
        await store.close()


async def _replay(
    engine: Engine,
    recall: IndexRecall,
    conversation: Conversation,
    answering: bool,
    *,
    compaction: Compaction | None = None,
    budget: int = 0,
) -> tuple[str, dict[str, str], int]:
    """Write the conversation's turns as items, at the times the data gives them (an import:
    the store keeps an imported item's ``created_at``), and index them; returns its id, each
    turn's text by key, and the history's tokens. With ``compaction``, the rolling summary runs
    as the engine runs it before each user turn, against ``budget``."""
    tokenizer = QwenTokenizer()
    system_prompt = ANSWER_PROMPT if answering else None
    now = now_ms()
    items: list[ItemRecord] = []
    total = 0
    for n, turn in enumerate(conversation.turns):
        count = tokenizer.count(turn.text)
        total += count + 4
        items.append(
            ItemRecord(
                id=f"turn{n}",
                conversation_id="replay",
                parent_id=items[-1].id if items else None,
                role=turn.role,
                content=(TextPart(turn.text),),
                status="completed",
                created_at=turn.at if turn.at is not None else now,
                token_count=count,
            )
        )
    source = ConversationRecord(
        id="replay",
        tenant_id=engine.tenant_id,
        created_at=items[0].created_at if items else now,
        updated_at=now,
        title=conversation.name,
        model=None,
        system_prompt=system_prompt,
        head_item_id=items[-1].id if items else None,
    )
    record = await engine.store.import_conversation(source, items, tenant_id=engine.tenant_id)
    path = await engine.history(record.id)
    if compaction is not None:
        for n, stored in enumerate(path):
            if stored.role == "user":
                await compaction.compact(
                    record.id, system_prompt, path[: n + 1], window_tokens=budget, tenant_id=engine.tenant_id
                )
    await recall.index_path(record.id, path, tenant_id=engine.tenant_id)
    return record.id, {turn.key: turn.text for turn in conversation.turns}, total


async def _evaluate(
    engine: Engine,
    conversation_id: str,
    conversation: Conversation,
    texts: dict[str, str],
    question: Question,
    policy: str,
    budget: int,
    cell: Cell,
    options: Options,
    answerer: Backend | None,
) -> None:
    chosen = replace(preset(policy), budget=budget)
    started = time.perf_counter()
    messages, report = await engine.preview(
        conversation_id, [TextPart(question.text)], policy=chosen, max_tokens=options.max_tokens
    )
    cell.latency_ms.append((time.perf_counter() - started) * 1000)
    cell.tokens.append(report.tokens)
    cell.recall.append(evidence_recall(messages, conversation, texts, question))
    cell.asked.append((conversation.name, question))
    if answerer is not None:
        answer = await _answer(answerer, messages, options)
        cell.f1.append(token_f1(answer, question.answer))


def _baseline(
    index: BM25, costs: Sequence[int], conversation: Conversation, question: Question, budget: int, cell: Cell
) -> None:
    """``BASELINE`` for one question: turns by BM25 score against it, best first, while they fit
    ``budget`` (each turn costs its message's tokens); recall as ``evidence_recall`` counts it."""
    started = time.perf_counter()
    scores = index.scores(question.text)
    chosen: list[int] = []
    spent = 0
    for n in sorted(scores, key=lambda n: (-scores[n], -n)):  # ties: the later turn
        if spent + costs[n] > budget:
            continue
        chosen.append(n)
        spent += costs[n]
    cell.latency_ms.append((time.perf_counter() - started) * 1000)
    cell.tokens.append(spent)
    turns = [conversation.turns[n] for n in chosen]
    if question.level == "session":
        found = {t.group for t in turns} & set(question.evidence)
    else:
        found = {t.key for t in turns} & set(question.evidence)
    cell.recall.append(len(found) / len(question.evidence))
    cell.asked.append((conversation.name, question))


def evidence_recall(
    messages: Sequence[Message], conversation: Conversation, texts: dict[str, str], question: Question
) -> float:
    """The share of the question's evidence present verbatim in ``messages`` (the last message,
    the question, and the summary excluded)."""
    context = "\n".join(_without_summary(m.text) if m.role == "system" else m.text for m in messages[:-1])
    if question.level == "session":
        found = {t.group for t in conversation.turns if t.group in question.evidence and t.text in context}
        return len(found) / len(question.evidence)
    return sum(texts[key] in context for key in question.evidence) / len(question.evidence)


def _without_summary(text: str) -> str:
    """A system message's text without the summary's block the planner appended (from
    ``SUMMARY_PREFIX`` to ``SUMMARY_SUFFIX``: the summary is escaped, so nothing in it ends
    the block early)."""
    start = text.find(SUMMARY_PREFIX)
    if start < 0:
        return text
    end = text.find(SUMMARY_SUFFIX, start)
    return text[:start] + (text[end + len(SUMMARY_SUFFIX) :] if end >= 0 else "")


async def _answer(backend: Backend, messages: Sequence[Message], options: Options) -> str:
    await backend.prepare()
    answer = Accumulator()
    params = GenerationParams(max_tokens=options.max_tokens, temperature=0.0)
    async with aclosing(backend.generate(list(messages), params)) as deltas:
        async for delta in deltas:
            answer.add(delta)
    return answer.completion().content


_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def _normal_words(text: str) -> list[str]:
    return _ARTICLES.sub(" ", text.lower().translate(_PUNCTUATION)).split()


def token_f1(prediction: str, gold: str) -> float:
    """SQuAD's token F1: overlap of normalized words (lower case, no punctuation or articles)."""
    predicted, expected = _normal_words(prediction), _normal_words(gold)
    common = sum((Counter(predicted) & Counter(expected)).values())
    if not predicted or not expected or common == 0:
        return float(predicted == expected)
    precision, recall = common / len(predicted), common / len(expected)
    return 2 * precision * recall / (precision + recall)


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[rank]
