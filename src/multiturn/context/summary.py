"""A rolling summary as the planner receives it, and how it is placed in a request.

The summary covers a prefix of the path, up to and including ``through_item_id``; it sits in a
system message right after the system prompt and changes only when the conversation is compacted
again, so the prompt's prefix stays cacheable between compactions. Writing summaries (the
trigger, the prompt, the model call, persistence) lives elsewhere; this module only holds the
value and its rendering.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..types import Message

SUMMARY_PREFIX = "Summary of the earlier conversation: "


@dataclass(frozen=True, slots=True)
class Summary:
    """The summary of a path's items up to and including ``through_item_id``.

    ``token_count`` is what the store recorded; the planner counts the rendered message itself
    with the request's tokenizer.
    """

    text: str
    through_item_id: str
    token_count: int | None = None


def summary_message(summary: Summary) -> Message:
    return Message.of("system", SUMMARY_PREFIX + summary.text)
