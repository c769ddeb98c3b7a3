"""The pure helpers of the embedded backend: KV prefix reuse and stop sequences.

Importing ``multiturn.backends.llamacpp`` does not import ``llama_cpp``, so these run anywhere.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from multiturn.backends.llamacpp import _cut_stop, _reused_prefix

# -- _reused_prefix: what llama-cpp-python's Llama.generate keeps of the previous call ----------


def test_nothing_live_nothing_reused() -> None:
    assert _reused_prefix([], [1, 2, 3]) == 0


def test_common_prefix_is_reused() -> None:
    assert _reused_prefix([1, 2, 3, 9, 9], [1, 2, 3, 4]) == 3


def test_no_common_prefix() -> None:
    assert _reused_prefix([7, 2, 3], [1, 2, 3]) == 0


def test_prompt_equal_to_the_live_tokens_is_all_reused() -> None:
    assert _reused_prefix([1, 2, 3], [1, 2, 3]) == 3


def test_prompt_that_is_a_strict_prefix_of_the_live_tokens_replays_its_last_token() -> None:
    # The previous call generated past this prompt (a retry): llama.cpp keeps all but the last
    # prompt token and evaluates that one again to get fresh logits.
    assert _reused_prefix([1, 2, 3, 4, 5], [1, 2, 3]) == 2
    assert _reused_prefix([1, 2], [1]) == 0


def test_next_turn_extends_the_live_tokens() -> None:
    assert _reused_prefix([1, 2, 3], [1, 2, 3, 4, 5]) == 3


tokens = st.lists(st.integers(0, 3), max_size=12)


@given(tokens, st.lists(st.integers(0, 3), min_size=1, max_size=12))
def test_reused_is_within_bounds_and_a_true_common_prefix(live: list[int], prompt: list[int]) -> None:
    reused = _reused_prefix(live, prompt)
    assert 0 <= reused <= len(prompt)
    assert live[:reused] == prompt[:reused]
    if reused == len(prompt):
        assert live == prompt
    if live != prompt:
        assert reused < len(prompt)


# -- _cut_stop: (safe to emit, held back, stopped) -----------------------------------------------


def test_no_stops_emits_everything() -> None:
    assert _cut_stop("anything <|end|>", ()) == ("anything <|end|>", "", False)


def test_a_stop_cuts_the_text_before_it() -> None:
    assert _cut_stop("hello STOP world", ("STOP",)) == ("hello ", "", True)
    assert _cut_stop("STOP", ("STOP",)) == ("", "", True)


def test_a_possible_start_of_a_stop_is_held_back() -> None:
    assert _cut_stop("hello ST", ("STOP",)) == ("hello ", "ST", False)
    assert _cut_stop("hello S", ("STOP",)) == ("hello ", "S", False)
    assert _cut_stop("hello", ("STOP",)) == ("hello", "", False)


def test_the_longest_possible_start_among_stops_is_held_back() -> None:
    assert _cut_stop("abc##E", ("##END", "#X")) == ("abc", "##E", False)
    assert _cut_stop("abc\n\nUs", ("\n\nUser:", "\nX")) == ("abc", "\n\nUs", False)


def test_streaming_with_held_text_finds_a_stop_split_across_pieces() -> None:
    held = ""
    emitted = []
    stopped = False
    for piece in ["Hello", " wor", "ld<|e", "nd", "|>after"]:
        held += piece
        text, held, stopped = _cut_stop(held, ("<|end|>",))
        emitted.append(text)
        if stopped:
            break
    assert stopped
    assert "".join(emitted) == "Hello world"


def test_the_earliest_stop_in_the_text_wins() -> None:
    assert _cut_stop("a\nb", ("b", "\n")) == ("a", "", True)


stop_texts = st.text(alphabet="ab#\n", max_size=12)


@given(stop_texts, st.lists(st.text(alphabet="ab#\n", min_size=1, max_size=3), min_size=1, max_size=3))
def test_emitted_text_never_completes_a_stop_unless_it_stopped(text: str, stops: list[str]) -> None:
    emitted, held, stopped = _cut_stop(text, tuple(stops))
    if stopped:
        assert held == ""
        assert text.startswith(emitted)
        assert any(text[len(emitted) :].startswith(s) for s in stops)
    else:
        assert emitted + held == text
        assert not any(s in text for s in stops)
        # What is held back could still grow into a stop; nothing longer could.
        if held:
            assert any(s.startswith(held) for s in stops)
        for size in range(len(held) + 1, len(text) + 1):
            assert not any(s.startswith(text[-size:]) for s in stops)
