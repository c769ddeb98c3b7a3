"""Build the messages of one request from a conversation's path: a pure function.

This is the ``full`` policy: the system prompt, then every item of the path in order, then
nothing else. Reasoning is never replayed (the Model Studio rule: only ``content`` goes back),
failed items are skipped, and an ``incomplete`` answer is replayed as far as it got, because
the user saw it. The truncation, summary and retrieval policies compose on top of this.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from ..records import ItemRecord
from ..types import ContextReport, Message


def build_messages(
    system_prompt: str | None,
    path: Sequence[ItemRecord],
    *,
    replay_reasoning: bool = False,
) -> tuple[list[Message], ContextReport]:
    messages: list[Message] = []
    kept: list[str] = []
    dropped: list[str] = []
    if system_prompt:
        messages.append(Message.of("system", system_prompt))
    for item in path:
        if item.status == "failed" or (item.role == "assistant" and not item.content and not item.tool_calls):
            dropped.append(item.id)
            continue
        message = item.to_message()
        if not replay_reasoning and message.reasoning is not None:
            message = replace(message, reasoning=None)
        messages.append(message)
        kept.append(item.id)
    tokens = sum(item.token_count or 0 for item in path if item.id in kept)
    return messages, ContextReport(policy="full", kept=tuple(kept), dropped=tuple(dropped), tokens=tokens)
