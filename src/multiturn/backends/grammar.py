"""Grammars that make a request's promises hold on a model that writes its calls as text.

``request_constraint`` is the one door: what ``tool_choice``, ``strict`` tools and
``response_format`` ask of the answer, as GBNF (llama.cpp's grammar language), built once for
the same tools, choice and format however many times it is asked for (the capability check
builds it before the turn starts; the backend finds it built).

A ``Constraint`` may hold from the first token to the last (a forced call, a response format),
or be *staged* (``strict`` tools under ``auto``): the answer's opening is held by a grammar
that allows text, a call, or a call without its tags; once the answer is plainly text (its
first character is neither ``{`` nor ``<``) sampling is free, until the model writes a
``<tool_call>`` tag, after which the call must match its schema. ``Steer`` follows one answer
through those stages. Why staged: the grammar costs llama-cpp-python ~17 ms of CPU per token
over the 151k-token vocabulary (it runs before top-k), which would halve the decode speed of
every prose answer; staged, prose pays it for its first token only (``bench/strict_tools.py``;
docs/parameters.md has the numbers).
"""

from __future__ import annotations

import json
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidInput, InvalidParameter
from ..types import GenerationParams, ToolSpec
from .tool_calls import CLOSE, OPEN, ToolUse, tool_use


@dataclass(frozen=True, slots=True)
class Constraint:
    """What a request holds its answer to.

    ``grammar`` holds from the first token. With ``after_tag``, the constraint is staged:
    once the answer is plainly text, sampling is free until a ``<tool_call>`` tag is written,
    and from there ``after_tag`` holds (the rest of the call, and any further calls).
    """

    grammar: str
    after_tag: str | None = None


# -- building, once ---------------------------------------------------------------------------

CACHE_SIZE = 64
"""Constraints kept by ``request_constraint`` (a request's tools usually repeat: an agent's loop)."""


class _Cache:
    """Constraints by what they are built from; shared by the event loop and the runner thread."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[str, Constraint | None] = OrderedDict()
        self._lock = threading.Lock()
        self.builds = 0
        """How many constraints were built (a test counts them)."""

    def get(self, key: str, build: Callable[[], Constraint | None]) -> Constraint | None:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        built = build()  # outside the lock: a schema's conversion may take milliseconds
        with self._lock:
            self.builds += 1
            self._items[key] = built
            if len(self._items) > self._size:
                self._items.popitem(last=False)
        return built


_cache = _Cache(CACHE_SIZE)


def request_constraint(params: GenerationParams) -> Constraint | None:
    """What ``params`` hold the answer to (``None``: nothing), built once for the same tools,
    choice and format. Raises as ``constraint``."""
    use = tool_use(params)
    if not use.shown and not params.response_format:
        return None
    key = json.dumps(
        [
            [[t.name, t.description, t.parameters, t.strict] for t in use.shown],
            [t.name for t in use.forced],
            params.response_format,
        ],
        sort_keys=True,
        default=repr,
    )
    return _cache.get(key, lambda: constraint(use, params.response_format))


def constraint(use: ToolUse, response_format: dict[str, Any] | None) -> Constraint | None:
    """What the answer must follow, or ``None`` (sample freely):

    - a forced tool: exactly one call of it, its arguments matching its schema;
    - a ``response_format`` asking for JSON: that JSON — or, when tools may be called, a call
      or that JSON;
    - ``auto`` with a ``strict`` tool among those shown (staged, see the module docstring):
      text, or calls whose arguments match the schema of each strict tool (another tool's
      arguments: any object), in their tags or one bare (the small model's habit: without it
      the model wrote no call at all, ``bench/strict_tools.py``). An answer that opens with
      ``{`` is that bare call; a call written after text is held from its tag on;
    - else ``None``: what the model writes is parsed, not constrained.

    Raises:
        InvalidInput: a ``response_format`` that is not one of the three kinds.
        InvalidParameter: a schema the grammar converter cannot express (naming the field).
    """
    from llama_cpp.llama_grammar import JSON_GBNF, json_schema_to_gbnf

    if use.forced:
        return Constraint(_wrap(_calls_grammar(use.forced, json_schema_to_gbnf), "call", _CALL_ROOT))
    answer = _format_grammar(response_format, JSON_GBNF, json_schema_to_gbnf)
    if answer is None:
        if not any(tool.strict for tool in use.shown):
            return None
        calls = _calls_grammar(use.shown, json_schema_to_gbnf, strict_only=True)
        opening = _alternatives(_wrap(calls, "call", _CALLS_ROOT), TEXT_GBNF, bare=True)
        return Constraint(opening, after_tag=_wrap(calls, "call", _AFTER_TAG_ROOT))
    if not use.shown:
        return Constraint(answer)
    calls = _wrap(_calls_grammar(use.shown, json_schema_to_gbnf), "call", _CALL_ROOT)
    return Constraint(_alternatives(calls, answer))


# -- following one answer ---------------------------------------------------------------------


class Steer:
    """Which grammar holds at each point of one answer (see ``Constraint``).

    ``grammar`` is the one to sample with now; ``feed`` takes each piece of text as it is
    generated and says whether the grammar changed (the caller then samples on with the new
    one, from where the answer is).
    """

    def __init__(self, constraint: Constraint) -> None:
        self._constraint = constraint
        self.grammar: str | None = constraint.grammar
        self._stage = "opening" if constraint.after_tag is not None else "held"
        self._text = ""

    def feed(self, piece: str) -> bool:
        if self._stage == "held":
            return False
        self._text += piece
        if self._stage == "opening":
            opened = self._text.lstrip()
            if not opened:
                return False
            if opened[0] in "{<":  # a bare call, a tag, or text that starts with "<": held throughout
                self._stage = "held"
                return False
            self._stage, self._text, self.grammar = "free", "", None
            return True
        if OPEN in self._text:  # "free": text, until a call is opened
            self._stage, self.grammar = "held", self._constraint.after_tag
            return True
        self._text = self._text[-len(OPEN) :]  # enough to see a tag cut across pieces
        return False


# -- grammar text -----------------------------------------------------------------------------


def _calls_grammar(tools: Sequence[ToolSpec], from_schema: Any, *, strict_only: bool = False) -> str:
    try:
        return str(from_schema(json.dumps(_call_schema(tools, strict_only=strict_only))))
    except Exception as exc:  # the converter's own errors name what it cannot express
        raise InvalidParameter(f"tools: a function's parameters cannot be enforced: {exc}", param="tools") from exc


# A tag is its text or, in a vocabulary that has one (Qwen's), its own token: llama.cpp's grammar
# never matches a user-defined token against text, and held to the text the model is pushed off
# the way it was trained to write a call.
_OPEN_TAG = f'("{OPEN}" | {OPEN})'
_CLOSE_TAG = f'("{CLOSE}" | {CLOSE})'
_CALL_BLOCK = f'call-block ::= {_OPEN_TAG} "\\n" call "\\n" {_CLOSE_TAG}'
_CALL_ROOT = f'root ::= {_OPEN_TAG} "\\n" call "\\n" {_CLOSE_TAG}'
_CALLS_ROOT = f'root ::= call-block ("\\n" call-block)*\n{_CALL_BLOCK}'
_AFTER_TAG_ROOT = f'root ::= "\\n" call "\\n" {_CLOSE_TAG} ("\\n" call-block)*\n{_CALL_BLOCK}'


def text_tags(grammar: str) -> str:
    """``grammar`` for a vocabulary without tokens for the tags: the tags as text only."""
    return grammar.replace(_OPEN_TAG, f'"{OPEN}"').replace(_CLOSE_TAG, f'"{CLOSE}"')


def _text_grammar(marker: str) -> str:
    """GBNF for text that does not open with ``{`` (after white space) and never holds
    ``marker`` (which has one ``<``, its first character).

    A machine of ``len(marker)`` states: ``text-k`` has read the marker's first ``k``
    characters (``text-0``: none of it). From each, ``<`` goes to ``text-1``, the marker's next
    character one state on, any other character back to ``text-0``; the last character is
    never allowed; every state may end. Written as right recursion, llama.cpp keeps two or
    three stacks at a time (a ``(... | "<tool" [^_<] | ...)*`` form kept twenty and cost
    three times the CPU per token of free text, against under twice for this one)."""

    def escaped(char: str) -> str:
        return "\\" + char if char in "]\\^-" else char

    rules = ['root ::= [ \\t\\r\\n] root | [^{< \\t\\r\\n] text-0 | "<" text-1 | ""']
    rules.append('text-0 ::= [^<] text-0 | "<" text-1 | ""')
    for k in range(1, len(marker)):
        step = marker[k]
        more = f" | {json.dumps(step)} text-{k + 1}" if k + 1 < len(marker) else ""
        rules.append(f'text-{k} ::= [^{escaped(step)}<] text-0 | "<" text-1{more} | ""')
    return "\n".join(rules)


TEXT_GBNF = _text_grammar(OPEN)
"""Free text that cannot be, or hold, a tool call (see ``_text_grammar``)."""


def _format_grammar(response_format: dict[str, Any] | None, json_gbnf: str, from_schema: Any) -> str | None:
    if not response_format:
        return None
    kind = response_format.get("type")
    if kind in (None, "text"):
        return None
    if kind == "json_object":
        return str(json_gbnf)
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if not isinstance(schema, dict):
            raise InvalidInput("response_format json_schema needs json_schema.schema, a JSON schema object")
        try:
            return str(from_schema(json.dumps(schema)))
        except Exception as exc:  # the converter's own errors name what it cannot express
            raise InvalidParameter(
                f"response_format json_schema cannot be enforced: {exc}", param="response_format"
            ) from exc
    raise InvalidInput(f"response_format type {kind!r} is not text, json_object or json_schema")


def _call_schema(tools: Sequence[ToolSpec], *, strict_only: bool = False) -> dict[str, Any]:
    """One call of one of ``tools``; with ``strict_only``, only strict tools' arguments are
    held to their schema."""
    options = [
        {
            "type": "object",
            "properties": {
                "name": {"const": tool.name},
                "arguments": (tool.parameters if tool.strict or not strict_only else None) or {"type": "object"},
            },
            "required": ["name", "arguments"],
        }
        for tool in tools
    ]
    return options[0] if len(options) == 1 else {"anyOf": options}


def _wrap(grammar: str, name: str, root: str) -> str:
    """Rename ``grammar``'s root rule to ``name`` and put ``root`` above it."""
    lines = [
        f"{name} ::=" + line[len("root ::=") :] if line.startswith("root ::=") else line
        for line in grammar.splitlines()
    ]
    return "\n".join([root, *lines])


def _alternatives(calls: str, answer: str, *, bare: bool = False) -> str:
    """One grammar accepting a call (``calls``, rooted at ``root``) or an answer (``answer``,
    its rules renamed ``answer-*`` so the two grammars' helper rules cannot clash); with
    ``bare``, also one call written without its tags (its ``call`` rule alone)."""
    call_root, *call_rules = calls.splitlines()
    return "\n".join(
        [
            f"root ::= tool-block | {'call | ' if bare else ''}answer-root",
            call_root.replace("root ::=", "tool-block ::=", 1),
            *call_rules,
            _prefix_rules(answer, "answer-"),
        ]
    )


_RULE = re.compile(r"^([A-Za-z0-9-]+)\s*::=", re.MULTILINE)
_LITERAL = re.compile(r'("(?:[^"\\]|\\.)*"|\[(?:[^\]\\]|\\.)*\])')
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9-]*")


def _prefix_rules(grammar: str, prefix: str) -> str:
    """``grammar`` with each of its rule names (defined and referenced) prefixed; literals and
    character classes are left as they are."""
    names = set(_RULE.findall(grammar))

    def rename(match: re.Match[str]) -> str:
        word = match.group(0)
        return prefix + word if word in names else word

    lines = []
    for line in grammar.splitlines():
        pieces = _LITERAL.split(line)  # odd pieces are literals
        lines.append("".join(p if i % 2 else _NAME.sub(rename, p) for i, p in enumerate(pieces)))
    return "\n".join(lines)
