"""Re-plan stored turns under another policy or budget, without calling a model.

``replan_turn`` takes one stored answer and plans the request its turn would send under a
policy and a budget: the messages, the ``ContextReport`` (every item's fate), the tokens, the
cached share a prefix cache would give, what it would cost, and which of the items the stored
turn had in its context the new plan loses. ``replay`` does that for every answer of a
conversation's current branch, under each policy and budget asked for (``multiturn replay``).

Nothing is generated and nothing is stored: planning goes through the engine
(``Engine.plan_turn``) with its memory — the summaries already stored (none is made here, so a
policy with a summary uses the one the conversation has, if any) and recall over the
conversation's index (whose missing rounds are indexed, as any recalling turn does). A Responses
turn asked with ``instructions`` is planned with them in place of the conversation's system
prompt, as it was. Plans use a planner cache of their own, so a replay does not evict the live
turns' entries.

Definitions:

- **tokens**: the planner's count of the request (``ContextReport.tokens``, Qwen's vocabulary),
  the same measure for every policy; the stored turn's backend count is in its ``Usage``.
- **cached tokens** (prefix simulation): the tokens this request shares, from its start, with
  the request of the previous answer on the path planned the same way (``shared_prefix``):
  whole messages that are equal, then the common start of the first one that differs. A backend
  that reuses its KV prefix (llama.cpp) or a provider's prefix cache hits at most that much;
  Model Studio's implicit cache needs 256 shared tokens and may hit less.
- **cost**: the planned request at the model's price (``multiturn.pricing``), its cached tokens
  at the cached rate, and the stored answer's completion (and reasoning) tokens as output: the
  same answer, sent with another context.
- **evidence**: the items the stored turn sent (kept verbatim or recalled). The new plan
  **drops** one when it neither keeps nor recalls it (it is summarized or left out); it
  **gains** an item it sends that the stored turn did not. A turn "lost evidence" when it drops
  any. The newest input is always sent, so it is never in either list.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from ..context.cache import PlanCache
from ..errors import InvalidInput
from ..pricing import with_cost
from ..records import ConversationRecord, ItemRecord
from ..tokens import MESSAGE_OVERHEAD, Tokenizer, message_tokens
from ..types import COST_DIGITS, ContextReport, Cost, Fate, GenerationParams, Message, TextPart, Usage
from .core import Engine

SENT: tuple[Fate, ...] = ("kept", "recalled")
"""The fates of items whose text the model sees."""


@dataclass(frozen=True, slots=True)
class Plan:
    """A stored turn's request planned under one policy and budget."""

    policy: str
    budget: int | None
    """The budget asked for (``None``: the policy's own, under the model's window)."""
    report: ContextReport
    messages: tuple[Message, ...]
    cached_tokens: int
    """Shared with the previous answer's request planned the same way (0 for the first)."""
    cost: Cost | None
    """``None`` when the model has no known price."""

    @property
    def tokens(self) -> int:
        return self.report.tokens

    @property
    def cached_share(self) -> float:
        return self.cached_tokens / self.tokens if self.tokens else 0.0


@dataclass(frozen=True, slots=True)
class Evidence:
    """What the plan does with the items the stored turn sent (see the module docstring)."""

    sent: tuple[str, ...]
    """Item ids the stored turn kept or recalled, in path order."""
    dropped: tuple[str, ...]
    """Of those, the ones the plan neither keeps nor recalls."""
    gained: tuple[str, ...]
    """Item ids the plan keeps or recalls that the stored turn did not."""


@dataclass(frozen=True, slots=True)
class TurnReplay:
    """One stored answer and its request re-planned.

    ``path`` is the request's path (item ids, root first, the turn's input last): the positions
    of both reports. ``stored`` is the report recorded with the answer (``None`` if it has none
    for that path); ``evidence`` is ``None`` then too.
    """

    conversation_id: str
    item_id: str
    """The stored answer."""
    index: int
    """Its turn's number on the branch (1-based: the n-th answer)."""
    model: str
    path: tuple[str, ...]
    stored: ContextReport | None
    stored_usage: Usage | None
    plan: Plan
    evidence: Evidence | None

    @property
    def fates(self) -> dict[str, Fate]:
        """Each item of the path with its fate in the plan."""
        return self.plan.report.fates(self.path)

    @property
    def stored_fates(self) -> dict[str, Fate] | None:
        """Each item of the path with its fate in the stored turn (``None``: no stored report)."""
        return self.stored.fates(self.path) if self.stored is not None else None


async def replan_turn(
    engine: Engine,
    conversation_id: str,
    item_id: str,
    *,
    policy: str | None = None,
    budget: int | None = None,
    max_tokens: int | None = None,
) -> TurnReplay:
    """Re-plan the request that produced the stored answer ``item_id``; no model is called.

    Args:
        engine: the engine (tenant-scoped: ``engine.for_tenant``) whose store holds the turn.
        conversation_id: the answer's conversation.
        item_id: an assistant item of it (any branch).
        policy: a preset name (``full``, ``window``, ``summary``, ``retrieval``, ``auto``);
            ``None``: the one a turn would use now (the conversation's, the model's, the default).
        budget: a ceiling on prompt tokens (``None``: the policy's own, under the window).
        max_tokens: the answer length the turn reserves (``None``: the model's longest answer,
            at most half its window).

    Returns:
        The stored report and usage beside the plan (its report, messages, simulated cached
        tokens, cost) and the evidence it drops or gains.

    Raises:
        NotFound: no such conversation, or no such item in it.
        InvalidInput: the item is not an answer, the policy is unknown, the budget is below 1.
        ModelNotFound: the answer's model is no longer served.
    """
    conversation = await engine.get(conversation_id)
    answer = await engine.item(conversation_id, item_id)
    replayer = _Replayer(engine, max_tokens, await engine.answer_instructions(conversation_id))
    if answer.role != "assistant":
        raise InvalidInput(f"item {item_id!r} is a {answer.role} item, not an answer: only answers can be re-planned")
    _check_budget(budget)
    path = await engine.path(conversation_id, answer.parent_id)
    previous = _previous_answer(path)
    before = (
        await replayer.plan(conversation, path[:previous], path[previous], policy, budget)
        if previous is not None
        else None
    )
    planned = await replayer.plan(conversation, path, answer, policy, budget)
    return replayer.turn(conversation, path, answer, planned, before, index=_answers(path) + 1)


def _check_budget(budget: int | None) -> None:
    if budget is not None and budget < 1:
        raise InvalidInput(f"a budget must be a positive number of tokens, not {budget}")


def _previous_answer(path: Sequence[ItemRecord]) -> int | None:
    """The position of the last answer on ``path`` (its request is the path before it)."""
    return next((n for n in range(len(path) - 1, -1, -1) if path[n].role == "assistant"), None)


def _answers(path: Sequence[ItemRecord]) -> int:
    return sum(1 for item in path if item.role == "assistant")


@dataclass(frozen=True, slots=True)
class _Planned:
    messages: tuple[Message, ...]
    report: ContextReport
    policy: str
    budget: int | None


class _Replayer:
    """Plans requests on an engine copy with a planner cache of its own."""

    def __init__(self, engine: Engine, max_tokens: int | None, instructions: Mapping[str, str]) -> None:
        planner = copy.copy(engine)
        planner.plan_cache = PlanCache(size=4096)
        self.engine = planner
        self.params = GenerationParams(max_tokens=max_tokens)
        self.instructions = instructions
        """A Responses turn's own instructions by its answer's id: its system prompt."""

    async def plan(
        self,
        conversation: ConversationRecord,
        path: Sequence[ItemRecord],
        answer: ItemRecord,
        policy: str | None,
        budget: int | None,
    ) -> _Planned:
        if answer.id in self.instructions:
            conversation = replace(conversation, system_prompt=self.instructions[answer.id])
        model, backend = self.engine.backend_for(conversation, answer.model)
        chosen = self.engine.policy(conversation, model, policy)
        if budget is not None:
            chosen = replace(chosen, budget=budget)
        messages, report = await self.engine.plan_turn(conversation, path, backend, self.params, chosen, compact=False)
        return _Planned(tuple(messages), report, chosen.name, budget)

    def turn(
        self,
        conversation: ConversationRecord,
        path: Sequence[ItemRecord],
        answer: ItemRecord,
        planned: _Planned,
        before: _Planned | None,
        *,
        index: int,
    ) -> TurnReplay:
        engine = self.engine
        model = answer.model or conversation.model or engine.default_model
        cached = shared_prefix(before.messages, planned.messages, engine.tokenizer) if before is not None else 0
        used = answer.usage or Usage()
        usage = Usage(
            prompt_tokens=planned.report.tokens,
            completion_tokens=used.completion_tokens,
            cached_tokens=min(cached, planned.report.tokens),
            reasoning_tokens=used.reasoning_tokens,
        )
        cost = with_cost(usage, engine.price(model)).cost
        ids = tuple(item.id for item in path)
        stored = _stored_report(answer, len(ids))
        return TurnReplay(
            conversation_id=conversation.id,
            item_id=answer.id,
            index=index,
            model=model,
            path=ids,
            stored=stored,
            stored_usage=answer.usage,
            plan=Plan(planned.policy, planned.budget, planned.report, planned.messages, usage.cached_tokens, cost),
            evidence=evidence(stored, planned.report, ids) if stored is not None else None,
        )


def _stored_report(answer: ItemRecord, items: int) -> ContextReport | None:
    """The answer's stored report, when it speaks of this path (a report of an older shape, or
    of a path an erasure has since changed, is not comparable)."""
    report = answer.context_report
    if report is None or not report.planned or report.items != items:
        return None
    return report


def evidence(stored: ContextReport, planned: ContextReport, path: Sequence[str]) -> Evidence:
    """What ``planned`` does with the items ``stored`` sent (kept or recalled), both over ``path``."""
    was = stored.fates(path)
    now = planned.fates(path)
    sent = tuple(item for item in path if was[item] in SENT)
    return Evidence(
        sent=sent,
        dropped=tuple(item for item in sent if now[item] not in SENT),
        gained=tuple(item for item in path if now[item] in SENT and was[item] not in SENT),
    )


def shared_prefix(before: Sequence[Message], after: Sequence[Message], tokenizer: Tokenizer) -> int:
    """Tokens ``after`` shares with ``before`` from its start: each leading message that is
    equal whole, then, in the first that differs (same role, text first), its header and the
    common start of its text less one token (the token at the cut may be spelled differently)."""
    shared = 0
    for old, new in zip(before, after, strict=False):
        if old == new:
            shared += message_tokens(new, tokenizer)
            continue
        if old.role == new.role and old.content and new.content:
            first_old, first_new = old.content[0], new.content[0]
            if isinstance(first_old, TextPart) and isinstance(first_new, TextPart):
                common = _common_start(first_old.text, first_new.text)
                header = MESSAGE_OVERHEAD // 2 + tokenizer.count(new.role)
                shared += header + max(tokenizer.count(common) - 1, 0) if common else header
        break
    return shared


def _common_start(a: str, b: str) -> str:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return a[:n]


ReplayProgress = Callable[[int, int], None]
"""Called with (turns planned, turns to plan) as a replay goes."""


@dataclass(frozen=True, slots=True)
class Replay:
    """Every answer of a conversation's branch re-planned under each (policy, budget)."""

    conversation_id: str
    runs: tuple[tuple[str, int | None, tuple[TurnReplay, ...]], ...]
    """(policy, budget, one ``TurnReplay`` per answer in order), in the order asked."""


async def replay(
    engine: Engine,
    conversation_id: str,
    policies: Sequence[str],
    budgets: Sequence[int | None] = (None,),
    *,
    max_tokens: int | None = None,
    on_turn: ReplayProgress | None = None,
) -> Replay:
    """Re-plan every answer on the conversation's current branch under each policy and budget
    (every pair), without calling a model.

    Raises:
        NotFound: no such conversation.
        InvalidInput: an unknown policy, a budget below 1, no policy or budget, a pair twice.
    """
    if not policies or not budgets:
        raise InvalidInput("replay needs at least one policy and one budget")
    for budget in budgets:
        _check_budget(budget)
    pairs = [(policy, budget) for policy in policies for budget in budgets]
    if len(set(pairs)) != len(pairs):
        raise InvalidInput("a policy or a budget is listed twice")
    conversation = await engine.get(conversation_id)
    model = conversation.model or engine.default_model
    for policy in policies:
        engine.policy(conversation, model, policy)  # an unknown name fails here, before any planning
    path = await engine.history(conversation_id)
    instructions = await engine.answer_instructions(conversation_id)
    answers = [n for n, item in enumerate(path) if item.role == "assistant"]
    total, done = len(answers) * len(pairs), 0
    runs = []
    for policy, budget in pairs:
        replayer = _Replayer(engine, max_tokens, instructions)
        turns: list[TurnReplay] = []
        before: _Planned | None = None
        for index, at in enumerate(answers, start=1):
            request = path[:at]
            planned = await replayer.plan(conversation, request, path[at], policy, budget)
            turns.append(replayer.turn(conversation, request, path[at], planned, before, index=index))
            before = planned
            done += 1
            if on_turn is not None:
                on_turn(done, total)
        runs.append((policy, budget, tuple(turns)))
    return Replay(conversation_id, tuple(runs))


@dataclass(frozen=True, slots=True)
class Totals:
    """One run of a replay (or the stored turns) summed: what the table shows."""

    turns: int
    tokens: int
    """Planned tokens, summed (the stored turns: their reports' counts)."""
    cached_share: float | None
    """Cached tokens over prompt tokens (plans: simulated; the stored turns: the backend's count)."""
    cost: float | None
    """Summed; ``None`` when a turn has no known price."""
    currency: str | None
    lost: tuple[int, ...] = ()
    """The turns (1-based) whose plan drops evidence the stored turn had sent."""
    dropped: int = 0
    """Evidence items dropped, over all turns."""
    over_budget: tuple[int, ...] = ()
    """The turns whose newest round alone does not fit (the turn would be refused)."""


def totals(turns: Sequence[TurnReplay]) -> Totals:
    """A run's plans summed."""
    tokens = sum(turn.plan.tokens for turn in turns)
    cached = sum(turn.plan.cached_tokens for turn in turns)
    cost, currency = _sum_costs([turn.plan.cost for turn in turns])
    return Totals(
        turns=len(turns),
        tokens=tokens,
        cached_share=cached / tokens if tokens else None,
        cost=cost,
        currency=currency,
        lost=tuple(turn.index for turn in turns if turn.evidence is not None and turn.evidence.dropped),
        dropped=sum(len(turn.evidence.dropped) for turn in turns if turn.evidence is not None),
        over_budget=tuple(turn.index for turn in turns if turn.plan.report.over_budget),
    )


def stored_totals(turns: Sequence[TurnReplay]) -> Totals:
    """What the stored turns did, as they were answered (their reports and usage)."""
    usages = [turn.stored_usage for turn in turns if turn.stored_usage is not None]
    prompt = sum(usage.prompt_tokens for usage in usages)
    cost, currency = _sum_costs([usage.cost for usage in usages] if len(usages) == len(turns) else [None])
    return Totals(
        turns=len(turns),
        tokens=sum(turn.stored.tokens for turn in turns if turn.stored is not None),
        cached_share=sum(usage.cached_tokens for usage in usages) / prompt if prompt else None,
        cost=cost,
        currency=currency,
    )


def _sum_costs(costs: Sequence[Cost | None]) -> tuple[float | None, str | None]:
    known = [cost for cost in costs if cost is not None]
    if len(known) != len(costs) or not known:
        return None, None
    paid = {cost.currency for cost in known if cost.total}
    if len(paid) > 1:
        return None, None
    return round(sum(cost.total for cost in known), COST_DIGITS), (paid.pop() if paid else known[0].currency)


__all__ = [
    "Evidence",
    "Plan",
    "Replay",
    "ReplayProgress",
    "Totals",
    "TurnReplay",
    "evidence",
    "replan_turn",
    "replay",
    "shared_prefix",
    "stored_totals",
    "totals",
]
