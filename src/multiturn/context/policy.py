"""Context policies: how a request's context is built from a conversation's path, and the
named presets a request, an API key, a conversation or a model alias chooses from.

A ``Policy`` is a plain value checked when it is made (a bad one is ``InvalidInput``); the planner
(``plan.py``) reads it and nothing else. ``PRESETS`` holds the five named ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal, TypeAlias, get_args

from ..errors import InvalidInput
from ..settings import ReasoningReplay
from .window import DEFAULT_LOW_WATER

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
