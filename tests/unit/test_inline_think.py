"""``multiturn.backends.thinking.InlineThink``: a ``<think>`` block opening an upstream's content
becomes reasoning, whatever the chunking; any other content passes untouched."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from multiturn.backends.thinking import PASSING, InlineThink
from multiturn.types import Delta, ToolCallDelta, Usage

plain = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30).filter(lambda t: "<" not in t)
blank = st.sampled_from(["", "\n", "  \n", "\n\n"])


def _cut(text: str, cuts: list[int]) -> list[str]:
    bounds = [0, *sorted({min(c, len(text)) for c in cuts}), len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds) if b > a]


def _run(pieces: list[str]) -> tuple[str, str, list[Delta]]:
    think = InlineThink()
    out = [think.feed(Delta(content=p)) for p in pieces]
    out.append(think.feed(Delta(finish_reason="stop", usage=Usage(1, 2))))
    deltas = [d for d in out if d is not None]
    assert deltas[-1].finish_reason == "stop" and deltas[-1].usage == Usage(1, 2)
    return "".join(d.content for d in deltas), "".join(d.reasoning for d in deltas), deltas


@given(lead=blank, reasoning=plain, answer=plain, cuts=st.lists(st.integers(0, 120), max_size=8))
def test_a_leading_think_block_becomes_reasoning_in_any_chunking(
    lead: str, reasoning: str, answer: str, cuts: list[int]
) -> None:
    content, thought, _ = _run(_cut(f"{lead}<think>{reasoning}</think>\n\n{answer}", cuts))

    assert thought == reasoning
    assert content == answer.lstrip("\n")


@given(text=plain.filter(lambda t: t.strip() != ""), cuts=st.lists(st.integers(0, 60), max_size=6))
def test_other_content_passes_whole(text: str, cuts: list[int]) -> None:
    content, thought, _ = _run(_cut(text + " <think>not reasoning</think>", cuts))

    assert (content, thought) == (text + " <think>not reasoning</think>", "")


def test_the_split_stops_once_the_block_closed() -> None:
    think = InlineThink()
    assert think.feed(Delta(content="<thi")) is None  # a tag may be cut: held back
    assert think.feed(Delta(content="nk>why")) == Delta(reasoning="why")
    assert think.feed(Delta(content="</think>\n")) is None
    assert think.feed(Delta(content="\nAnswer")) == Delta(content="Answer")
    assert think.state == PASSING  # the relay skips it from here on


def test_reasoning_and_tool_calls_are_never_held() -> None:
    think = InlineThink()
    call = (ToolCallDelta(0, "call_1", "f", "{}"),)
    assert think.feed(Delta(reasoning="apart")) == Delta(reasoning="apart")
    assert think.feed(Delta(content="\n", tool_calls=call)) == Delta(tool_calls=call)
    assert think.feed(Delta(finish_reason="tool_calls")) == Delta(content="\n", finish_reason="tool_calls")


def test_an_unclosed_block_is_reasoning_at_the_end() -> None:
    content, thought, _ = _run(["<think>", "still thinking"])
    assert (content, thought) == ("", "still thinking")
