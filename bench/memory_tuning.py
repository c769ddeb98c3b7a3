"""Choose the retrieval ranking's weights by measurement: evidence recall per Tuning, simulated.

Every conversation is replayed once into a temporary SQLite store and indexed (as
``multiturn bench memory`` does). For each question the raw signals are gathered once, as
``IndexRecall`` computes them: the store's full-text scores, the query's vector, and (once per
conversation) its vectors; then each configuration scores the vectors (``memory.dense``), ranks
with ``memory.ranking.rank`` (with the span the question's time expression names, read at the
question's date: ``memory.timing``), and the planner is simulated: the window part is ``plan_context``'s
own (planned once per conversation and budget), the recalled rounds are taken best first while
they fit what the window leaves, as ``select_recalled`` does. The numbers are the share of
evidence turns in (window + recalled), overall, per category (LoCoMo's 1-4, LongMemEval's types)
and over the questions with three evidence turns or more; a session-level question counts a
session when any of its turns is in. ``multiturn bench memory`` confirms the chosen configuration
end to end (the simulation matched it within 0.002 on both development sets).

    .venv/bin/python bench/memory_tuning.py [--data FILE] [--budget 4000] [--json OUT] [--expansion]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import pickle
import re
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from multiturn.bench import memory as harness
from multiturn.bench.memory_data import load
from multiturn.context.plan import plan_context, preset
from multiturn.context.retrieval import recalled_block, render_items
from multiturn.embeddings import WordLlamaEmbedder, load_embedder
from multiturn.engine import Engine
from multiturn.memory import dense
from multiturn.memory.lexical import BM25, stem
from multiturn.memory.query import STOPWORDS, build_query
from multiturn.memory.ranking import Tuning, rank, unit_text, units
from multiturn.memory.recall import IndexRecall
from multiturn.memory.timing import when
from multiturn.records import ItemRecord
from multiturn.settings import Settings
from multiturn.store import SQLStore
from multiturn.tokens import QwenTokenizer, message_tokens
from multiturn.types import Message, TextPart, in_spans

LOCOMO = Path("/work/shared/data/locomo/locomo10.json")


@dataclass
class Vectors:
    """One conversation's vectors as recall holds them (rows in ``ids`` order); shared by its cases."""

    ids: list[str]
    matrix: Any


@dataclass
class Case:
    units: list[Any]
    lexical: dict[str, float]
    vectors: Vectors | None
    query_vector: Any
    evidence: list[set[str]]
    """Per evidence turn (or session): the item ids any of which counts."""
    window: dict[tuple[float, int], tuple[set[str], int]]
    costs: dict[str, int]
    category: str
    names: list[str]
    """The question's names (``Query.names``)."""
    when: Any = None
    """The span its time expression names (``timing.when`` at the question's date)."""
    back: bool = False
    """Whether it asks after an earlier exchange (``Query.back``)."""
    query: str = ""
    """Its full-text query (``Query.lexical``)."""


async def gather(data: Path, shares: list[float], budgets: list[int], limit: int | None = None) -> list[Case]:
    tokenizer = QwenTokenizer()
    cases: list[Case] = []
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings.load(db=str(Path(tmp) / "t.db"), data_dir=Path(tmp), n_ctx=65536)
        store = SQLStore(settings.database_url)
        await store.migrate()
        recall = IndexRecall(store, load_embedder(settings))
        engine = Engine(store, lambda name: None, default_model="none", recall=recall)  # type: ignore[arg-type,return-value]
        for conversation in load(data)[:limit]:
            cid, _, _ = await harness._replay(engine, recall, conversation, False)
            path = await engine.history(cid)
            ids = {turn.key: item.id for turn, item in zip(conversation.turns, path, strict=True)}
            found = units(path)
            costs = {u[0][0]: tokenizer.count(render_items(u[1])) + 1 for u in found}
            windows: dict[tuple[float, int], tuple[set[str], int]] = {}
            probe = [*path, _pending(cid, conversation.questions[0].text)]
            for share in shares:
                for budget in budgets:
                    policy = replace(preset("retrieval"), recent_share=share, budget=budget)
                    _, report = plan_context(
                        None, probe, policy=policy, window_tokens=65536, reserved_output=64, tokenizer=tokenizer
                    )
                    header = message_tokens(Message.of("system", recalled_block([])), tokenizer)
                    kept = {item.id for n, item in enumerate(probe) if in_spans(report.kept, n)}
                    windows[(share, budget)] = (kept, report.budget - report.tokens - header)
            held = await recall._conversation_vectors(cid, path, "default") if recall.embedder else None
            matrix = held.stack() if held is not None else None
            vectors = Vectors(list(held.ids), matrix) if held is not None and matrix is not None else None
            for question in conversation.questions:
                query = build_query([_pending(cid, question.text)], path)
                lexical = await recall._lexical(cid, query, "default")
                span = when(question.text, question.at) if question.at is not None else None
                query_vector = await recall._query_vector(query) if vectors is not None else None
                if question.level == "session":  # any turn of an evidence session counts
                    evidence = [
                        {ids[t.key] for t in conversation.turns if t.group == group} for group in question.evidence
                    ]
                else:
                    evidence = [{ids[k]} for k in question.evidence]
                category, names = question.category, query.names
                case = Case(found, lexical, vectors, query_vector, evidence, windows, costs, category, names, span)
                case.back = query.back
                case.query = query.lexical
                cases.append(case)
        await store.close()
    return cases


def _pending(cid: str, text: str) -> ItemRecord:
    return ItemRecord(
        id="item_pending",
        conversation_id=cid,
        parent_id=None,
        role="user",
        content=(TextPart(text),),
        status="completed",
        created_at=0,
    )


def case_dense(case: Case, tuning: Tuning, spaces: dict[tuple[int, int | None], dense.Space]) -> dict[str, float]:
    """The dense scores recall would give ``case`` under ``tuning`` (spaces fitted once per conversation)."""
    if case.vectors is None or case.query_vector is None:
        return {}
    key = (id(case.vectors), tuning.common_directions)
    if key not in spaces:
        spaces[key] = dense.fit(case.vectors.matrix, tuning.common_directions)
    sims = dense.similarities(spaces[key], case.vectors.matrix, case.query_vector)
    return {item_id: float(s) for item_id, s in zip(case.vectors.ids, sims, strict=True)}


_WORDS = re.compile(r"[^\W\d_]{3,}")


class Expansion:
    """Query expansion through the embedder's word vectors, restricted to the conversation's
    vocabulary (measured and not kept, ``bench/results/memory_baseline.md``, 2026-12-07 13:15).

    Each content word of the question (names aside) brings its ``per_word`` most similar words of
    the conversation (its units' words of 3+ letters, stopwords aside; cosine of WordLlama word
    vectors >= ``threshold``; not a question word's stem; with ``spelling``, not sharing its first
    four letters or containing it either). Each unit's expansion score, sum(cosine x BM25 of the
    word over the units: ``lexical.BM25``), times ``weight`` is added to its full-text score; a
    unit matched only by expansion starts at the lowest full-text score of the question's own
    matches, so the min-max normalization of the fusion stays where it was."""

    def __init__(
        self, cases: list[Case], per_word: int, threshold: float, weight: float, *, spelling: bool = False
    ) -> None:
        import numpy as np

        self.per_word, self.threshold, self.weight, self.spelling = per_word, threshold, weight, spelling
        self._conversations: dict[int, tuple[list[str], Any, BM25]] = {}
        texts_of: dict[int, list[str]] = {}
        for case in cases:
            texts_of.setdefault(id(case.units), [unit_text(unit) for unit in case.units])
        vocabularies = {
            key: sorted({w for t in texts for w in _WORDS.findall(t.lower()) if w not in STOPWORDS})
            for key, texts in texts_of.items()
        }
        every = sorted(set().union(*vocabularies.values(), *(case.query.split() for case in cases)))
        embedder = WordLlamaEmbedder()
        self._vector = dict(zip(every, asyncio.run(embedder.embed(every)), strict=True))
        for key, words in vocabularies.items():
            matrix = np.vstack([self._vector[w] for w in words])
            self._conversations[key] = (words, matrix, BM25(texts_of[key]))

    def words(self, case: Case) -> dict[str, float]:
        """The expansion words of ``case``'s question and their cosines."""
        import numpy as np

        vocabulary, matrix, _ = self._conversations[id(case.units)]
        asked = case.query.split()
        stems = {stem(w) for w in asked}
        out: dict[str, float] = {}
        for word in asked:
            if len(word) < 3 or not word.isalpha() or word in case.names or word not in self._vector:
                continue
            sims = matrix @ self._vector[word]
            taken = 0
            for n in np.argsort(-sims)[: self.per_word + 8]:
                if sims[n] < self.threshold or taken >= self.per_word:
                    break
                other = vocabulary[n]
                if stem(other) in stems or other in case.names:
                    continue
                if self.spelling and any(other[:4] == w[:4] or other in w or w in other for w in asked):
                    continue
                out[other] = max(out.get(other, 0.0), float(sims[n]))
                taken += 1
        return out

    def lexical(self, case: Case) -> dict[str, float]:
        """``case``'s full-text scores with the expansion's added."""
        _, _, bm25 = self._conversations[id(case.units)]
        extra: dict[str, float] = {}
        for word, cosine in self.words(case).items():
            for n, score in bm25.scores(word).items():
                key = case.units[n][0][0]
                extra[key] = extra.get(key, 0.0) + cosine * score
        if not extra:
            return case.lexical
        low = min(case.lexical.values(), default=0.0)
        out = dict(case.lexical)
        for key, score in extra.items():
            out[key] = out.get(key, low) + self.weight * score
        return out


def evaluate(
    cases: list[Case],
    tuning: Tuning,
    share: float,
    budget: int,
    *,
    timed: bool = True,
    expansion: Expansion | None = None,
) -> dict[str, float]:
    """Mean recall overall (``all``), over questions with 3+ evidence turns (``3+``), and per category."""
    spaces: dict[tuple[int, int | None], dense.Space] = {}
    groups: dict[str, list[float]] = {}
    for case in cases:
        kept, room = case.window[(share, budget)]
        chosen = set(kept)
        used = 0
        span = case.when if timed else None
        found = case_dense(case, tuning, spaces)
        lexical = expansion.lexical(case) if expansion is not None else case.lexical
        ranked = rank(case.units, lexical, found, tuning, names=case.names, when=span, back=case.back)
        for entry in sorted(ranked, key=_score):
            first = entry.item_ids[0]
            if first in kept:
                continue
            cost = case.costs[first]
            if used + cost <= room:
                chosen.add(first)
                used += cost
        value = sum(bool(alternatives & chosen) for alternatives in case.evidence) / len(case.evidence)
        for name in ["all", case.category, *(["3+"] if len(case.evidence) >= 3 else [])]:
            groups.setdefault(name, []).append(value)
    return {name: sum(values) / len(values) for name, values in groups.items()}


def _score(entry: Any) -> float:
    return -float(entry.score)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=LOCOMO)
    parser.add_argument("--budget", type=int, action="append")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--conversations", type=int, help="only the first N conversations (LongMemEval: questions)")
    parser.add_argument("--expansion", action="store_true", help="also the query expansion cases (WordLlama)")
    args = parser.parse_args()
    budgets = args.budget or [4000]
    shares = [0.6, 0.4, 0.25, 0.1]
    started = time.perf_counter()
    # v2: the window's kept items are item ids (v1 compared ids with the report's position runs: an empty window)
    # v3: vectors and query vectors instead of cosines, categories, names, session evidence as alternatives
    # v4: items at the data's dates, the question's time span and its timeless full-text scores
    # v6: whether the question asks after an earlier exchange (v5 was a measured variant's)
    # v7: the question's full-text query
    cache = Path(f"/tmp/memory_tuning_v7_{args.data.stem}_{args.conversations}_{'-'.join(map(str, budgets))}.pickle")
    if cache.exists():
        cases = pickle.loads(cache.read_bytes())
    else:
        cases = asyncio.run(gather(args.data, shares, budgets, args.conversations))
        cache.write_bytes(pickle.dumps(cases))
    print(f"{len(cases)} questions gathered in {time.perf_counter() - started:.0f} s")
    base = Tuning()
    flat = replace(base, neighbour=0.0, length_exponent=0.0)
    configs: list[tuple[str, Tuning]] = [
        ("lexical only", replace(flat, lexical_weight=1.0)),
        ("dense only", replace(flat, lexical_weight=0.0)),
        ("rrf 0.5", replace(flat, fusion="rrf", lexical_weight=0.5)),
        *((f"weighted {w}", replace(flat, lexical_weight=w)) for w in (0.3, 0.5, 0.7)),
        (
            "weighted 0.6 + max neighbour 0.5 reach 1",
            replace(flat, lexical_weight=0.6, neighbour=0.5, spread="max", reach=1),
        ),
        ("weighted 0.7 + max neighbour 0.8 reach 5", replace(flat, neighbour=0.8, spread="max", reach=5)),
        ("weighted 0.7 + sum neighbour 0.5 reach 4", replace(flat, neighbour=0.5, reach=4)),
        *((f"default, length ** {a}", replace(base, length_exponent=a)) for a in (0.5, 0.0)),
        *((f"default, common directions {k}", replace(base, common_directions=k)) for k in (None, 0, 2, 5, 8)),
        *((f"default, unnamed x{u}", replace(base, unnamed=u)) for u in (1.0, 0.5, 0.8)),
        ("before (raw cosines, no names)", replace(base, common_directions=None, unnamed=1.0)),
        *((f"default, out of time x{f}", replace(base, out_of_time=f)) for f in (1.0, 0.7, 0.3)),
        *((f"default, back first {k}", replace(base, back_first=k)) for k in (0, 2)),
        ("default", base),
    ]
    expansions: dict[str, Expansion] = {}
    if args.expansion:
        for per_word, threshold, weight, spelling in ((1, 0.4, 0.1, False), (2, 0.4, 0.5, False), (2, 0.4, 0.5, True)):
            name = f"default + expansion {per_word}/{threshold}/x{weight}{' spelling' if spelling else ''}"
            expansions[name] = Expansion(cases, per_word, threshold, weight, spelling=spelling)
            configs.append((name, base))
    rows = []
    for name, tuning in configs:
        for budget in budgets:
            for share in shares:
                values = evaluate(cases, tuning, share, budget, expansion=expansions.get(name))
                rows.append({"config": name, "budget": budget, "recent_share": share, **values})
                ordered = sorted(values.items(), key=lambda kv: (kv[0] != "all", kv[0]))
                shown = "  ".join(f"{k} {v:.3f}" for k, v in ordered)
                print(f"{name:40s} budget {budget:5d} share {share:.2f}  {shown}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
