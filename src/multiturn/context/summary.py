"""A rolling summary as the planner receives it, and how it is placed in a request.

The summary covers a prefix of the path, up to and including ``through_item_id``; it is appended
to the system prompt (``with_summary``: one system message, first, as current chat templates
demand) and changes only when the conversation is compacted again, so the prompt's prefix stays
cacheable between compactions. Writing summaries (the
trigger, the prompt, the model call, persistence) lives elsewhere; this module only holds the
value and its rendering.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from ..types import Message, TextPart

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


def join_system(head: Sequence[Message], text: str) -> list[Message]:
    """The request's leading system messages with ``text`` appended to the last of them (after
    a blank line); ``text`` becomes a system message of its own only when there is none (or,
    rarely, when the last one carries media)."""
    last = head[-1] if head else None
    if last is None or last.role != "system" or not all(isinstance(p, TextPart) for p in last.content):
        return [*head, Message.of("system", text)]
    joined = f"{last.text}\n\n{text}" if last.text else text
    return [*head[:-1], replace(last, content=(TextPart(joined),))]


def with_summary(head: Sequence[Message], summary: Summary) -> list[Message]:
    """``head`` with the summary appended to its last system message (see ``join_system``)."""
    return join_system(head, SUMMARY_PREFIX + summary.text)
