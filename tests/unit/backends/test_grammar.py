"""The grammars of the embedded backend: what each request is held to, built once, and how a
staged constraint follows one answer.

Building a grammar uses llama-cpp-python's JSON-schema converter (the ``embedded`` extra); no
model is loaded here. tests/integration/test_embedded_strict_tools.py runs them on the model.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import pytest

from multiturn.backends import grammar
from multiturn.backends.base import BackendInfo
from multiturn.backends.capabilities import check_params
from multiturn.backends.grammar import TEXT_GBNF, Constraint, Steer, request_constraint, text_tags
from multiturn.backends.llamacpp import EMBEDDED, Sampling
from multiturn.types import GenerationParams, ToolSpec

pytest.importorskip("llama_cpp")

UNIT = {"type": "string", "enum": ["celsius", "fahrenheit"]}
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "unit": UNIT},
    "required": ["city", "unit"],
    "additionalProperties": False,
}
INFO = BackendInfo(name="m", context_window=4096, max_output_tokens=4096, honours=EMBEDDED)


def weather(name: str, *, strict: bool | None = True) -> ToolSpec:
    return ToolSpec(name=name, description="The weather of a city", parameters=SCHEMA, strict=strict)


# -- built once --------------------------------------------------------------------------------


def test_the_check_builds_the_grammar_and_the_backend_finds_it_built() -> None:
    params = GenerationParams(tools=(weather("built_once"),), tool_choice="auto")
    before = grammar._cache.builds

    check_params(params, INFO, "m")  # the capability check, before the turn starts
    filled = Sampling().fill(params)  # what the backend generates with: a copy with defaults
    constraint = request_constraint(filled)  # what the backend asks for

    assert grammar._cache.builds == before + 1
    assert constraint is not None and constraint is request_constraint(params)


def test_other_tools_build_another_grammar() -> None:
    first = GenerationParams(tools=(weather("other_a"),), tool_choice="auto")
    second = replace(first, tools=(weather("other_b"),))
    before = grammar._cache.builds

    a, b = request_constraint(first), request_constraint(second)

    assert grammar._cache.builds == before + 2
    assert a is not None and b is not None and a.grammar != b.grammar


def test_no_constraint_when_nothing_is_held() -> None:
    before = grammar._cache.builds
    assert request_constraint(GenerationParams()) is None
    assert request_constraint(GenerationParams(tools=(weather("loose", strict=None),), tool_choice="auto")) is None
    assert grammar._cache.builds == before + 1  # the first is not even looked up; the second is built once, as nothing


# -- what each request is held to ---------------------------------------------------------------


def test_strict_under_auto_is_staged_text_or_a_call() -> None:
    constraint = request_constraint(GenerationParams(tools=(weather("staged"),), tool_choice="auto"))
    assert constraint is not None and constraint.after_tag is not None

    root = constraint.grammar.splitlines()[0]
    assert root == "root ::= tool-block | call | answer-root"  # tagged calls, one bare call, or text
    assert '"\\"celsius\\"" | "\\"fahrenheit\\""' in constraint.grammar  # the enum, as the schema says
    assert constraint.after_tag.startswith('root ::= "\\n" call "\\n" ("</tool_call>" | </tool_call>)')


def test_only_strict_tools_are_held_to_their_schema() -> None:
    other = ToolSpec(name="note", parameters={"type": "object", "properties": {"text": {"type": "string"}}})
    params = GenerationParams(tools=(weather("mixed"), other), tool_choice="auto")
    constraint = request_constraint(params)

    assert constraint is not None
    assert '"\\"mixed\\""' in constraint.grammar and '"\\"note\\""' in constraint.grammar
    assert '\\"text\\"' not in constraint.grammar  # the non-strict tool's arguments: any object


def test_forced_and_format_constraints_hold_throughout() -> None:
    forced = request_constraint(GenerationParams(tools=(weather("forced"),), tool_choice="required"))
    fmt = request_constraint(GenerationParams(response_format={"type": "json_object"}))
    assert forced is not None and forced.after_tag is None
    assert fmt is not None and fmt.after_tag is None


def test_tags_are_text_or_their_token_and_text_only_without_the_token() -> None:
    constraint = request_constraint(GenerationParams(tools=(weather("tags"),), tool_choice="required"))
    assert constraint is not None
    assert '("<tool_call>" | <tool_call>)' in constraint.grammar
    plain = text_tags(constraint.grammar)
    assert "<tool_call>" not in plain.replace('"<tool_call>"', "")  # no token reference left


# -- the text grammar ---------------------------------------------------------------------------


def text_machine() -> dict[str, list[tuple[str, str | None]]]:
    """TEXT_GBNF read back as a machine: state -> [(character class or literal, next state)]."""
    machine: dict[str, list[tuple[str, str | None]]] = {}
    for line in TEXT_GBNF.splitlines():
        name, _, body = line.partition(" ::= ")
        moves = []
        for alternative in body.split(" | "):
            found = re.fullmatch(r'(\[[^\]]*\]|"(?:[^"\\]|\\.)*")(?: (\S+))?', alternative.strip())
            if alternative.strip() == '""':
                moves.append(("", None))
                continue
            assert found, alternative
            moves.append((found.group(1), found.group(2)))
        machine[name] = moves
    return machine


def _matches(pattern: str, char: str) -> bool:
    if pattern.startswith('"'):
        return pattern[1:-1].encode().decode("unicode_escape") == char
    inner = pattern[1:-1].encode().decode("unicode_escape")
    if inner.startswith("^"):
        return char not in inner[1:]
    return char in inner


def accepts(text: str) -> bool:
    """Whether TEXT_GBNF accepts ``text`` (its machine is deterministic, one character a move)."""
    machine, state = text_machine(), "root"
    for char in text:
        moves = [target for pattern, target in machine[state] if pattern and _matches(pattern, char)]
        if not moves:
            return False
        (state,) = {target for target in moves if target is not None}
    return any(pattern == "" for pattern, _ in machine[state])


@pytest.mark.parametrize(
    "text",
    ["", "Hello.", "  Autumn leaves", "a < b and b <= c", "<b>bold</b>", "x <tool_cal", "<tool_ca> no", "ends <tool"],
)
def test_text_that_is_no_call_is_accepted(text: str) -> None:
    assert accepts(text)


@pytest.mark.parametrize(
    "text", ["{", '  {"name": "x"}', "<tool_call>", "ok <tool_call>\n{}", "a <<tool_call>", "<to<tool_call>"]
)
def test_text_that_is_or_holds_a_call_is_refused(text: str) -> None:
    assert not accepts(text)


# -- following one answer ------------------------------------------------------------------------

STAGED = Constraint(grammar="OPENING", after_tag="AFTER")


def test_plain_text_frees_the_answer_once_it_shows() -> None:
    steer = Steer(STAGED)
    assert steer.grammar == "OPENING"
    assert not steer.feed("  \n")  # white space decides nothing
    assert steer.feed("Snow") and steer.grammar is None
    assert not steer.feed(" falls, <b>softly</b>")


@pytest.mark.parametrize("pieces", [["<tool_call>"], ["Let me check. ", "<", "tool", "_call", ">"]])
def test_a_tag_after_text_holds_the_call(pieces: list[str]) -> None:
    steer = Steer(STAGED)
    changes = [steer.feed(piece) for piece in ["Sure.", *pieces, "\n{", '"name"']]
    assert steer.grammar == "AFTER"
    assert changes.count(True) == 2  # freed by the text, held again by the tag


@pytest.mark.parametrize("opening", ["{", ' {"name"', "<tool_call>", "<b>"])
def test_an_answer_that_opens_with_a_call_or_a_tag_is_held_throughout(opening: str) -> None:
    steer = Steer(STAGED)
    assert not any(steer.feed(piece) for piece in [opening, "text", "<tool_call>"])
    assert steer.grammar == "OPENING"


def test_a_constraint_that_holds_throughout_never_changes() -> None:
    steer = Steer(Constraint(grammar="JSON"))
    assert not any(steer.feed(piece) for piece in ["Hello", "<tool_call>", "{"])
    assert steer.grammar == "JSON"
