"""Where a turn's rendered prompt first departs from the previous turn's, and which step of the
context plan made it depart: pure functions over multiturn's own rendering, for any backend.

A backend with a prefix cache (llama.cpp's KV reuse, Model Studio's context cache, vLLM's prefix
caching) reuses the longest common prefix of what it evaluated last and the new prompt. For a
turn that continues a conversation, what it evaluated last is the previous turn's prompt followed
by the previous answer. This module renders both as ChatML text (Qwen's template: what the
embedded model reads, and what an OpenAI-compatible Qwen server renders), in named segments:

    system · summary · recalled · head_end · window · input · answer

``system`` is the system prompt and pinned system items; ``summary`` and ``recalled`` are what
the planner appends to the last leading system message (``context/summary.py``,
``context/retrieval.py``); ``head_end`` closes that message; ``window`` holds the earlier rounds
sent verbatim, one segment per message; ``input`` the newest round; ``answer`` the answer the
model generated after the previous prompt (the reply's opening included). ``explain`` finds the
first differing character and names the step that caused it, in this order of precedence:

- ``summary_update``: the summary appeared, changed or went;
- ``recall_change``: the recalled rounds appeared, changed or went;
- ``system_edit``: the system prompt (or a pinned system item) changed;
- ``window_drop``: rounds the previous prompt sent verbatim are no longer sent;
- ``history_rewritten``: an earlier message is rendered differently though none was dropped
  (media replaced by a placeholder, reasoning no longer replayed);
- ``answer_rewritten``: the previous answer comes back other than it was generated (its
  reasoning is not replayed, or it was cut);
- ``model_change``: another model serves this turn, whose cache holds nothing of the previous
  one (checked first);
- ``none``: the new prompt extends the previous prompt and answer: a cache may reuse all of it.

Invariants: rendering is deterministic; a prompt extended by anything has the unextended one as
its common prefix (``cause == "none"``); the common prefix never passes either text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Literal, TypeAlias

from ..records import ItemRecord
from ..settings import ReasoningReplay
from ..tokens import Tokenizer
from ..types import AudioPart, ContextReport, ImagePart, Message, Part, TextPart, VideoPart, in_spans
from .retrieval import recalled_block
from .summary import summary_block

SegmentKind: TypeAlias = Literal["system", "summary", "recalled", "head_end", "window", "input", "answer"]
Cause: TypeAlias = Literal[
    "none",
    "model_change",
    "summary_update",
    "recall_change",
    "system_edit",
    "window_drop",
    "history_rewritten",
    "answer_rewritten",
]

EXCERPT = 60
"""Characters of each prompt shown on either side of the first difference."""

_PLACEHOLDERS = {ImagePart: "[image]", AudioPart: "[audio]", VideoPart: "[video]"}


@dataclass(frozen=True, slots=True)
class Segment:
    """A piece of a rendered prompt: what it is, its text, the path items it carries."""

    kind: SegmentKind
    text: str
    item_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PromptParts:
    """One planned request by component, as the planner assembles it (``context/plan.py``).

    ``head`` is the system prompt and the pinned system items (system messages, in order);
    ``window`` and ``newest`` are the messages sent verbatim with the id of the item each
    carries; ``answer`` is what the model generated after this prompt (``None``: not known).
    """

    head: tuple[Message, ...] = ()
    summary: str | None = None
    recalled: tuple[str, ...] = ()
    window: tuple[tuple[str, Message], ...] = ()
    newest: tuple[tuple[str, Message], ...] = ()
    answer: Message | None = None
    model: str | None = None
    policy: str | None = None


@dataclass(frozen=True, slots=True)
class PromptDiff:
    """How a prompt compares with the previous turn's prompt and answer."""

    cause: Cause
    explanation: str
    common_chars: int
    """Length of the common prefix, in characters of the rendered text."""
    common_tokens: int
    """Tokens of the common prefix: what a prefix cache could reuse at best."""
    previous_tokens: int
    """Tokens of the previous prompt and answer: what a cache holds after the previous turn."""
    current_tokens: int
    previous_segment: SegmentKind | None
    """The previous rendering's segment where they differ (``None``: it had ended)."""
    current_segment: SegmentKind | None
    previous_excerpt: str = ""
    current_excerpt: str = ""
    dropped_ids: tuple[str, ...] = ()
    """Items the previous prompt sent verbatim that this one does not."""
    policy_change: tuple[str, str] | None = None
    cached_tokens: int | None = None
    """What the backend reported reusing, when known."""
    segments: tuple[tuple[SegmentKind, int], ...] = field(default=())
    """The current prompt's segments as (kind, tokens), in order (runs of one kind merged)."""

    @property
    def breaks_prefix(self) -> bool:
        """Whether the new prompt departs from what the previous turn left in the cache."""
        return self.cause != "none"


# -- rendering -----------------------------------------------------------------------------------


def _part_text(part: Part) -> str:
    return part.text if isinstance(part, TextPart) else _PLACEHOLDERS[type(part)]


def message_body(message: Message) -> str:
    """A message's content as ChatML renders it (Qwen's template): reasoning replayed as a
    ``<think>`` block, media as placeholders, tool calls and results in their tags."""
    text = "".join(_part_text(p) for p in message.content)
    if message.reasoning is not None:
        text = f"<think>\n{message.reasoning}\n</think>\n\n{text}"
    for call in message.tool_calls:
        text += f'\n<tool_call>\n{{"name": "{call.name}", "arguments": {call.arguments}}}\n</tool_call>'
    if message.role == "tool":
        text = f"<tool_response>\n{text}\n</tool_response>"
    return text


def _open(role: str) -> str:
    return f"<|im_start|>{role}\n"


_CLOSE = "<|im_end|>\n"


def render(parts: PromptParts, *, with_answer: bool = False) -> tuple[Segment, ...]:
    """The request's ChatML text as segments; ``with_answer`` appends the reply's opening and
    the generated answer (what a prefix cache holds once the turn has ended)."""
    out: list[Segment] = []
    head = list(parts.head)
    last = head[-1] if head else None
    # join_system: memory joins the last leading system message when it is text only, else opens one
    joins = last is not None and last.role == "system" and all(isinstance(p, TextPart) for p in last.content)
    memory = bool(parts.summary) or bool(parts.recalled)
    for n, message in enumerate(head):
        text = _open(message.role) + message_body(message)
        if not (memory and joins and n == len(head) - 1):
            text += _CLOSE
        out.append(Segment("system", text))
    opened, written = joins and memory, bool(joins and last is not None and last.text)
    pieces: tuple[tuple[SegmentKind, str], ...] = (
        ("summary", summary_block(parts.summary) if parts.summary else ""),
        ("recalled", recalled_block(parts.recalled) if parts.recalled else ""),
    )
    for kind, piece in pieces:
        if not piece:
            continue
        lead = ("\n\n" if written else "") if opened else _open("system")
        out.append(Segment(kind, lead + piece))
        opened = written = True
    if opened:
        out.append(Segment("head_end", _CLOSE))
    for item_id, message in parts.window:
        out.append(Segment("window", _open(message.role) + message_body(message) + _CLOSE, (item_id,)))
    for item_id, message in parts.newest:
        out.append(Segment("input", _open(message.role) + message_body(message) + _CLOSE, (item_id,)))
    if with_answer:
        answer = parts.answer or Message("assistant")
        out.append(Segment("answer", _open("assistant") + message_body(answer) + _CLOSE))
    return tuple(out)


def text_of(segments: Sequence[Segment]) -> str:
    return "".join(s.text for s in segments)


def parts_of(
    system_prompt: str | None,
    path: Sequence[ItemRecord],
    report: ContextReport,
    *,
    summary: str | None = None,
    recalled: Sequence[tuple[tuple[str, ...], str]] = (),
    answer: Message | None = None,
    model: str | None = None,
    reasoning_replay: ReasoningReplay = "drop",
) -> PromptParts:
    """A stored turn's request rebuilt from its path and stored report: what the planner sent.

    ``path`` is the report's path (root first, the newest input last); ``summary`` the text of
    the summary its ``summarized`` positions stand for; ``recalled`` the recall units of the
    path as (item ids, quoted text), of which those whose items the report recalled are quoted
    in path order. Not rebuilt: media the planner replaced by a placeholder to fit (rendered
    as media), and a turn's own ``instructions`` in place of the system prompt.
    """
    newest_start = next((n for n in range(len(path) - 1, -1, -1) if path[n].role == "user"), 0)
    first_user = next((n for n, item in enumerate(path) if item.role == "user"), len(path))
    kept = [n for n in range(len(path)) if in_spans(report.kept, n)]
    pinned = [n for n in kept if n < first_user and path[n].role == "system"]
    head = ([Message.of("system", system_prompt)] if system_prompt else []) + [path[n].to_message() for n in pinned]
    answered = {path[n].tool_call_id for n in kept if path[n].role == "tool"}
    recalled_ids = {path[n].id for n in range(len(path)) if in_spans(report.recalled, n)}

    def sent(n: int) -> tuple[str, Message]:
        message = path[n].to_message()
        if message.tool_calls:
            message = replace(message, tool_calls=tuple(c for c in message.tool_calls if c.id in answered))
        keeps = reasoning_replay == "keep" or (
            reasoning_replay == "tool_chain" and n >= newest_start and bool(message.tool_calls)
        )
        if message.reasoning is not None and not keeps:
            message = replace(message, reasoning=None)
        return path[n].id, message

    rest = [n for n in kept if n not in pinned]
    return PromptParts(
        head=tuple(head),
        # a summary through pinned items only summarizes no position, yet is sent: its tokens say so
        summary=summary if (report.summarized or report.tokens_by_part.get("summary")) and summary else None,
        recalled=tuple(text for ids, text in recalled if ids and set(ids) <= recalled_ids and text.strip()),
        window=tuple(sent(n) for n in rest if n < newest_start),
        newest=tuple(sent(n) for n in rest if n >= newest_start),
        answer=answer,
        model=model,
        policy=report.policy,
    )


# -- comparing -----------------------------------------------------------------------------------


def common_prefix(a: str, b: str) -> int:
    """Length of the longest common prefix of ``a`` and ``b``."""
    n = min(len(a), len(b))
    if a[:n] == b[:n]:
        return n
    lo, hi = 0, n  # a[:lo] == b[:lo], a[:hi] != b[:hi]
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid
    return lo


def segment_at(segments: Sequence[Segment], offset: int) -> Segment | None:
    """The segment holding character ``offset`` of the rendered text (``None``: past its end)."""
    at = 0
    for segment in segments:
        at += len(segment.text)
        if offset < at:
            return segment
    return None


def _sent_ids(parts: PromptParts) -> list[str]:
    return [item_id for item_id, _ in (*parts.window, *parts.newest)]


def explain(
    previous: PromptParts, current: PromptParts, tokenizer: Tokenizer, *, cached_tokens: int | None = None
) -> PromptDiff:
    """Compare ``current`` with what the previous turn left in a prefix cache: ``previous``
    rendered with its answer. See the module docstring for the causes."""
    before = render(previous, with_answer=True)
    after = render(current)
    old, new = text_of(before), text_of(after)
    common = common_prefix(old, new)
    previous_segment = segment_at(before, common)
    current_segment = segment_at(after, common)
    still_sent = set(_sent_ids(current))
    dropped = tuple(i for i in _sent_ids(previous) if i not in still_sent)
    policy_change = (
        (previous.policy, current.policy)
        if previous.policy and current.policy and previous.policy != current.policy
        else None
    )
    if previous.model and current.model and previous.model != current.model:
        cause: Cause = "model_change"
    elif common >= len(old):
        cause = "none"
    else:
        cause = _cause(previous_segment, current_segment, dropped)
    common_tokens = tokenizer.count(new[:common])
    return PromptDiff(
        cause=cause,
        explanation=_explanation(cause, previous, current, current_segment, dropped, policy_change),
        common_chars=common,
        common_tokens=common_tokens,
        previous_tokens=tokenizer.count(old),
        current_tokens=tokenizer.count(new),
        previous_segment=previous_segment.kind if previous_segment else None,
        current_segment=current_segment.kind if current_segment else None,
        previous_excerpt=_excerpt(old, common),
        current_excerpt=_excerpt(new, common),
        dropped_ids=dropped,
        policy_change=policy_change,
        cached_tokens=cached_tokens,
        segments=_segment_tokens(after, tokenizer),
    )


def _cause(previous: Segment | None, current: Segment | None, dropped: tuple[str, ...]) -> Cause:
    kinds = {s.kind for s in (previous, current) if s is not None}
    if "summary" in kinds:
        return "summary_update"
    if "recalled" in kinds:
        return "recall_change"
    if "system" in kinds:
        return "system_edit"
    if kinds & {"window", "input"}:
        if previous is not None and previous.kind == "answer":
            return "answer_rewritten"
        return "window_drop" if dropped else "history_rewritten"
    if "answer" in kinds:
        return "answer_rewritten"
    return "window_drop" if dropped else "history_rewritten"  # head_end on both sides: the window


_WHAT = {
    "summary_update": "the summary after the system prompt appeared or changed (a compaction)",
    "recall_change": "the recalled rounds quoted after the system prompt changed",
    "system_edit": "the system prompt changed",
    "window_drop": "the window dropped earlier rounds",
    "history_rewritten": "an earlier message is rendered differently (media placeholders or reasoning)",
    "answer_rewritten": "the previous answer is sent back other than it was generated (reasoning not replayed)",
}


def _explanation(
    cause: Cause,
    previous: PromptParts,
    current: PromptParts,
    where: Segment | None,
    dropped: tuple[str, ...],
    policy_change: tuple[str, str] | None,
) -> str:
    lead = f"The policy changed from {policy_change[0]} to {policy_change[1]}; " if policy_change else ""
    if cause == "model_change":
        return f"{lead}another model ({current.model}, was {previous.model}) holds nothing of the previous prompt."
    if cause == "none":
        return f"{lead}the prompt extends the previous prompt and answer: a prefix cache can reuse all of it."
    text = f"{lead}the prompt first differs in the {where.kind if where else 'end'} part: {_WHAT[cause]}"
    if cause == "window_drop" and dropped:
        text += f" ({len(dropped)} item{'s' if len(dropped) != 1 else ''} no longer sent verbatim)"
    return text + "."


def _excerpt(text: str, at: int) -> str:
    start = max(0, at - EXCERPT)
    return ("…" if start else "") + text[start : at + EXCERPT] + ("…" if at + EXCERPT < len(text) else "")


def _segment_tokens(segments: Sequence[Segment], tokenizer: Tokenizer) -> tuple[tuple[SegmentKind, int], ...]:
    runs: list[tuple[SegmentKind, int]] = []
    for segment in segments:
        n = tokenizer.count(segment.text)
        if runs and runs[-1][0] == segment.kind:
            runs[-1] = (segment.kind, runs[-1][1] + n)
        else:
            runs.append((segment.kind, n))
    return tuple(runs)
