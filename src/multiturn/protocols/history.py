"""The rules a history must keep, whatever protocol it came by: one check over canonical messages,
so the OpenAI and DashScope routes refuse the same invalid histories.

- An assistant message's tool calls each have an id and a function name.
- A tool message names the call it answers (``tool_call_id``), and that call is one of the tool
  calls of the assistant message right before it (other tool messages may come between: the
  results of one message's calls follow it in a row).

Each protocol checks its own shapes first (roles, content types, an empty list); this module sees
only what they all share. A violation is an ``InvalidParameter`` naming the message
(``param_of(index)``) with Model Studio's text where it has one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Final

from ..types import Message
from .limits import InvalidParameter

TOOL_ORDER: Final = 'messages with role "tool" must be a response to a preceeding message with "tool_calls"'
"""Model Studio's text (its spelling) for a tool message that answers no preceding tool call."""


def check_history(messages: Sequence[Message], param_of: Callable[[int], str]) -> None:
    """Raise ``InvalidParameter`` for the first message that breaks a rule of the module docstring."""
    calls: frozenset[str] | None = None  # the ids the tool messages at this point may answer
    for i, m in enumerate(messages):
        if m.role == "tool":
            if not m.tool_call_id:
                raise InvalidParameter(
                    f"{param_of(i)}: a message with role 'tool' needs the tool_call_id of the call it answers",
                    param=param_of(i),
                )
            if calls is None:
                raise InvalidParameter(TOOL_ORDER, param=param_of(i))
            if m.tool_call_id not in calls:
                raise InvalidParameter(
                    f"{param_of(i)}: tool_call_id {m.tool_call_id!r} answers none of the tool calls of the "
                    "preceding assistant message",
                    param=param_of(i),
                )
            continue
        calls = None
        if m.role == "assistant" and m.tool_calls:
            for j, call in enumerate(m.tool_calls):
                if not call.id or not call.name:
                    missing = "an id" if not call.id else "a function name"
                    where = f"{param_of(i)}.tool_calls[{j}]"
                    raise InvalidParameter(f"{where}: a tool call needs {missing}", param=param_of(i))
            calls = frozenset(call.id for call in m.tool_calls)
