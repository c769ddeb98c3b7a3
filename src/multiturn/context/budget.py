"""How many tokens a request's prompt may take, and what the backend adds that we cannot count.

Pure functions the engine applies before planning: the output reserved for the answer, the
prompt budget under a policy, and the measured overhead of the backend's template (taken off
the budget by ``plan_context(overhead=...)``).
"""

from __future__ import annotations

from collections.abc import Sequence

from ..records import ItemRecord
from ..tokens import REPLY_PRIMER
from ..types import GenerationParams
from .policy import Policy


def reserved_output(window: int, max_output: int, params: GenerationParams) -> int:
    """Tokens kept free for the answer: the request's ``max_tokens`` (else the model's longest
    answer), at most half the window."""
    return min(params.max_tokens or max_output, window // 2)


def prompt_budget(window: int, reserved: int, policy: Policy) -> int:
    """What a prompt may take: the window less the reserved output, under the policy's budget."""
    budget = max(0, window - reserved)
    return budget if policy.budget is None else min(budget, policy.budget)


OVERHEAD_STEP = 32
"""Measured overheads are rounded up to this many tokens, so a wobble between calls does not
move the budget (and with it the window's cut point and the cached prefix)."""


def measured_overhead(path: Sequence[ItemRecord]) -> int:
    """Prompt tokens the backend counted beyond our plan on the path's latest answer: the
    chat template's additions we cannot see (Qwen's default system prompt is 21 tokens) or
    another vocabulary's surplus. Rounded up to ``OVERHEAD_STEP``; 0 when nothing says."""
    for item in reversed(path):
        report = item.context_report
        if item.role != "assistant" or item.usage is None or report is None or not report.planned:
            continue
        if item.usage.prompt_tokens > 0:
            last_overhead = max(0, report.tokens_by_part.get("template", REPLY_PRIMER) - REPLY_PRIMER)
            counted = report.tokens - last_overhead
            surplus = item.usage.prompt_tokens - counted
            return -(-surplus // OVERHEAD_STEP) * OVERHEAD_STEP if surplus > 0 else 0
    return 0
