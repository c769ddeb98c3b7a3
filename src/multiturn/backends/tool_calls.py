"""Tool calls and structured output for a model that writes its calls as text (the embedded one).

Qwen's chat templates (and other Hermes-style ones) render the request's ``tools`` into the
system message and ask for each call as a JSON object between ``<tool_call>`` and
``</tool_call>``. ``ToolCallSplitter`` cuts a generated stream into its text and those calls; ``tool_use``
reads what a request's ``tools`` and ``tool_choice`` ask for. The grammars that make a choice,
a strict schema or a response format hold are ``grammar.py``'s.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidInput
from ..types import GenerationParams, ToolCall, ToolSpec

OPEN, CLOSE = "<tool_call>", "</tool_call>"


def new_call_id() -> str:
    return f"call_{secrets.token_hex(12)}"


class ToolCallSplitter:
    """Feeds on generated text; gives back the text to show and the calls completed so far.

    Text that could be the start of ``<tool_call>`` is held until it is known not to be; a
    call's JSON is held until ``</tool_call>``. Small models often write the call's JSON
    without the tags: an answer that starts with ``{`` is held to its end and is a call when it
    is one whole JSON call. A block that is not a JSON object with a ``name`` (one of the
    tools) and ``arguments`` (an object, or a string holding one) stays text: the client sees
    what the model wrote rather than a call that was never made.
    """

    def __init__(self, names: Sequence[str]) -> None:
        self._names = set(names)
        self._held = ""
        self._inside = False
        self._started = False
        self._bare = False
        """The answer began with ``{``: held whole, maybe a call without its tags."""

    def feed(self, text: str) -> tuple[str, list[ToolCall]]:
        if not self._started and text.strip():
            self._started = True
            self._bare = (self._held + text).lstrip().startswith("{")
        if self._bare:
            self._held += text
            return "", []
        self._held += text
        shown: list[str] = []
        calls: list[ToolCall] = []
        while True:
            if self._inside:
                end = self._held.find(CLOSE)
                if end < 0:
                    break
                body, self._held = self._held[:end], self._held[end + len(CLOSE) :]
                self._inside = False
                call = self._parse(body)
                if call is None:
                    shown.append(f"{OPEN}{body}{CLOSE}")
                else:
                    calls.append(call)
                continue
            start = self._held.find(OPEN)
            if start >= 0:
                shown.append(self._held[:start])
                self._held = self._held[start + len(OPEN) :]
                self._inside = True
                continue
            keep = _partial_suffix(self._held, OPEN)
            shown.append(self._held[: len(self._held) - keep])
            self._held = self._held[len(self._held) - keep :]
            break
        return "".join(shown), calls

    def flush(self) -> tuple[str, list[ToolCall]]:
        """The end: what is still held, as text (an unfinished call is shown as written), or
        the call a held bare answer was."""
        if self._bare:
            self._bare = False
            call = self._parse(self._held)
            if call is not None:
                self._held = ""
                return "", [call]
            return self.feed("")[0] + self.flush()[0], []
        held = f"{OPEN}{self._held}" if self._inside else self._held
        self._held, self._inside = "", False
        return held, []

    def _parse(self, body: str) -> ToolCall | None:
        try:
            data = json.loads(body)
        except ValueError:
            return None
        if not isinstance(data, dict) or not isinstance(data.get("name"), str):
            return None
        arguments = data.get("arguments", data.get("parameters", {}))
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments)
            except ValueError:
                return None
        if not isinstance(arguments, dict) or (self._names and data["name"] not in self._names):
            return None
        return ToolCall(id=new_call_id(), name=data["name"], arguments=json.dumps(arguments, ensure_ascii=False))


def _partial_suffix(text: str, marker: str) -> int:
    """The length of the longest end of ``text`` that begins ``marker``."""
    for size in range(min(len(marker) - 1, len(text)), 0, -1):
        if text.endswith(marker[:size]):
            return size
    return 0


# -- what a request asks for ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ToolUse:
    """How a request uses its tools: the tools the model is shown (none with ``tool_choice``
    ``none``), and the ones it must call one of (empty: it may answer in text)."""

    shown: tuple[ToolSpec, ...]
    forced: tuple[ToolSpec, ...]


def tool_use(params: GenerationParams) -> ToolUse:
    """Read ``tools`` and ``tool_choice``. Raises InvalidInput: a choice that names no tool of
    the request, or that this backend does not know."""
    tools, choice = params.tools, params.tool_choice
    if not tools:
        if choice not in (None, "none", "auto"):
            raise InvalidInput("tool_choice asks for a tool call, but the request has no tools")
        return ToolUse((), ())
    if choice in (None, "auto"):
        return ToolUse(tools, ())
    if choice == "none":
        return ToolUse((), ())
    if choice == "required":
        return ToolUse(tools, tools)
    name = _named(choice)
    chosen = tuple(tool for tool in tools if tool.name == name)
    if not chosen:
        raise InvalidInput(f"tool_choice names the function {name!r}, which is not one of the request's tools")
    return ToolUse(tools, chosen)


def _named(choice: object) -> str:
    if isinstance(choice, dict):
        function = choice.get("function")
        name = function.get("name") if isinstance(function, dict) else choice.get("name")
        if isinstance(name, str):
            return name
    raise InvalidInput(f"tool_choice {choice!r} is not none, auto, required or a function to call")


def render_tools(tools: Sequence[ToolSpec]) -> list[dict[str, Any]]:
    """Tools as a chat template reads them (OpenAI's shape)."""
    return [
        {
            "type": "function",
            "function": {
                "name": tool.name,
                **({"description": tool.description} if tool.description else {}),
                "parameters": tool.parameters or {"type": "object", "properties": {}},
            },
        }
        for tool in tools
    ]
