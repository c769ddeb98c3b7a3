"""How recalled turns are ranked: pure functions over a path's turns and two raw rankings.

1. Units: each user or assistant item of the path is a unit, with the tool results that answer
   an assistant item's calls (recalled together, as the planner keeps tool pairs whole).
2. Fusion: the lexical scores (BM25) and the dense ones (cosine) are each min-max normalized
   and mixed, ``lexical_weight`` of the first and the rest of the second (``fusion="weighted"``),
   or summed as reciprocal ranks (``fusion="rrf"``).
3. Neighbours: a unit ``d`` turns away from a hit gains ``neighbour ** d`` of its score, up to
   ``reach`` turns, summed over hits (``spread="sum"``: a turn inside a run of hits rises above
   a lone hit) or only the best (``"max"``). This recalls the exchange a fact was told in: the
   answer after a question, the question before an answer.
4. Names: when the question names someone or something (``query.names``: "What did Gina
   bake?"), a unit that names none of them keeps ``unnamed`` of its score (after the
   neighbours'), so the budget goes first to the turns about what was asked. In a chat between
   people whose turns carry their speaker's name this prefers the named person's own turns,
   which hold 96 % of LoCoMo's evidence for the questions naming one person.
5. Time: when the question names a past period ("four weeks ago", "last Saturday", "in March",
   "the week before August 3, 2023": ``timing.when``), a unit written outside the period's
   span keeps ``out_of_time`` of its score, provided some unit with a score was written in it
   (a question whose period holds nothing is ranked as if it named none). A unit's time is its
   first item's ``created_at``.
6. Cost: the score handed to the planner is divided by ``cost ** length_exponent``; the planner
   keeps the best-scored units that fit, so the exponent trades matches for tokens.
7. Asked back: a question that says it asks after an earlier exchange ("the hike you
   recommended", "our previous chat": ``query.asks_back``) repeats that exchange's words, so its
   ``back_first`` best full-text matches are handed over ahead of everything else. The answer it
   asks after is often long and said among near-duplicates (a plan revised five times, a run of
   short questions on one topic): the neighbours' share and the length's cost rank those first,
   and at 1k tokens the answer no longer fits behind them (LongMemEval's single-session-assistant
   at 1k, 0.800 -> 0.900; handed over first for every question, the best full-text match cost
   the questions whose facts are short user turns, ``bench/results/memory_baseline.md``).
8. Handover: at most ``max_candidates`` units and about ``candidate_tokens`` tokens of them go
   to the planner, or ``candidate_budgets`` times the policy's budget when it sets one and that
   is more (the units, and the full-text matches asked for, in proportion: ``Tuning.scale``). The
   floor (1.5 x 8k) is what the defaults were tuned with at 1k-8k; as a fixed cap it starved
   larger budgets: at 16k LoCoMo's recall filled 11,883 tokens of 16,000 and fell below BM25
   over turns on its questions with three or more evidence turns.

The defaults were measured on both development sets at 4k tokens (``bench/memory_tuning.py``;
``bench/results/memory_baseline.md``): weighted fusion beat RRF and either signal alone on
LoCoMo; neighbours added the most there (summed beat the best one). The length exponent was
first chosen on LoCoMo alone (-0.25: long turns carry more facts, 0.893 there), and that choice
did not hold on LongMemEval's histories, whose long assistant turns then crowd out the short
user turns that hold the facts (0.667 on its 120-question development split, below plain BM25
over turns). Dividing by ``cost ** 0.2`` keeps LoCoMo (0.888) and lifts LongMemEval to 0.954
(with the retrieval presets' 10 % window, ``context/plan.py``); 0.1 and 0.25 were within two
points on both, 0.5 lost five on LoCoMo. The names' factor (0.7) moved LoCoMo 0.904 -> 0.911
(multi-hop 0.729 -> 0.753; 0.6 and 0.8 gave 0.912 and 0.910) and left LongMemEval at 0.976, where
54 of the 120 questions name something (a game, a book, a brand).
"""

from __future__ import annotations

import heapq
import itertools
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

from ..context.retrieval import Recalled, render_items
from ..records import ItemRecord
from .timing import Span

Unit = tuple[tuple[str, ...], list[ItemRecord]]
"""A recall unit: its item ids (path order) and its items."""


@dataclass(frozen=True, slots=True)
class Tuning:
    """The ranking's knobs; the defaults are the measured best (see the module docstring)."""

    fusion: Literal["weighted", "rrf"] = "weighted"
    lexical_weight: float = 0.7
    rrf_k: int = 60
    neighbour: float = 0.5
    reach: int = 4
    spread: Literal["max", "sum"] = "sum"
    length_exponent: float = 0.2
    context_weight: float = 0.5
    """Weight of the previous turn's vector in the dense query, when the input leans on it."""
    unnamed: float = 0.7
    """The share of its score a unit keeps when it names none of the names the question holds."""
    out_of_time: float = 0.5
    """The share of its score a unit keeps when it was written outside the span the question's
    time expression names (``timing.when``)."""
    back_first: int = 1
    """When the question asks after an earlier exchange (``query.asks_back``: "the restaurant you
    recommended", "our previous chat"), how many of its best full-text matches (after the time
    discount) are handed over first, whatever the fusion, the neighbours and the length make of them."""
    common_directions: int | None = 3
    """Dense scores are cosines once the conversation's mean and this many top principal
    directions are removed from its vectors and the query (``dense.py``); ``None``: raw cosines."""
    lexical_limit: int = 200
    max_candidates: int = 400
    candidate_tokens: int = 12_000
    """Stop handing over candidates past this many tokens of them (the planner reads them all),
    or past ``candidate_budgets`` prompt budgets when that is more."""
    candidate_budgets: float = 1.5

    def scale(self, budget: int | None) -> float:
        """How many times its floors (``lexical_limit`` full-text matches, ``max_candidates``
        units and ``candidate_tokens`` tokens of them) recall uses for a request whose prompt may
        take ``budget`` tokens (``None``: no budget set, the floors)."""
        return max(1.0, self.candidate_budgets * budget / self.candidate_tokens) if budget else 1.0


def units(path: Sequence[ItemRecord]) -> list[Unit]:
    """The recall units of ``path`` (failed items left out; a tool item without its call is a
    unit of its own)."""
    out: list[Unit] = []
    open_calls: set[str] = set()
    for item in path:
        if item.status == "failed":
            continue
        if item.role == "tool" and out and item.tool_call_id in open_calls:
            ids, items = out[-1]
            out[-1] = ((*ids, item.id), [*items, item])
            continue
        open_calls = {call.id for call in item.tool_calls}
        out.append(((item.id,), [item]))
    return out


def unit_text(unit: Unit) -> str:
    """The text a unit is indexed and quoted under (the planner's own rendering)."""
    return render_items(unit[1])


def rank(
    units: Sequence[Unit],
    lexical: dict[str, float],
    dense: dict[str, float],
    tuning: Tuning,
    *,
    names: Sequence[str] = (),
    when: Span | None = None,
    back: bool = False,
    budget: int | None = None,
) -> list[Recalled]:
    """The units worth recalling, best first: fused, spread to neighbours, cost-weighted,
    discounted when written outside ``when`` (the span the question's time expression names) and
    when they name none of ``names`` (the question's, lower-cased); when the question asks
    ``back`` (after an earlier exchange), its ``back_first`` best full-text matches ahead of all;
    as many of them as ``Tuning.scale`` allows for a prompt ``budget``. Both rankings are
    keyed by a unit's first item id."""
    fused = fuse(lexical, dense, tuning)
    if not fused:
        return []
    scores = [fused.get(ids[0], 0.0) for ids, _ in units]
    if tuning.neighbour > 0 and tuning.reach > 0:
        scores = _spread(scores, tuning)
    costs = [_cost(items) for _, items in units]
    exponent = tuning.length_exponent
    weighted = [score / cost**exponent if score > 0 else 0.0 for score, cost in zip(scores, costs, strict=True)]
    timely = _timely(weighted, units, when) if when is not None and tuning.out_of_time < 1.0 else None
    if timely is not None:
        weighted = [w if held else w * tuning.out_of_time for w, held in zip(weighted, timely, strict=True)]
    order = sorted((n for n in range(len(units)) if scores[n] > 0), key=weighted.__getitem__, reverse=True)
    best: Iterable[tuple[int, float]] = ((n, weighted[n]) for n in order)
    if names and tuning.unnamed < 1.0:
        best = _discount_unnamed(order, weighted, units, names, tuning.unnamed)
    if back and tuning.back_first > 0 and lexical and order:
        keyed = [lexical.get(ids[0], 0.0) * (1.0 if timely is None or timely[n] else tuning.out_of_time)
                 for n, (ids, _) in enumerate(units)]  # fmt: skip
        first = heapq.nlargest(tuning.back_first, (n for n in range(len(units)) if keyed[n] > 0), keyed.__getitem__)
        best = _ahead(first, best, weighted[order[0]])
    ranked: list[Recalled] = []
    total = 0
    scale = tuning.scale(budget)
    most, tokens = round(tuning.max_candidates * scale), tuning.candidate_tokens * scale
    for n, score in itertools.islice(best, most):
        ranked.append(Recalled(item_ids=units[n][0], score=score))
        total += costs[n]
        if total > tokens:
            break
    return ranked


def _discount_unnamed(
    order: Sequence[int], weighted: Sequence[float], units: Sequence[Unit], names: Sequence[str], factor: float
) -> Iterator[tuple[int, float]]:
    """The units of ``order`` (best first by ``weighted``) with the score of those naming none of
    ``names`` (whole words, any case) times ``factor`` (< 1), best first again. Lazily: a unit's
    text is searched only once the units before it might be overtaken by it, so a recall reads
    the texts of about as many units as it hands over, not the whole history's (LongMemEval's
    ~500,000 characters took ~6 ms to search)."""
    named = re.compile(r"\b(?:" + "|".join(re.escape(name.lower()) for name in names) + r")\b")
    lowered = [name.lower() for name in names]

    def names_one(items: list[ItemRecord]) -> bool:
        for item in items:
            text = item.text.lower()
            if any(name in text for name in lowered) and named.search(text):
                return True
        return False

    waiting: list[tuple[float, int]] = []  # (-score, position): a heap of the units searched
    for n in order:
        while waiting and -waiting[0][0] >= weighted[n]:  # nothing unsearched can pass it
            score, m = heapq.heappop(waiting)
            yield m, -score
        heapq.heappush(waiting, (-(weighted[n] if names_one(units[n][1]) else weighted[n] * factor), n))
    while waiting:
        score, m = heapq.heappop(waiting)
        yield m, -score


def _ahead(first: Sequence[int], best: Iterable[tuple[int, float]], top: float) -> Iterator[tuple[int, float]]:
    """The units ``first`` ahead of ``best``'s (whose best scores ``top``), scored just above
    ``top`` in their order, then the rest of ``best``."""
    for place, n in enumerate(first):
        yield n, top * (1.0 + 0.001 * (len(first) - place))
    chosen = set(first)
    yield from ((n, score) for n, score in best if n not in chosen)


def _timely(weighted: Sequence[float], units: Sequence[Unit], when: Span) -> list[bool] | None:
    """Per unit, whether it was written in ``when``; ``None`` when no unit with a score was."""
    inside = [weighted[n] > 0 and when.holds(unit[1][0].created_at) for n, unit in enumerate(units)]
    return inside if any(inside) else None


def _spread(scores: list[float], tuning: Tuning) -> list[float]:
    """Each unit's score raised by its neighbours': the best inherited one (``max``), or all of
    them added (``sum``: a unit inside a run of hits rises above a lone hit)."""
    spread = list(scores)
    size, summed = len(scores), tuning.spread == "sum"
    factors = [(distance, tuning.neighbour**distance) for distance in range(1, tuning.reach + 1)]
    for n, score in enumerate(scores):
        if score <= 0:
            continue
        for distance, factor in factors:
            inherited = score * factor
            for m in (n - distance, n + distance):
                if 0 <= m < size:
                    if summed:
                        spread[m] += inherited
                    elif spread[m] < inherited:
                        spread[m] = inherited
    return spread


def fuse(lexical: dict[str, float], dense: dict[str, float], tuning: Tuning) -> dict[str, float]:
    """One score per id from the two rankings (an id missing from one scores 0 there)."""
    if tuning.fusion == "rrf":
        fused: dict[str, float] = {}
        for weight, ranking in ((tuning.lexical_weight, lexical), (1 - tuning.lexical_weight, dense)):
            for place, key in enumerate(sorted(ranking, key=lambda k: -ranking[k])):
                fused[key] = fused.get(key, 0.0) + weight / (tuning.rrf_k + place + 1)
        return fused
    lex, den = _normalized(lexical), _normalized(dense)
    w = tuning.lexical_weight if dense else 1.0
    if not lexical:
        w = 0.0
    return {k: w * lex.get(k, 0.0) + (1 - w) * den.get(k, 0.0) for k in lex.keys() | den.keys()}


def _normalized(scores: dict[str, float]) -> dict[str, float]:
    if not scores:
        return {}
    low, high = min(scores.values()), max(scores.values())
    span = high - low
    return {k: (v - low) / span if span > 0 else 1.0 for k, v in scores.items()}


def _cost(items: Sequence[ItemRecord]) -> int:
    """Tokens a unit costs when quoted: the stored counts, else an estimate (4 bytes a token)."""
    return sum(
        (item.token_count if item.token_count is not None else len(render_items([item]).encode()) // 4) + 4
        for item in items
    )
