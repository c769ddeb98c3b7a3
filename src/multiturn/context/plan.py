"""Build the messages of one request from a conversation's path: pure functions.

``build_messages`` is the original ``full`` policy: the system prompt, then every item of the
path in order. ``plan_context`` is the general planner: under a ``Policy`` and a token budget it
composes, in this order,

    system prompt · pinned system items + summary + recalled rounds · window rounds · new input

where the window keeps the newest whole rounds, dropping them in blocks (``window.first_kept``)
so the prompt's prefix stays byte-identical for many turns; the summary (changed only at
compaction) stands for the rounds it covers; recalled rounds (chronological) fill what the
window leaves, at least the memory share. Summary and recalled rounds are appended to the last
leading system message, in that order (the more often changed last): the planner adds no
message of its own, since current chat templates reject a system message that is not first.
Everything here is deterministic for the same inputs and does no I/O.

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

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Literal, TypeAlias, get_args

from ..errors import InvalidInput
from ..records import ItemRecord
from ..settings import ReasoningReplay
from ..tokens import REPLY_PRIMER, Calibration, Tokenizer, message_tokens
from ..types import (
    AudioPart,
    ContextReport,
    ImagePart,
    Message,
    Part,
    TextPart,
    VideoPart,
    complement,
    merge_spans,
    spans_of,
)
from .cache import History, PlanCache, Positions
from .retrieval import Recalled, render_items, with_recalled
from .summary import Summary, with_summary
from .window import DEFAULT_LOW_WATER, WindowState, advance, check

_Count: TypeAlias = Callable[[Message], int]


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
        message = _replayed(item.to_message(), replay)
        messages.append(message)
        kept.append(item.id)
    tokens = sum(item.token_count or 0 for item in path if item.id in kept)
    position = {item.id: n for n, item in enumerate(path)}
    report = ContextReport(policy="full", items=len(path), kept=spans_of(position[i] for i in kept), tokens=tokens)
    return messages, report


# -- Policies ------------------------------------------------------------------------------------

PolicyName: TypeAlias = Literal["full", "window", "summary", "retrieval", "auto"]
POLICY_NAMES: tuple[PolicyName, ...] = get_args(PolicyName)


@dataclass(frozen=True, slots=True)
class Policy:
    """How a request's context is built from a conversation's path.

    - ``name``: ``full`` (everything, as ``build_messages``; over the window is the caller's
      context-too-long), ``window`` (newest rounds, dropped in blocks), ``summary`` (window +
      the rolling summary), ``retrieval`` (window + recalled rounds), ``auto`` (all three).
    - ``budget``: a ceiling on prompt tokens below the model's window minus the reserved output.
    - ``recent_share``: the window's share of what the system prompt leaves; the rest is the
      memory share, taken by the summary first and recalled rounds after.
    - ``low_water``: after a block drop the window holds at most this share of its budget.
    - ``max_rounds``: keep at most this many rounds besides the new input ("last N rounds").
    - ``keep_images_rounds``: media older than this many rounds becomes a placeholder
      (``[image omitted]``...); ``None`` keeps all media while they fit. Whatever this says,
      when the request would not fit its budget (the window would drop text; ``full`` would
      be over it), older media become placeholders first, oldest first, in steps of
      ``MEDIA_STEP`` rounds, before any text goes (the newest round's media never go).
    - ``media_bytes``: a ceiling on the bytes of media sent inline (``data:`` URLs) in one
      request; older media become placeholders, oldest first, until the request is under it.
    - ``reasoning_replay``: which stored reasoning is sent back: ``drop`` (none), ``tool_chain``
      (the assistant items with tool calls in the newest round, which starts at the last user
      item), ``keep`` (all; only for models that accept it).
    """

    name: PolicyName = "full"
    budget: int | None = None
    recent_share: float = 1.0
    low_water: float = DEFAULT_LOW_WATER
    max_rounds: int | None = None
    keep_images_rounds: int | None = None
    media_bytes: int | None = None
    reasoning_replay: ReasoningReplay = "drop"

    def __post_init__(self) -> None:
        checks = (
            (self.name not in POLICY_NAMES, f"unknown policy {self.name!r} (one of {', '.join(POLICY_NAMES)})"),
            (self.budget is not None and self.budget < 0, "budget must be >= 0"),
            (not 0 < self.recent_share <= 1, "recent_share must be in (0, 1]"),
            (not 0 < self.low_water <= 1, "low_water must be in (0, 1]"),
            (self.max_rounds is not None and self.max_rounds < 0, "max_rounds must be >= 0"),
            (self.keep_images_rounds is not None and self.keep_images_rounds < 1, "keep_images_rounds must be >= 1"),
            (self.media_bytes is not None and self.media_bytes < 0, "media_bytes must be >= 0"),
            (
                self.reasoning_replay not in get_args(ReasoningReplay),
                f"unknown reasoning_replay {self.reasoning_replay!r} (one of {', '.join(get_args(ReasoningReplay))})",
            ),
        )
        problems = [message for bad, message in checks if bad]
        if problems:
            raise InvalidInput(f"invalid context policy: {'; '.join(problems)}")

    @property
    def uses_summary(self) -> bool:
        return self.name in ("summary", "auto")

    @property
    def uses_recall(self) -> bool:
        return self.name in ("retrieval", "auto")


PRESETS: Mapping[str, Policy] = MappingProxyType(
    {
        # Exact and predictable for conversations that fit; fails loudly rather than forgetting.
        "full": Policy("full"),
        # All of the budget to recent rounds, dropped in blocks back to 60 % so the prefix stays
        # cached for many turns (the embedded model's measurements).
        "window": Policy("window"),
        # The summary takes what it needs right after the system prompt; the window takes the
        # rest (the summary changes only at compaction, so the window budget stays put).
        "summary": Policy("summary"),
        # 10 % to recent rounds, at least 90 % to recalled ones. Measured at 4k tokens on LoCoMo and
        # LongMemEval's development split (bench/memory_tuning.py, bench/results/memory_baseline.md):
        # with the default ranking a 10 % window kept as much evidence as 25 % on LoCoMo and more on
        # LongMemEval (whose recent turns seldom hold the answer); 40 % or 60 % lost on both. The
        # recalled neighbours of each hit carry the local context a bigger window would add.
        "retrieval": Policy("retrieval", recent_share=0.1),
        # Summary and recalled rounds share the 90 % memory share, the summary first.
        "auto": Policy("auto", recent_share=0.1),
    }
)


def preset(name: str) -> Policy:
    """The preset of that name.

    Raises:
        InvalidInput: no preset has that name.
    """
    try:
        return PRESETS[name]
    except KeyError:
        raise InvalidInput(f"unknown context policy {name!r} (one of {', '.join(PRESETS)})") from None


# -- Planning ------------------------------------------------------------------------------------

_OMITTED = {ImagePart: "[image omitted]", AudioPart: "[audio omitted]", VideoPart: "[video omitted]"}


@dataclass(frozen=True, slots=True)
class _Block:
    """One round as it would be sent: its messages, which of its items they carry, its tokens."""

    messages: tuple[Message, ...]
    kept: tuple[str, ...]
    dropped: tuple[str, ...]
    tokens: int
    arrival: int
    """Tokens of the round when it was the new input: its user message alone."""
    media_bytes: int = 0
    """Bytes of the media it sends inline (``data:`` URLs, inline audio)."""


def _omit_media(message: Message) -> Message:
    if all(isinstance(p, TextPart) for p in message.content):
        return message
    parts = tuple(p if isinstance(p, TextPart) else TextPart(_OMITTED[type(p)]) for p in message.content)
    return replace(message, content=parts)


def _replayed(message: Message, replay: ReasoningReplay) -> Message:
    """``message`` with its reasoning as ``replay`` says, for a message of the newest round
    (``tool_chain`` keeps the reasoning of an assistant message with tool calls)."""
    if message.reasoning is None or replay == "keep" or (replay == "tool_chain" and message.tool_calls):
        return message
    return replace(message, reasoning=None)


def _block(items: Sequence[ItemRecord], *, replay: ReasoningReplay, omit_media: bool, count: _Count) -> _Block:
    """A round's messages, with every tool call paired: a result without its call, or a call
    without a result in the round, is left out (an upstream rejects either). ``replay`` as for
    ``_replayed``: the caller passes ``tool_chain`` for the newest round only."""
    answered = {item.tool_call_id for item in items if item.role == "tool" and item.status != "failed"}
    called: set[str] = set()
    messages: list[Message] = []
    kept: list[str] = []
    dropped: list[str] = []
    for item in items:
        message = item.to_message()
        if message.tool_calls:
            calls = tuple(call for call in message.tool_calls if call.id in answered)
            message = replace(message, tool_calls=calls)
        if (
            item.status == "failed"
            or (item.role == "assistant" and not message.content and not message.tool_calls)
            or (item.role == "tool" and item.tool_call_id not in called)
        ):
            dropped.append(item.id)
            continue
        called.update(call.id for call in message.tool_calls)
        message = _replayed(message, replay)
        messages.append(_omit_media(message) if omit_media else message)
        kept.append(item.id)
    costs = [count(m) for m in messages]
    opened_by_user = bool(kept) and kept[0] == items[0].id and items[0].role == "user"
    arrival = costs[0] if opened_by_user else sum(costs)
    inline = sum(_inline_bytes(part) for m in messages for part in m.content)
    return _Block(tuple(messages), tuple(kept), tuple(dropped), sum(costs), arrival, inline)


def _inline_bytes(part: Part) -> int:
    """Bytes a part carries inline: a ``data:`` URL's length (its base64 text is what is sent)."""
    if isinstance(part, ImagePart):
        return len(part.url) if part.url.startswith("data:") else 0
    if isinstance(part, AudioPart):
        return len(part.data or "") + (len(part.url) if part.url and part.url.startswith("data:") else 0)
    if isinstance(part, VideoPart):
        urls = (*part.frames, *([part.url] if part.url else []))
        return sum(len(url) for url in urls if url.startswith("data:"))
    return 0


MEDIA_STEP = 2
"""Rounds whose media go together when a request does not fit: a boundary moved by one round a
turn would change the prompt's prefix every turn (no cached prefix); by two, every other turn."""
MEDIA_TRIES = 6
"""At most this many boundaries are tried a turn (each is a window computed and kept)."""


def _media_steps(rounds: Sequence[int], boundary: int, newest_round: int) -> list[int]:
    """Boundaries to try, oldest first: past each older round with media, rounded up to a step
    of ``MEDIA_STEP`` and at most the newest round (whose media always stay)."""
    steps = sorted({min(-(-(r + 1) // MEDIA_STEP) * MEDIA_STEP, newest_round) for r in rounds} - {boundary})
    steps = [b for b in steps if b > boundary]
    if len(steps) > MEDIA_TRIES:  # evenly spread, the last (every older media gone) kept
        steps = [steps[round(i * (len(steps) - 1) / (MEDIA_TRIES - 1))] for i in range(MEDIA_TRIES)]
    return steps


def _media_boundary(last_round: int, keep: int | None) -> int:
    """Rounds before this index lose their media. It moves in steps of ``keep`` rounds (every
    ``keep`` turns, not every turn, so old rounds keep their bytes between steps) and always
    leaves the newest ``keep`` rounds whole."""
    if keep is None:
        return 0
    return max(0, (last_round + 1 - keep) // keep * keep)


def _select_recalled(
    recalled: Sequence[Recalled],
    positions: Positions,
    excluded: set[str],
    room: int,
    count: _Count,
    quote: Callable[[Recalled], tuple[str, int]],
    head: list[Message],
) -> tuple[list[Message], list[Recalled]]:
    """The best-scored recalled rounds that fit ``room`` tokens, quoted in chronological order
    at the end of ``head`` (the leading system messages): the head so extended, and the rounds
    chosen. ``quote`` gives a round's quoted text and what it adds to a quotation."""
    base = sum(count(m) for m in head)
    chosen: list[tuple[Recalled, str]] = []
    taken: set[str] = set()
    used = sum(count(m) for m in with_recalled(head, ())) - base
    for entry in sorted(recalled, key=lambda r: (-r.score, min((positions.get(i, 0) for i in r.item_ids), default=0))):
        ids = set(entry.item_ids)
        if not ids or not all(i in positions for i in ids) or ids & (excluded | taken):
            continue
        text, cost = quote(entry)
        if not text.strip() or used + cost > room:
            continue
        chosen.append((entry, text))
        taken |= ids
        used += cost
    chosen.sort(key=lambda pair: min(positions[i] for i in pair[0].item_ids))
    while chosen:  # the estimate summed blocks; make sure the joined quotation fits too
        extended = with_recalled(head, [text for _, text in chosen])
        if sum(count(m) for m in extended) - base <= room:
            return extended, [entry for entry, _ in chosen]
        chosen.remove(min(chosen, key=lambda pair: pair[0].score))
    return head, []


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
    calibration: Calibration | None = None,
    overhead: int = 0,
    cache: PlanCache | None = None,
) -> tuple[list[Message], ContextReport]:
    """The messages of one request under ``policy``, and the report of what went in.

    Order: system prompt, pinned system items (system items before the first user item) with
    the summary and then the recalled rounds appended to the last of them, window rounds, the
    newest round last. The budget is
    ``min(policy.budget, window_tokens - reserved_output)``.

    Args:
        path: the conversation's items, root first; the last round is the new input.
        tokenizer: counts text; each message is counted with ``message_tokens`` and scaled by
            ``calibration``.
        summary: the latest summary of this path (used by ``summary`` and ``auto``; ignored
            when ``through_item_id`` is not on the path or lies in the newest round).
        recalled: candidate rounds from the retriever (used by ``retrieval`` and ``auto``);
            rounds already in the window, or not on the path, are skipped.
        overhead: prompt tokens the backend adds that the tokenizer cannot see (a chat
            template's default system prompt, another vocabulary's surplus), as measured on an
            earlier call; they are taken off the budget and reported under ``template``.
        cache: what the planner remembers between turns (``context/cache.py``; one per
            tokenizer): with it a turn's cost follows its window, not the conversation's
            length. The result is the same without it.

    Returns:
        The messages, and a ``ContextReport`` whose ``over_budget`` is set when the newest
        round does not fit even alone.
    """

    scale = calibration or Calibration()
    memo = cache if cache is not None else PlanCache(size=4096)

    def count(message: Message) -> int:
        n = memo.counts.get(message)
        if n is None:
            n = message_tokens(message, tokenizer)
            memo.counts.put(message, n)
        return scale.apply(n)

    budget = max(0, window_tokens - reserved_output)
    if policy.budget is not None:
        budget = min(budget, policy.budget)
    starts, media_rounds = memo.shape(path)
    positions = memo.positions(path)
    ends = [*starts[1:], len(path)]

    def round_items(index: int) -> Sequence[ItemRecord]:
        return path[starts[index] : ends[index]]

    preamble = round_items(0) if starts and path[0].role != "user" else ()
    pinned = [item for item in preamble if item.role == "system" and item.status != "failed"]
    pinned_ids = {item.id for item in pinned}

    newest_start = starts[-1] if starts else 0
    used_summary = summary if policy.uses_summary and summary else None
    if used_summary and positions.get(used_summary.through_item_id, newest_start) >= newest_start:
        used_summary = None  # another branch's summary, or one that claims the new input
    through = positions[used_summary.through_item_id] if used_summary else -1

    head = ([Message.of("system", system_prompt)] if system_prompt else []) + [item.to_message() for item in pinned]
    head_tokens = sum(count(m) for m in head)
    if used_summary:
        head = with_summary(head, used_summary)
    summary_tokens = sum(count(m) for m in head) - head_tokens

    # The rounds the window chooses from: those with an item after the summary, not pinned. They
    # are the last rounds of the path (the summary covers a prefix; pinned items open it).
    first = 0
    while first < len(starts) and not _window_items(round_items(first), starts[first], through, pinned_ids):
        first += 1

    newest_round = len(starts) - 1

    def block_at(index: int, boundary: int) -> _Block:
        items = _window_items(round_items(index), starts[index], through, pinned_ids)
        omit = index < boundary
        replay = policy.reasoning_replay
        if replay == "tool_chain" and index != newest_round:
            replay = "drop"  # only the active chain, the newest round's, keeps its reasoning
        key = ("block", tuple(i.id for i in items), replay, omit, scale.steps)
        found = memo.blocks.get(key, items)
        if isinstance(found, _Block):
            return found
        built = _block(items, replay=replay, omit_media=omit, count=count)
        memo.blocks.put(key, items, built)
        return built

    empty_quote = count(Message.of("system", ""))

    def quote(entry: Recalled) -> tuple[str, int]:
        items = [path[positions[i]] for i in entry.item_ids]
        key = ("quote", entry.item_ids, entry.text, scale.steps)
        found = memo.blocks.get(key, items)
        if isinstance(found, tuple):
            return found
        text = entry.text if entry.text is not None else render_items(items)
        cost = count(Message.of("system", text)) - empty_quote + 1  # + the "\n\n" before it
        memo.blocks.put(key, items, (text, cost))
        return text, cost

    available = budget - head_tokens - REPLY_PRIMER - overhead
    count_rounds = len(starts) - first

    def window_cut(boundary: int) -> int:
        """How many of the window's rounds go, their media omitted before ``boundary``."""
        if policy.name == "full" or count_rounds == 0:
            return 0
        memory = available - math.floor(policy.recent_share * available) if available > 0 else 0
        window_budget = available - max(summary_tokens, memory)
        check(policy.low_water, policy.max_rounds)

        def step(state: WindowState, index: int) -> WindowState:
            block = block_at(first + index, boundary)
            arriving = block.tokens if index == count_rounds - 1 else block.arrival
            return advance(
                state,
                arriving,
                lambda i: block_at(first + i, boundary).tokens,
                window_budget,
                low_water=policy.low_water,
                max_rounds=policy.max_rounds,
            )

        key = (window_budget, policy.low_water, policy.max_rounds, through, first, boundary, policy.reasoning_replay)
        last_item: Callable[[int], ItemRecord] = lambda index: path[ends[first + index] - 1]  # noqa: E731
        return memo.window((*key, scale.steps), count_rounds, last_item, step).cut

    def plan_window(boundary: int) -> tuple[int, History[_Block], list[_Block]]:
        """The window with media omitted before ``boundary``: its cut, its complete rounds
        (assembled once per chain and extended turn by turn: a whole-history window costs a turn
        its new rounds, not the conversation), and the newest round."""
        cut = window_cut(boundary)
        history = memo.history(
            (through, boundary, policy.reasoning_replay == "keep", scale.steps),
            first + cut,
            first + max(cut, count_rounds - 1),
            lambda index: path[ends[index] - 1],
            lambda index: block_at(index, boundary),
            positions,
        )
        newest = [block_at(first + count_rounds - 1, boundary)] if cut < count_rounds else []
        return cut, history, newest

    def strain(planned: tuple[int, History[_Block], list[_Block]]) -> tuple[int, int, int]:
        """How far a window is from fitting: rounds dropped, tokens over the budget (``full``),
        inline media bytes over ``media_bytes`` (smaller is better, in that order of weight)."""
        cut, history, newest = planned
        tokens = history.tokens + sum(b.tokens for b in newest)
        over = max(0, tokens + summary_tokens - available) if policy.name == "full" else 0
        inline = sum(b.media_bytes for b in (*history.blocks, *newest)) if policy.media_bytes is not None else 0
        return cut, over, max(0, inline - policy.media_bytes) if policy.media_bytes is not None else 0

    boundary = _media_boundary(newest_round, policy.keep_images_rounds)
    planned = plan_window(boundary)
    # Media of the rounds the window chooses from, the newest round's apart (it keeps them).
    older_media = [r for r in media_rounds if max(first, boundary) <= r < newest_round]
    best = strain(planned) if older_media else (0, 0, 0)
    if any(best):
        # Media go before text: omit them from the oldest rounds on, in steps, until it fits.
        for candidate in _media_steps(older_media, boundary, newest_round):
            tried = plan_window(candidate)
            cost = strain(tried)
            if cost < best:
                boundary, planned, best = candidate, tried, cost
            if not any(best):
                break
    _, history, newest = planned
    history_tokens = history.tokens
    input_tokens = newest[0].tokens if newest else 0
    kept_at = merge_spans((*spans_of(positions[item.id] for item in pinned), *history.kept))
    kept_at = merge_spans((*kept_at, *spans_of(positions[i] for b in newest for i in b.kept)))

    recalled_tokens = 0
    recalled_entries: list[Recalled] = []
    if policy.uses_recall and recalled and newest:
        sent = history.blocks + newest
        room = available - summary_tokens - history_tokens - input_tokens
        excluded = {item.id for item in pinned} | {i for b in sent for i in (*b.kept, *b.dropped)}
        before = sum(count(m) for m in head)
        head, recalled_entries = _select_recalled(recalled, positions, excluded, room, count, quote, head)
        recalled_tokens = sum(count(m) for m in head) - before
    recalled_ids = [i for entry in recalled_entries for i in entry.item_ids]

    messages = head + history.messages + [m for b in newest for m in b.messages]
    by_part = {
        "system": head_tokens,
        "summary": summary_tokens,
        "recalled": recalled_tokens,
        "history": history_tokens,
        "input": input_tokens,
        "template": REPLY_PRIMER + overhead,
    }
    tokens = sum(by_part.values())
    pinned_at = {positions[item.id] for item in pinned}
    report = ContextReport(
        policy=policy.name,
        items=len(path),
        kept=kept_at,
        recalled=spans_of(positions[i] for i in recalled_ids),
        summarized=complement(spans_of(pinned_at), through + 1),
        budget=budget,
        tokens=tokens,
        tokens_by_part=by_part,
        recalled_scores={positions[i]: entry.score for entry in recalled_entries for i in entry.item_ids},
        over_budget=tokens > budget,
    )
    return messages, report


def _window_items(items: Sequence[ItemRecord], start: int, through: int, pinned: set[str]) -> list[ItemRecord]:
    """The items of a round the window may send: after the summary, not pinned."""
    return [item for n, item in enumerate(items) if start + n > through and item.id not in pinned]
