"""``multiturn.backends.thinking``: ``<think>`` blocks split out of a stream of any chunking."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from multiturn.backends.thinking import ThinkSplitter, split_thinking


def _stream(chunks: list[str]) -> tuple[str, str]:
    splitter = ThinkSplitter()
    content: list[str] = []
    reasoning: list[str] = []
    for chunk in chunks:
        c, r = splitter.feed(chunk)
        content.append(c)
        reasoning.append(r)
    c, r = splitter.flush()
    return "".join(content) + c, "".join(reasoning) + r


def _cut(text: str, cuts: list[int]) -> list[str]:
    bounds = [0, *sorted({min(c, len(text)) for c in cuts}), len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds)]


# Texts built from pieces that make tags, broken tags and the newlines around them likely.
_pieces = ["<think>", "</think>", "<", "</", "<th", "</thi", "think>", ">", "a", "b c", " ", "é"]
texts = st.lists(st.sampled_from([*_pieces, "\n", "\n\n"]) | st.text(max_size=5), max_size=12).map("".join)


@given(texts, st.lists(st.integers(0, 80), max_size=12))
def test_any_chunking_gives_the_whole_text_result(text: str, cuts: list[int]) -> None:
    assert _stream(_cut(text, cuts)) == split_thinking(text)


@given(texts)
def test_one_character_at_a_time_gives_the_whole_text_result(text: str) -> None:
    assert _stream(list(text)) == split_thinking(text)


def _reference(text: str) -> tuple[str, str]:
    """The documented rule, written the obvious way for a whole text."""
    start = text.find("<think>")
    if start < 0:
        return text, ""
    end = text.find("</think>", start + len("<think>"))
    if end < 0:
        return text[:start], text[start + len("<think>") :]
    return text[:start] + text[end + len("</think>") :].lstrip("\n"), text[start + len("<think>") : end]


@given(texts)
def test_whole_text_follows_the_rule(text: str) -> None:
    assert split_thinking(text) == _reference(text)


@given(st.text().filter(lambda t: "<think>" not in t))
def test_text_without_tags_is_all_content(text: str) -> None:
    assert split_thinking(text) == (text, "")


def test_think_block_then_content() -> None:
    assert split_thinking("<think>let me see</think>\n\nThe answer is 4.") == ("The answer is 4.", "let me see")


def test_only_leading_newlines_after_the_block_are_stripped() -> None:
    assert split_thinking("<think>r</think>\n\n  answer\n\nmore\n") == ("  answer\n\nmore\n", "r")


def test_text_before_the_block_is_content() -> None:
    assert split_thinking("Hmm. <think>r</think>ok") == ("Hmm. ok", "r")


def test_unclosed_block_is_reasoning() -> None:
    assert split_thinking("<think>still thinking") == ("", "still thinking")
    assert split_thinking("<think>still thinking</thi") == ("", "still thinking</thi")


def test_empty_block() -> None:
    assert split_thinking("<think></think>\nhi") == ("hi", "")
    assert split_thinking("") == ("", "")


def test_after_the_block_everything_is_content() -> None:
    assert split_thinking("<think>a</think>b<think>c</think>") == ("b<think>c</think>", "a")


def test_a_lone_partial_tag_is_released_as_content_at_the_end() -> None:
    splitter = ThinkSplitter()
    assert splitter.feed("x <thi") == ("x ", "")
    assert splitter.flush() == ("<thi", "")


def test_tags_cut_across_chunks() -> None:
    splitter = ThinkSplitter()
    assert splitter.feed("<th") == ("", "")
    assert splitter.feed("ink>reas") == ("", "reas")
    assert splitter.feed("oning</th") == ("", "oning")
    assert splitter.feed("ink>\n\nans") == ("ans", "")
    assert splitter.feed("wer") == ("wer", "")
    assert splitter.flush() == ("", "")


def test_held_back_text_that_is_not_a_tag_is_released() -> None:
    splitter = ThinkSplitter()
    assert splitter.feed("<think>a <") == ("", "a ")
    assert splitter.feed("b") == ("", "<b")
    assert splitter.feed("</think>c") == ("c", "")


@pytest.mark.parametrize(
    "chunks",
    [
        ["<think>r</think>", "\n\nanswer"],
        ["<think>r</think>\n", "\nanswer"],
        ["<think>r</think>", "\n", "\n", "answer"],
    ],
)
def test_newlines_after_the_block_in_a_later_chunk_are_stripped(chunks: list[str]) -> None:
    assert split_thinking("".join(chunks)) == ("answer", "r")
    assert _stream(chunks) == ("answer", "r")
