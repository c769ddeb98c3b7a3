"""Build the messages of one request from a conversation's path: pure functions.

``build_messages`` is the original ``full`` policy: the system prompt, then every item of the
path in order. ``plan_context`` is the general planner: under a ``Policy`` (``policy.py``) and a
token budget it composes, in this order,

    system prompt · pinned system items + summary + recalled rounds · window rounds · new input

in named steps, each a function of its own:

1. **budget** (``budget.prompt_budget``): min(policy budget, window - reserved output);
2. **summary** (``usable_summary``): the summary, when the policy uses one and it covers a
   prefix of this path short of the new input;
3. **head** (``plan_head``): the system prompt and the pinned system items (system items before
   the first user item), the summary appended to the last of them (changed only at compaction);
4. **window** (``recent.Recent``): the newest whole rounds that fit the window's share, dropped
   in blocks (``window.advance``) so the prompt's prefix stays byte-identical for many turns;
5. **media** (``media.fit_media``): when the window does not fit, older rounds' media become
   placeholders, oldest first, before any text goes;
6. **recall** (``plan_recall``): recalled rounds (chronological) fill what the window leaves,
   at least the memory share, quoted after the summary; the summary yields its room to the best
   recalled round when that round fits only without it (``yield_summary``);
7. **report** (``build_report``): each item's fate, tokens by part, the budget.

Summary and recalled rounds are appended to the last leading system message, in that order (the
more often changed last): the planner adds no message of its own, since current chat templates
reject a system message that is not first. Everything here is deterministic for the same inputs
and does no I/O; what it remembers between turns is the caller's ``PlanCache`` (``cache.py``).

Invariants of both: reasoning is never replayed unless the policy's ``reasoning_replay`` asks
(``drop``, the default, is the Model Studio rule: only ``content`` goes back; ``tool_chain``
keeps it on the assistant items with tool calls since the last user item, the active tool-call
chain; ``keep`` on every item); failed items are skipped; an ``incomplete`` answer is replayed as far as
it got, because the user saw it. ``plan_context`` also: the system prompt first and the newest
round last, always; tool calls and their results whole (an unpaired one is left out); never over
the budget unless the newest round alone does not fit (``ContextReport.over_budget``; ``full``
never drops, so it reports the overflow instead).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

from ..records import ItemRecord
from ..settings import ReasoningReplay
from ..tokens import REPLY_PRIMER, ImageEstimate, Tokenizer
from ..types import ContextReport, Message, complement, merge_spans, spans_of
from .blocks import replayed
from .budget import prompt_budget
from .cache import PlanCache, Positions
from .media import fit_media, media_boundary
from .policy import POLICY_NAMES, PRESETS, Policy, PolicyName, preset
from .recent import Recent, Window, strain, window_budget
from .retrieval import Recalled, best_round, quote, select_recalled
from .summary import Summary, with_summary

__all__ = [
    "POLICY_NAMES",
    "PRESETS",
    "Head",
    "Policy",
    "PolicyName",
    "build_messages",
    "build_report",
    "pinned_items",
    "plan_context",
    "plan_head",
    "plan_recall",
    "preset",
    "usable_summary",
]


def build_messages(
    system_prompt: str | None,
    path: Sequence[ItemRecord],
    *,
    reasoning_replay: ReasoningReplay = "drop",
) -> tuple[list[Message], ContextReport]:
    messages: list[Message] = []
    kept: list[str] = []
    dropped: list[str] = []
    if system_prompt:
        messages.append(Message.of("system", system_prompt))
    chain = next((n for n in range(len(path) - 1, -1, -1) if path[n].role == "user"), 0)
    for n, item in enumerate(path):
        if item.status == "failed" or (item.role == "assistant" and not item.content and not item.tool_calls):
            dropped.append(item.id)
            continue
        replay = "drop" if reasoning_replay == "tool_chain" and n < chain else reasoning_replay
        message = replayed(item.to_message(), replay)
        messages.append(message)
        kept.append(item.id)
    tokens = sum(item.token_count or 0 for item in path if item.id in kept)
    position = {item.id: n for n, item in enumerate(path)}
    report = ContextReport(policy="full", items=len(path), kept=spans_of(position[i] for i in kept), tokens=tokens)
    return messages, report


# -- The steps -----------------------------------------------------------------------------------


def pinned_items(path: Sequence[ItemRecord], starts: Sequence[int]) -> list[ItemRecord]:
    """The system items of the preamble (the round before the first user item, ``starts`` as
    ``PlanCache.shape`` gives them): sent right after the system prompt, whatever the window
    drops. Failed ones are left out."""
    if not starts or path[0].role == "user":
        return []
    preamble = path[: starts[1] if len(starts) > 1 else len(path)]
    return [item for item in preamble if item.role == "system" and item.status != "failed"]


def usable_summary(
    policy: Policy, summary: Summary | None, positions: Positions, newest_start: int
) -> tuple[Summary | None, int]:
    """The summary the request uses, and the position of the last item it covers (-1: none).
    It is used when the policy uses summaries and the item it runs through is on this path
    before the newest round (``newest_start``): another branch's summary, or one that claims
    the new input, is not."""
    used = summary if policy.uses_summary and summary else None
    if used and positions.get(used.through_item_id, newest_start) >= newest_start:
        return None, -1
    return used, positions[used.through_item_id] if used else -1


@dataclass(frozen=True, slots=True)
class Head:
    """The request's leading system messages (the system prompt, the pinned system items, the
    summary appended to the last of them) and their tokens, the summary's apart."""

    messages: tuple[Message, ...]
    tokens: int
    """The system prompt's and the pinned items' tokens."""
    summary_tokens: int
    """What appending the summary added."""


def plan_head(
    system_prompt: str | None,
    pinned: Sequence[ItemRecord],
    summary: Summary | None,
    count: Callable[[Message], int],
) -> Head:
    """The head of a request (see ``Head``)."""
    head = ([Message.of("system", system_prompt)] if system_prompt else []) + [item.to_message() for item in pinned]
    tokens = sum(count(m) for m in head)
    if summary:
        head = with_summary(head, summary)
    return Head(tuple(head), tokens, sum(count(m) for m in head) - tokens)


def plan_recall(
    policy: Policy,
    recalled: Sequence[Recalled],
    head: Sequence[Message],
    *,
    window: Window,
    room: int,
    excluded: set[str],
    positions: Positions,
    count: Callable[[Message], int],
    quote: Callable[[Recalled], tuple[str, int]],
) -> tuple[list[Message], list[Recalled], int]:
    """The head with the recalled rounds that fit ``room`` quoted at its end
    (``retrieval.select_recalled``), the rounds chosen, and the tokens they added. Nothing is
    recalled unless the policy recalls and the window sends the new input; rounds with an item
    in ``excluded`` (``sent_ids``: what the window and the head send) are never recalled."""
    if not (policy.uses_recall and recalled and window.newest):
        return list(head), [], 0
    before = sum(count(m) for m in head)
    extended, chosen = select_recalled(recalled, positions, excluded, room, count, quote, list(head))
    return extended, chosen, sum(count(m) for m in extended) - before


def sent_ids(pinned: Sequence[ItemRecord], window: Window) -> set[str]:
    """The ids of the items a request sends besides recalled rounds (the pinned items and the
    window's): made once a plan, for ``plan_recall`` and ``best_recalled`` alike."""
    return {item.id for item in pinned} | {item.id for item in window.items}


def best_recalled(
    recalled: Sequence[Recalled], positions: Positions, excluded: set[str], window: Window
) -> Recalled | None:
    """The round recall would take first (``retrieval.best_round``), None when the window does
    not send the new input (nothing is recalled then)."""
    return best_round(recalled, positions, excluded) if window.newest else None


def yield_summary(
    system_prompt: str | None,
    pinned: Sequence[ItemRecord],
    count: Callable[[Message], int],
    recall: Callable[..., tuple[list[Message], list[Recalled], int]],
    room: int,
    best: Recalled,
) -> tuple[Head, tuple[list[Message], list[Recalled], int]] | None:
    """When the best recalled round (``best``) did not fit beside the summary: the head without
    the summary and the recall in the ``room`` so freed, if that recall takes ``best``; else
    None (the summary stays). ``recall`` is ``plan_recall`` with this request's arguments bound.

    Why: the summary is the same whatever the question, and ``best`` is this question's best
    evidence. At a small budget a summary of a few hundred tokens is a large share, and the round
    it crowds out is what the answer needs. The window stays as planned, so only the head and
    the recall change; what the summary covered is then reported dropped, or recalled."""
    bare = plan_head(system_prompt, pinned, None, count)
    planned = recall(bare.messages, room=room)
    return (bare, planned) if best in planned[1] else None


def build_report(
    policy: Policy,
    path: Sequence[ItemRecord],
    positions: Positions,
    *,
    budget: int,
    pinned: Sequence[ItemRecord],
    through: int,
    window: Window,
    recalled: Sequence[Recalled],
    by_part: dict[str, int],
) -> ContextReport:
    """What went in: the positions kept (pinned items, the window's rounds, the new input),
    recalled (with their scores) and summarized (up to ``through``, pinned items apart), the
    tokens by part and in all, the budget, and whether the request is over it."""
    kept = merge_spans((*spans_of(positions[item.id] for item in pinned), *window.history.kept))
    kept = merge_spans((*kept, *spans_of(positions[i] for b in window.newest for i in b.kept)))
    recalled_ids = [i for entry in recalled for i in entry.item_ids]
    tokens = sum(by_part.values())
    return ContextReport(
        policy=policy.name,
        items=len(path),
        kept=kept,
        recalled=spans_of(positions[i] for i in recalled_ids),
        summarized=complement(spans_of(positions[item.id] for item in pinned), through + 1),
        budget=budget,
        tokens=tokens,
        tokens_by_part=by_part,
        recalled_scores={positions[i]: entry.score for entry in recalled for i in entry.item_ids},
        over_budget=tokens > budget,
    )


# -- Planning ------------------------------------------------------------------------------------


def plan_context(
    system_prompt: str | None,
    path: Sequence[ItemRecord],
    *,
    policy: Policy,
    window_tokens: int,
    reserved_output: int,
    tokenizer: Tokenizer,
    summary: Summary | None = None,
    recalled: Sequence[Recalled] = (),
    overhead: int = 0,
    cache: PlanCache | None = None,
    images: ImageEstimate = "qwen-vl",
) -> tuple[list[Message], ContextReport]:
    """The messages of one request under ``policy``, and the report of what went in.

    Order: system prompt, pinned system items (system items before the first user item) with
    the summary and then the recalled rounds appended to the last of them, window rounds, the
    newest round last. The budget is
    ``min(policy.budget, window_tokens - reserved_output)``.

    Args:
        path: the conversation's items, root first; the last round is the new input.
        tokenizer: counts text; each message is counted with ``message_tokens``.
        summary: the latest summary of this path (used by ``summary`` and ``auto``; ignored
            when ``through_item_id`` is not on the path or lies in the newest round).
        recalled: candidate rounds from the retriever (used by ``retrieval`` and ``auto``);
            rounds already in the window, or not on the path, are skipped.
        overhead: prompt tokens the backend adds that the tokenizer cannot see (a chat
            template's default system prompt, another vocabulary's surplus), as measured on an
            earlier call; they are taken off the budget and reported under ``template``.
        cache: what the planner remembers between turns (``context/cache.py``; one per
            tokenizer, owned by the engine): with it a turn's cost follows its window, not the
            conversation's length. Without it a scratch one serves this call only; the result
            is the same.
        images: how the model counts an image (its alias's ``image_tokens``); a ``cache``
            must count them the same way (``PlanCache.images``).

    Returns:
        The messages, and a ``ContextReport`` whose ``over_budget`` is set when the newest
        round does not fit even alone.
    """
    memo = cache if cache is not None else PlanCache(size=4096, images=images)
    if memo.images != images:
        raise ValueError(f"the planner cache counts images as {memo.images!r}, this model as {images!r}")
    count = memo.counter(tokenizer)
    budget = prompt_budget(window_tokens, reserved_output, policy)
    starts, media_rounds = memo.shape(path)
    positions = memo.positions(path)

    pinned = pinned_items(path, starts)
    used, through = usable_summary(policy, summary, positions, starts[-1] if starts else 0)
    head = plan_head(system_prompt, pinned, used, count)
    available = budget - head.tokens - REPLY_PRIMER - overhead

    recent = Recent(
        path,
        starts,
        positions,
        through=through,
        pinned={item.id for item in pinned},
        policy=policy,
        count=count,
        cache=memo,
    )
    share = window_budget(policy, available, head.summary_tokens)
    window = fit_media(
        lambda boundary: recent.window(boundary, share),
        lambda planned: strain(planned, policy, available, head.summary_tokens),
        media_rounds,
        first=recent.first,
        boundary=media_boundary(recent.newest_round, policy.keep_images_rounds),
        newest_round=recent.newest_round,
    )

    excluded = sent_ids(pinned, window) if policy.uses_recall and recalled else set()
    recall = partial(
        plan_recall,
        policy,
        recalled,
        window=window,
        excluded=excluded,
        positions=positions,
        count=count,
        quote=partial(quote, path=path, positions=positions, tokens=tokenizer.count, cache=memo),
    )
    room = available - window.tokens
    messages, chosen, recalled_tokens = recall(head.messages, room=room - head.summary_tokens)
    best = best_recalled(recalled, positions, excluded, window) if used and policy.uses_recall else None
    if best is not None and best not in chosen:
        yielded = yield_summary(system_prompt, pinned, count, recall, room, best)
        if yielded is not None:
            (head, (messages, chosen, recalled_tokens)), through = yielded, -1
    by_part = {
        "system": head.tokens,
        "summary": head.summary_tokens,
        "recalled": recalled_tokens,
        "history": window.history.tokens,
        "input": window.input_tokens,
        "template": REPLY_PRIMER + overhead,
    }
    report = build_report(
        policy,
        path,
        positions,
        budget=budget,
        pinned=pinned,
        through=through,
        window=window,
        recalled=chosen,
        by_part=by_part,
    )
    return messages + window.messages, report
