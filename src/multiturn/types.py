"""Canonical value types: what a conversation is made of, independent of any wire format.

Every type here is a frozen dataclass and carries no identity: ids, parents, tenants and
statuses belong to store rows (see ``multiturn.store``). Wire formats (OpenAI chat, DashScope,
Responses) translate to and from these types at the edges; nothing inside the engine sees JSON.

Invariants:
- A ``Message`` holds content parts; reasoning is kept apart in ``Message.reasoning`` and is
  never part of ``content``, so it cannot leak into a replayed history by accident.
- ``Usage.cached_tokens`` counts prompt tokens the backend did not have to evaluate again
  (the reused KV prefix for the embedded model; ``prompt_tokens_details.cached_tokens`` upstream).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

Role: TypeAlias = Literal["system", "user", "assistant", "tool"]
Status: TypeAlias = Literal["completed", "incomplete", "failed"]
FinishReason: TypeAlias = Literal["stop", "length", "tool_calls", "content_filter", "cancelled", "error"]
Fate: TypeAlias = Literal["kept", "recalled", "summarized", "dropped"]
"""What a request did with one item of its conversation (``ContextReport.fates``)."""

ROLES: tuple[Role, ...] = ("system", "user", "assistant", "tool")


@dataclass(frozen=True, slots=True)
class TextPart:
    text: str
    type: Literal["text"] = "text"


@dataclass(frozen=True, slots=True)
class ImagePart:
    """An image by URL: ``https://...`` or a ``data:`` URL. The gateway never fetches it."""

    url: str
    detail: str | None = None
    type: Literal["image"] = "image"


@dataclass(frozen=True, slots=True)
class AudioPart:
    """Audio by URL, or inline base64 ``data`` with its ``format`` (``wav``, ``mp3``...)."""

    url: str | None = None
    data: str | None = None
    format: str | None = None
    type: Literal["audio"] = "audio"


@dataclass(frozen=True, slots=True)
class VideoPart:
    """A video file URL, or a list of frame image URLs."""

    url: str | None = None
    frames: tuple[str, ...] = ()
    type: Literal["video"] = "video"


Part: TypeAlias = TextPart | ImagePart | AudioPart | VideoPart


@dataclass(frozen=True, slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str
    type: Literal["function"] = "function"


@dataclass(frozen=True, slots=True)
class Message:
    """One message of a request: role, content parts, and the optional extras of its role."""

    role: Role
    content: tuple[Part, ...] = ()
    reasoning: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    name: str | None = None
    _sent: Any = field(default=None, init=False, repr=False, compare=False)
    """Not a value of the message: its JSON as the upstream translation encoded it, kept for as
    long as the message lives once it is sent a second time (``protocols/openai_chat/translate.py``
    ``encode_request``). A stored conversation's planner hands every turn the same message
    objects for its history, so each is encoded about once; ``dataclasses.replace`` makes a
    message without it."""

    @property
    def text(self) -> str:
        """The concatenated text parts (non-text parts are skipped)."""
        return "".join(p.text for p in self.content if isinstance(p, TextPart))

    @classmethod
    def of(cls, role: Role, text: str) -> Message:
        return cls(role=role, content=(TextPart(text),))


@dataclass(frozen=True, slots=True)
class Cost:
    """What a turn cost under its model's price table (``multiturn.pricing``), in ``currency``.

    ``input`` is the uncached prompt tokens, ``cached_input`` the prompt tokens served from a
    cache (billed at the discounted rate), ``output`` the completion tokens, reasoning included.
    ``conversation`` is the conversation's total through this turn: the cost of every answer on
    its path (its branch), this one included; ``None`` outside a stored conversation, or when
    the path mixes currencies.
    """

    currency: str
    input: float = 0.0
    cached_input: float = 0.0
    output: float = 0.0
    conversation: float | None = None

    @property
    def total(self) -> float:
        return round(self.input + self.cached_input + self.output, COST_DIGITS)


COST_DIGITS = 10
"""Costs are rounded to this many decimal places (a ten-billionth of the currency unit), so sums
of float prices do not show binary noise."""


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    cost: Cost | None = None
    """What these tokens cost (set by the engine from the model's price; ``None``: no price known)."""

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A piece of a streamed tool call. ``id`` and ``name`` come once, in the first piece of
    their ``index``; ``arguments`` pieces concatenate."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@dataclass(frozen=True, slots=True)
class Delta:
    """One step of a streamed generation.

    Text deltas carry ``content`` and/or ``reasoning``; the final delta of a stream carries
    ``finish_reason`` and ``usage`` (its text fields may be empty).
    """

    content: str = ""
    reasoning: str = ""
    tool_calls: tuple[ToolCallDelta, ...] = ()
    finish_reason: FinishReason | None = None
    usage: Usage | None = None


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A function the model may call: name, description and JSON-schema parameters.

    ``strict``: the arguments must match ``parameters`` exactly (OpenAI's ``strict``; ``None``:
    not said, which chat completions reads as false)."""

    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


@dataclass(frozen=True, slots=True)
class GenerationParams:
    """Sampling and length controls passed to a backend; ``None`` means the backend default."""

    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    seed: int | None = None
    stop: tuple[str, ...] = ()
    repetition_penalty: float | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    enable_thinking: bool | None = None
    thinking_budget: int | None = None
    n: int | None = None
    tools: tuple[ToolSpec, ...] = ()
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    response_format: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    """Backend-specific fields passed through to an upstream as they came (``enable_search``...)."""


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """A stateless request in canonical form: what a wire protocol's request means."""

    model: str
    messages: tuple[Message, ...]
    params: GenerationParams = field(default_factory=lambda: GenerationParams())


@dataclass(frozen=True, slots=True)
class Completion:
    """A whole answer, accumulated from its deltas (see ``accumulate``)."""

    content: str = ""
    reasoning: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    finish_reason: FinishReason | None = None
    usage: Usage = field(default_factory=lambda: Usage())


@dataclass(frozen=True, slots=True)
class ContextReport:
    """What the context builder did for one request, item by item, by position in the
    request's path (root first, the newest input last; a Responses object's input items in
    ascending order are that path).

    Every position has one fate: ``kept`` (sent verbatim), ``recalled`` (quoted from earlier),
    ``summarized`` (stood for by the summary) or dropped (none of those). Positions are written
    as runs (``Spans``), so a report stays a few numbers long however long the conversation is;
    ``fates`` names every item's fate from the path's ids.

    ``tokens_by_part`` splits ``tokens`` into ``system`` (prompt and pinned system items),
    ``summary``, ``recalled``, ``history`` (the window's earlier rounds), ``input`` (the newest
    round) and ``template`` (the reply's opening); ``recalled_scores`` maps each recalled
    position to its round's retrieval score; ``over_budget`` is set when even the newest round
    alone does not fit (the caller reports context-too-long); ``error`` says why the turn it
    planned failed, when it did.

    A turn closed before it was planned (its process died) has a report that holds only its
    ``error`` (``unplanned``): ``policy`` is empty and it names no item.
    """

    policy: str
    items: int = 0
    """How many items the request's path holds."""
    kept: Spans = ()
    recalled: Spans = ()
    summarized: Spans = ()
    budget: int | None = None
    tokens: int = 0
    tokens_by_part: dict[str, int] = field(default_factory=dict)
    recalled_scores: dict[int, float] = field(default_factory=dict)
    over_budget: bool = False
    error: str | None = None

    @classmethod
    def unplanned(cls, error: str) -> ContextReport:
        """The report of a turn that ended before its context was planned."""
        return cls(policy="", error=error)

    @property
    def planned(self) -> bool:
        """Whether a context was planned (``False``: only ``error`` is known)."""
        return bool(self.policy)

    def fate(self, position: int) -> Fate:
        if in_spans(self.kept, position):
            return "kept"
        if in_spans(self.recalled, position):
            return "recalled"
        if in_spans(self.summarized, position):
            return "summarized"
        return "dropped"

    def fates(self, ids: Sequence[str]) -> dict[str, Fate]:
        """Each id of the request's path (in order) with its fate."""
        return {item_id: self.fate(n) for n, item_id in enumerate(ids)}

    @property
    def dropped(self) -> Spans:
        """The positions that went in no way."""
        return complement(merge_spans((*self.kept, *self.recalled, *self.summarized)), self.items)

    def count(self, fate: Fate) -> int:
        """How many items had ``fate``."""
        own = {"kept": self.kept, "recalled": self.recalled, "summarized": self.summarized}
        if fate == "dropped":
            return span_count(self.dropped)
        if fate == "summarized":  # an item the summary covers may be recalled too: it counts as recalled
            return span_count(self.summarized) - span_count(intersect(self.summarized, self.recalled))
        return span_count(own[fate])


Spans: TypeAlias = tuple[tuple[int, int], ...]
"""Positions as inclusive runs ``(first, last)``, sorted, not touching (``spans_of``)."""


def spans_of(positions: Iterable[int]) -> Spans:
    """The runs of a set of positions."""
    runs: list[tuple[int, int]] = []
    for n in sorted(set(positions)):
        if runs and n == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], n)
        else:
            runs.append((n, n))
    return tuple(runs)


def merge_spans(spans: Iterable[tuple[int, int]]) -> Spans:
    runs: list[tuple[int, int]] = []
    for first, last in sorted(spans):
        if runs and first <= runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], max(runs[-1][1], last))
        else:
            runs.append((first, last))
    return tuple(runs)


def complement(spans: Spans, length: int) -> Spans:
    """The positions in ``[0, length)`` outside ``spans``."""
    out: list[tuple[int, int]] = []
    at = 0
    for first, last in spans:
        if first > at:
            out.append((at, min(first, length) - 1))
        at = max(at, last + 1)
    if at < length:
        out.append((at, length - 1))
    return tuple((a, b) for a, b in out if a <= b)


def intersect(a: Spans, b: Spans) -> Spans:
    out: list[tuple[int, int]] = []
    for first, last in a:
        for other_first, other_last in b:
            lo, hi = max(first, other_first), min(last, other_last)
            if lo <= hi:
                out.append((lo, hi))
    return merge_spans(out)


def in_spans(spans: Spans, position: int) -> bool:
    return any(first <= position <= last for first, last in spans)


def span_count(spans: Spans) -> int:
    return sum(last - first + 1 for first, last in spans)


def spans_text(spans: Spans) -> str:
    """``0,3-40``: the runs as text (the wire's and the store's form)."""
    return ",".join(str(first) if first == last else f"{first}-{last}" for first, last in spans)


def parse_spans(text: str) -> Spans:
    """The inverse of ``spans_text``. Raises ValueError on anything else."""
    runs: list[tuple[int, int]] = []
    for piece in filter(None, text.split(",")):
        first, _, last = piece.partition("-")
        runs.append((int(first), int(last or first)))
    if any(a > b for a, b in runs) or list(runs) != list(merge_spans(runs)):
        raise ValueError(f"not sorted, disjoint runs of positions: {text!r}")
    return tuple(runs)


@dataclass(frozen=True, slots=True)
class Reply:
    """The outcome of one turn: the stored assistant item and what it said.

    ``context_report`` is what its request contained (stored with the answer); ``usage.cost``
    (also ``cost``) what it cost under the model's price, with the conversation's total so far.
    """

    conversation_id: str
    item_id: str
    user_item_id: str | None
    content: str
    reasoning: str
    status: Status
    finish_reason: FinishReason | None
    usage: Usage
    model: str
    tool_calls: tuple[ToolCall, ...] = field(default=())
    context_report: ContextReport | None = None

    @property
    def cost(self) -> Cost | None:
        """What the turn cost (``None``: the model has no known price, or nothing was counted)."""
        return self.usage.cost


def text_parts(content: str | Sequence[Part]) -> tuple[Part, ...]:
    """Normalize user input (a string or parts) into a tuple of parts."""
    if isinstance(content, str):
        return (TextPart(content),)
    return tuple(content)


class Accumulator:
    """Folds a stream of deltas into a ``Completion`` (tool-call pieces joined by index)."""

    def __init__(self) -> None:
        self.content: list[str] = []
        self.reasoning: list[str] = []
        self._calls: dict[int, list[str]] = {}
        self._ids: dict[int, str] = {}
        self._names: dict[int, str] = {}
        self.finish_reason: FinishReason | None = None
        self.usage: Usage | None = None

    def add(self, delta: Delta) -> None:
        if delta.content:
            self.content.append(delta.content)
        if delta.reasoning:
            self.reasoning.append(delta.reasoning)
        for call in delta.tool_calls:
            self._calls.setdefault(call.index, []).append(call.arguments)
            if call.id:
                self._ids[call.index] = call.id
            if call.name:
                self._names[call.index] = call.name
        if delta.finish_reason is not None:
            self.finish_reason = delta.finish_reason
        if delta.usage is not None:
            self.usage = delta.usage

    @property
    def tool_calls(self) -> tuple[ToolCall, ...]:
        return tuple(
            ToolCall(id=self._ids.get(i, f"call_{i}"), name=self._names.get(i, ""), arguments="".join(parts))
            for i, parts in sorted(self._calls.items())
        )

    def completion(self) -> Completion:
        return Completion(
            content="".join(self.content),
            reasoning="".join(self.reasoning),
            tool_calls=self.tool_calls,
            finish_reason=self.finish_reason,
            usage=self.usage or Usage(),
        )
