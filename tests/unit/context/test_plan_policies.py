"""``multiturn.context.plan.plan_context``: every policy's invariants as properties, the cache
property over a growing conversation, and the composition (summary, recalled, media, pinned)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import replace

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from multiturn import codec
from multiturn.context.plan import PRESETS, Policy, build_messages, plan_context, preset
from multiturn.context.retrieval import RECALLED_HEADER, Recalled, recalled_block
from multiturn.context.rounds import split_rounds
from multiturn.context.summary import Summary, summary_block
from multiturn.errors import InvalidInput
from multiturn.records import ItemRecord
from multiturn.tokens import REPLY_PRIMER, EstimateTokenizer, QwenTokenizer, message_tokens
from multiturn.types import ContextReport, ImagePart, Message, TextPart
from support.reports import fated

from .paths import PNG_280, PathBuilder, conversations

TOKENIZER = EstimateTokenizer()
SYSTEM = "You are a helpful travel assistant."

policies = st.builds(
    Policy,
    name=st.sampled_from(["full", "window", "summary", "retrieval", "auto"]),
    budget=st.none() | st.integers(0, 2000),
    recent_share=st.sampled_from([0.4, 0.6, 1.0]),
    low_water=st.sampled_from([0.3, 0.6, 1.0]),
    max_rounds=st.none() | st.integers(0, 8),
    keep_images_rounds=st.none() | st.integers(1, 4),
    media_bytes=st.none() | st.integers(0, 400),
    reasoning_replay=st.sampled_from(["drop", "tool_chain", "keep"]),
)


@st.composite
def requests(draw: st.DrawFn) -> tuple[list[ItemRecord], Policy, int, int, Summary | None, list[Recalled]]:
    path = draw(conversations())
    policy = draw(st.sampled_from(list(PRESETS.values())) | policies)
    window_tokens = draw(st.integers(0, 4000))
    reserved = draw(st.integers(0, 300))
    summary = None
    if draw(st.booleans()):
        through = draw(st.sampled_from(path))
        summary = Summary(text=draw(st.text(max_size=200)), through_item_id=through.id)
    recalled = []
    for r in split_rounds(path):
        if draw(st.booleans()):
            recalled.append(Recalled(r.ids, draw(st.floats(0, 10))))
    return path, policy, window_tokens, reserved, summary, recalled


def _plan(
    path: Sequence[ItemRecord],
    policy: Policy,
    window_tokens: int = 100_000,
    reserved: int = 0,
    summary: Summary | None = None,
    recalled: Sequence[Recalled] = (),
    system: str | None = SYSTEM,
) -> tuple[list[Message], ContextReport]:
    return plan_context(
        system,
        path,
        policy=policy,
        window_tokens=window_tokens,
        reserved_output=reserved,
        tokenizer=TOKENIZER,
        summary=summary,
        recalled=recalled,
    )


def _newest_round_ids(path: Sequence[ItemRecord]) -> list[str]:
    return list(split_rounds(path)[-1].ids)


# -- the invariants, for every policy -----------------------------------------------------------


@given(requests())
def test_invariants(request: tuple[list[ItemRecord], Policy, int, int, Summary | None, list[Recalled]]) -> None:
    path, policy, window_tokens, reserved, summary, recalled = request
    messages, report = _plan(path, policy, window_tokens, reserved, summary, recalled)
    kept, recalled_ids = fated(report, path, "kept"), fated(report, path, "recalled")

    # Deterministic for the same inputs.
    assert (messages, report) == _plan(path, policy, window_tokens, reserved, summary, recalled)

    # System first, and only there: the summary joins the system prompt, recalled rounds join
    # the new input (current chat templates reject a system message anywhere but first).
    assert messages[0].role == "system" and messages[0].text.startswith(SYSTEM)
    pinned = [i for i in kept if path[int(i[1:])].role == "system"]
    assert [m.role for m in messages[: 1 + len(pinned)]] == ["system"] * (1 + len(pinned))
    assert all(m.role != "system" for m in messages[1 + len(pinned) :])

    # The reported tokens are what the messages cost.
    assert report.tokens == sum(message_tokens(m, TOKENIZER) for m in messages) + REPLY_PRIMER
    assert report.tokens == sum(report.tokens_by_part.values())
    budget = min(window_tokens - reserved, policy.budget if policy.budget is not None else window_tokens)
    assert report.budget == max(0, budget)

    # Never over budget, unless only the newest round (and what is always kept) remains.
    newest = _newest_round_ids(path)
    history = [i for i in kept if i not in newest and path[int(i[1:])].role != "system"]
    if report.over_budget:
        assert policy.name == "full" or (not history and not recalled_ids)
    else:
        assert report.tokens <= report.budget

    # Newest input last: every usable item of the newest round is sent, at the end.
    newest_kept = [i for i in newest if i in kept]
    assert list(kept[len(kept) - len(newest_kept) :]) == newest_kept
    assert newest_kept, "the new input is always sent"
    if newest_kept and path[int(newest_kept[-1][1:])].role == "user":
        assert messages[-1].role == "user"

    # Every item has one fate; the counts agree with the fates; the runs are the path's.
    fates = report.fates([item.id for item in path])
    assert report.items == len(path)
    for fate in ("kept", "recalled", "summarized", "dropped"):
        assert sum(1 for f in fates.values() if f == fate) == report.count(fate)  # type: ignore[arg-type]
    assert all(0 <= first <= last < len(path) for first, last in (*report.kept, *report.recalled))
    assert not set(kept) & set(recalled_ids)

    # Tool calls and their results travel together.
    calls: set[str] = set()
    answered: set[str] = set()
    for message in messages:
        calls.update(call.id for call in message.tool_calls)
        if message.role == "tool":
            assert message.tool_call_id in calls
            answered.add(message.tool_call_id)
    assert calls == answered

    # No reasoning replayed unless the policy asks; tool_chain: only on the assistant messages
    # with tool calls after the last user message (the active tool-call chain).
    if policy.reasoning_replay == "drop":
        assert all(m.reasoning is None for m in messages)
    if policy.reasoning_replay == "tool_chain":
        last_user = max((n for n, m in enumerate(messages) if m.role == "user"), default=-1)
        for n, m in enumerate(messages):
            if m.reasoning is not None:
                assert n > last_user and m.role == "assistant" and m.tool_calls, (n, m)
    if policy.reasoning_replay == "keep":
        stored = {item.reasoning for item in path}
        assert all(m.reasoning in stored for m in messages if m.reasoning is not None)

    # The report is stored as JSON and read back whole.
    assert codec.decode_report(orjson.loads(orjson.dumps(codec.encode_report(report)))) == report


@given(path=conversations(), window_tokens=st.integers(50, 3000))
def test_never_over_budget_with_qwen_counts(qwen: QwenTokenizer, path: list[ItemRecord], window_tokens: int) -> None:
    for name in ("window", "summary", "retrieval", "auto"):
        messages, report = plan_context(
            SYSTEM, path, policy=PRESETS[name], window_tokens=window_tokens, reserved_output=0, tokenizer=qwen
        )
        assert report.tokens == sum(message_tokens(m, qwen) for m in messages) + REPLY_PRIMER
        assert report.tokens <= window_tokens or report.over_budget


# -- the cache property -------------------------------------------------------------------------


@st.composite
def growing(draw: st.DrawFn) -> tuple[list[tuple[str, str]], int]:
    turns = draw(st.lists(st.tuples(st.text(max_size=60), st.text(max_size=120)), min_size=1, max_size=60))
    return turns, draw(st.integers(1000, 4000))


@pytest.mark.parametrize("name", ["window", "summary"])
@given(conversation=growing())
def test_the_prefix_stays_identical_between_block_drops(
    name: str, conversation: tuple[list[tuple[str, str]], int]
) -> None:
    turns, window_tokens = conversation
    policy = PRESETS[name]
    summary = Summary("The user plans a trip to Paris in May.", through_item_id="i1")
    builder = PathBuilder()
    builder.round("Plan a trip to Paris.", "Gladly: when?")
    previous: list[Message] | None = None
    breaks: list[int] = []
    largest = window_budget = 0
    for t, (question, answer) in enumerate(turns):
        builder.add("user", question)
        messages, report = _plan(builder.items, policy, window_tokens, summary=summary)
        assert not report.over_budget
        if previous is not None and messages[: len(previous)] != previous:
            breaks.append(t)
        previous = messages
        parts = report.tokens_by_part
        window_budget = window_tokens - parts["system"] - parts["summary"] - parts["template"]
        builder.add("assistant", answer)
        largest = max(largest, sum(message_tokens(item.to_message(), TOKENIZER) for item in builder.items[-2:]))
    # The prefix changes only at a block drop, and then the rounds must grow by more than
    # (1 - low_water) x the window's budget before the next one.
    assert largest <= policy.low_water * window_budget
    gap = int((1 - policy.low_water) * window_budget / largest)
    assert all(b - a >= gap for a, b in itertools.pairwise(breaks))


def test_a_long_conversation_breaks_its_prefix_rarely() -> None:
    builder = PathBuilder()
    previous: list[Message] | None = None
    breaks = 0
    for t in range(150):
        builder.add("user", f"Question {t}: what about day {t} of the trip? " * 3)
        messages, report = _plan(builder.items, PRESETS["window"], window_tokens=2000)
        assert report.tokens <= 2000
        breaks += previous is not None and messages[: len(previous)] != previous
        previous = messages
        builder.add("assistant", f"On day {t} you could visit a museum and a park. " * 4)
    naive = 0
    previous = None
    for n in range(2, len(builder.items) + 1, 2):  # the same turns under a one-round sliding window
        messages, _ = _plan(builder.items[: n - 1], replace(PRESETS["window"], low_water=1.0), window_tokens=2000)
        naive += previous is not None and messages[: len(previous)] != previous
        previous = messages
    assert breaks <= 150 // 8
    assert naive > 100


# -- composition --------------------------------------------------------------------------------


def test_full_matches_build_messages() -> None:
    builder = PathBuilder()
    builder.round("hi", "hello", reasoning="greet back")
    builder.round("2+2?", None)
    builder.add("assistant", None, status="failed")
    builder.add("user", "again?")
    messages, report = _plan(builder.items, PRESETS["full"])
    expected, old = build_messages(SYSTEM, builder.items)
    assert messages == expected
    assert (report.kept, report.count("dropped")) == (old.kept, old.count("dropped"))


def test_full_never_drops_but_reports_the_overflow() -> None:
    builder = PathBuilder()
    for i in range(10):
        builder.round(f"question {i} " * 20, f"answer {i} " * 20)
    builder.add("user", "last")
    _, report = _plan(builder.items, PRESETS["full"], window_tokens=300)
    assert report.count("dropped") == 0 and report.over_budget


def test_budget_is_the_smaller_of_policy_and_window() -> None:
    builder = PathBuilder()
    builder.add("user", "hi")
    assert _plan(builder.items, replace(PRESETS["window"], budget=500), 8192, 1024)[1].budget == 500
    assert _plan(builder.items, replace(PRESETS["window"], budget=50_000), 8192, 1024)[1].budget == 7168
    assert _plan(builder.items, PRESETS["window"], 100, 1024)[1].budget == 0


def test_the_newest_round_alone_over_budget_is_reported() -> None:
    builder = PathBuilder()
    builder.round("short", "reply")
    builder.add("user", "very long " * 500)
    messages, report = _plan(builder.items, PRESETS["window"], window_tokens=200)
    assert report.over_budget
    assert fated(report, builder.items, "kept") == ("i2",) and fated(report, builder.items, "dropped") == ("i0", "i1")
    assert [m.role for m in messages] == ["system", "user"]


def test_summary_sits_after_the_system_prompt_and_replaces_what_it_covers() -> None:
    builder = PathBuilder()
    for i in range(4):
        builder.round(f"q{i}", f"a{i}")
    builder.add("user", "q4")
    summary = Summary("q0..q1 were about Paris.", through_item_id="i3")
    messages, report = _plan(builder.items, PRESETS["summary"], summary=summary)
    assert messages[0] == Message.of("system", f"{SYSTEM}\n\n{summary_block(summary.text)}")
    assert [m.text for m in messages[1:]] == ["q2", "a2", "q3", "a3", "q4"]
    assert fated(report, builder.items, "summarized") == ("i0", "i1", "i2", "i3") and report.summarized == ((0, 3),)
    alone = message_tokens(Message.of("system", SYSTEM), TOKENIZER)
    assert report.tokens_by_part["summary"] == message_tokens(messages[0], TOKENIZER) - alone
    # Without a system prompt the summary is the one system message.
    bare, _ = _plan(builder.items, PRESETS["summary"], summary=summary, system=None)
    assert bare[0] == Message.of("system", summary_block(summary.text))
    assert [m.role for m in bare[1:]] == ["user", "assistant"] * 2 + ["user"]
    # The window policy ignores summaries; so does every policy for another branch's summary.
    assert _plan(builder.items, PRESETS["window"], summary=summary)[1].summarized == ()
    other = Summary("elsewhere", through_item_id="not-on-this-path")
    assert _plan(builder.items, PRESETS["auto"], summary=other)[1].summarized == ()


def test_recalled_rounds_are_chronological_marked_and_within_budget() -> None:
    builder = PathBuilder()
    for i in range(12):
        builder.round(f"question {i} " * 10, f"answer {i} " * 10)
    builder.add("user", "what did you say about question 2?")
    recalled = [
        Recalled(("i6", "i7"), score=0.9),
        Recalled(("i4", "i5"), score=2.5),
        Recalled(("i22", "i23"), score=9.0),  # in the window already: skipped
        Recalled(("nope",), score=9.0),  # not on this path: skipped
    ]
    sixty = Policy("retrieval", recent_share=0.6)
    messages, report = _plan(builder.items, sixty, window_tokens=700, recalled=recalled)
    assert fated(report, builder.items, "recalled") == ("i4", "i5", "i6", "i7")
    assert report.recalled_scores == {4: 2.5, 5: 2.5, 6: 0.9, 7: 0.9}
    # Quoted at the end of the one system message, before the window.
    block = messages[0]
    assert block.role == "system" and block.text.startswith(f"{SYSTEM}\n\n{RECALLED_HEADER}\n<recalled>\n")
    assert block.text.endswith("\n</recalled>")
    assert block.text.index("question 2") < block.text.index("question 3")
    assert "user: question 2" in block.text and "assistant: answer 3" in block.text
    assert [m.role for m in messages[1:]] == ["user", "assistant"] * ((len(messages) - 2) // 2) + ["user"]
    assert messages[-1] == Message.of("user", "what did you say about question 2?")
    alone = message_tokens(Message.of("system", SYSTEM), TOKENIZER)
    assert report.tokens_by_part["recalled"] == message_tokens(block, TOKENIZER) - alone
    assert report.budget is not None and report.tokens <= report.budget
    # With little room only the best-scored round is recalled.
    _, tight = _plan(builder.items, replace(sixty, budget=242), recalled=recalled)
    assert tight.recalled == ((4, 5),)
    # The window policy never recalls.
    assert _plan(builder.items, PRESETS["window"], window_tokens=700, recalled=recalled)[1].recalled == ()


def test_recalled_text_given_by_the_retriever_is_used_verbatim() -> None:
    builder = PathBuilder()
    for i in range(6):
        builder.round(f"question {i} " * 30, f"answer {i} " * 30)
    builder.add("user", "and?")
    recalled = [Recalled(("i0", "i1"), 1.0, text="user: question 0 (abridged)")]
    messages, report = _plan(builder.items, PRESETS["auto"], window_tokens=500, recalled=recalled)
    assert fated(report, builder.items, "recalled") == ("i0", "i1")
    assert messages[0].text == f"{SYSTEM}\n\n{recalled_block(['user: question 0 (abridged)'])}"
    # After a summary, the summary first: it changes less often.
    summary = Summary("Earlier: trips.", through_item_id="i1")
    composed, _ = _plan(builder.items, PRESETS["auto"], window_tokens=500, summary=summary, recalled=recalled)
    assert composed[0].text.startswith(f"{SYSTEM}\n\n{summary_block('Earlier: trips.')}\n\n{RECALLED_HEADER}")


def test_the_summary_yields_to_the_best_recalled_round_only_when_that_round_fits_in_its_place() -> None:
    builder = PathBuilder()
    for i in range(12):
        builder.round(f"question {i} " * 10, f"answer {i} " * 10)
    builder.add("user", "what did you say about question 2?")
    items = builder.items
    summary = Summary("The user asked numbered questions and got numbered answers. " * 3, through_item_id="i9")
    best, other = Recalled(("i4", "i5"), 2.5), Recalled(("i6", "i7"), 0.9)
    # At 300 tokens the window (a tenth) holds no round: what a plan sends is the head, the
    # summary or not, the recalled rounds and the new input.
    parts = _plan(items, replace(PRESETS["auto"], budget=300), summary=summary)[1].tokens_by_part
    summary_tokens, bare = parts["summary"], parts["system"] + parts["input"] + parts["template"]
    best_tokens = _plan(items, replace(PRESETS["auto"], budget=300), recalled=[best])[1].tokens_by_part["recalled"]
    assert parts["history"] == 0 and summary_tokens > 50 and best_tokens > 50

    def plan(budget: int, recalled: Sequence[Recalled] = (best, other)) -> tuple[list[Message], ContextReport]:
        return _plan(items, replace(PRESETS["auto"], budget=budget), summary=summary, recalled=recalled)

    # Room for both: the summary stays and the best round is quoted after it.
    _, both = plan(bare + summary_tokens + best_tokens + 5)
    assert both.summarized == ((0, 9),) and both.recalled == ((4, 5),)
    # The best round fits only in the summary's place: it takes it, and the report says so
    # (+ 1: the planner's estimate sums the quoted blocks, a token over the joined quotation).
    for budget in (bare + best_tokens + 1, bare + summary_tokens + best_tokens - 5):
        messages, report = plan(budget)
        recalled = fated(report, items, "recalled")
        assert recalled[:2] == ("i4", "i5") and report.summarized == () and report.tokens_by_part["summary"] == 0
        assert summary.text not in messages[0].text and "question 2" in messages[0].text
        assert fated(report, items, "dropped") == tuple(f"i{n}" for n in range(24) if f"i{n}" not in recalled)
        assert report.tokens <= budget
    # Too big to fit even without the summary: the summary stays, nothing is recalled.
    _, neither = plan(bare + best_tokens - 5)
    assert neither.summarized == ((0, 9),) and neither.recalled == ()
    # Only the best round counts: another one that would fit in the summary's place does not
    # take it (a smaller, lesser round).
    small = Recalled(("i8",), 0.5, text="user: question 8")
    _, lesser = plan(bare + summary_tokens + 5, (best, small))
    assert lesser.summarized == ((0, 9),)
    # A policy that does not recall never yields its summary.
    summary_only = replace(PRESETS["summary"], budget=bare + best_tokens + 1)
    assert _plan(items, summary_only, summary=summary, recalled=[best])[1].summarized == ((0, 9),)


def test_old_images_become_placeholders_in_steps() -> None:
    policy = replace(PRESETS["window"], keep_images_rounds=2)
    builder = PathBuilder()
    omitted: list[int] = []
    for t in range(7):
        builder.add("user", content=(ImagePart(PNG_280), TextPart(f"picture {t}")))
        messages, _ = _plan(builder.items, policy)
        users = [m for m in messages if m.role == "user"]
        assert isinstance(users[-1].content[0], ImagePart)  # the newest input keeps its image
        assert isinstance(users[-2].content[0], ImagePart) if len(users) > 1 else True
        omitted.append(sum(m.content[0] == TextPart("[image omitted]") for m in users))
        builder.add("assistant", "a picture")
    assert omitted == [0, 0, 0, 2, 2, 4, 4]  # moves every 2 turns, never one round per turn


def test_system_items_before_the_first_user_are_pinned() -> None:
    builder = PathBuilder()
    builder.add("system", "Answer in French.")
    builder.add("assistant", "Bonjour!")
    for i in range(10):
        builder.round(f"q{i} " * 30, f"a{i} " * 30)
    builder.add("user", "fin")
    messages, report = _plan(builder.items, PRESETS["window"], window_tokens=400)
    assert messages[:2] == [Message.of("system", SYSTEM), Message.of("system", "Answer in French.")]
    assert fated(report, builder.items, "kept")[0] == "i0" and "i1" in fated(report, builder.items, "dropped")


def test_max_rounds_keeps_the_last_n_rounds_in_blocks() -> None:
    builder = PathBuilder()
    sent = []
    for t in range(10):
        builder.add("user", f"q{t}")
        messages, _ = _plan(builder.items, replace(PRESETS["window"], max_rounds=6))
        sent.append(sum(m.role == "user" for m in messages) - 1)
        builder.add("assistant", f"a{t}")
    assert sent == [0, 1, 2, 3, 4, 5, 6, 3, 4, 5]


def test_policies_are_validated_and_presets_named() -> None:
    assert set(PRESETS) == {"full", "window", "summary", "retrieval", "auto"}
    assert preset("auto").recent_share == 0.1 and preset("window").recent_share == 1.0
    with pytest.raises(InvalidInput, match="unknown context policy"):
        preset("everything")
    for bad in (
        {"name": "nope"},
        {"budget": -1},
        {"recent_share": 0},
        {"low_water": 1.5},
        {"max_rounds": -2},
        {"keep_images_rounds": 0},
    ):
        with pytest.raises(InvalidInput, match="invalid context policy"):
            Policy(**bad)


def test_an_empty_path_is_just_the_system_prompt() -> None:
    messages, report = _plan([], PRESETS["auto"])
    assert messages == [Message.of("system", SYSTEM)]
    assert report.kept == () and report.tokens_by_part["input"] == 0


def test_rounds_remembered_between_turns_are_never_another_paths() -> None:
    """Rounds are remembered by their items' ids while the records are the same objects; the same
    ids on new records (another path, a stateless request) are planned afresh."""
    first, second = PathBuilder(), PathBuilder()
    for n in range(3):
        first.round(f"question {n} about Paris", f"answer {n}")
        second.round(f"question {n} about Rome, longer", f"answer {n}, longer too")
    first.add("user", "and?")
    second.add("user", "and?")
    recalled = [Recalled(("i0", "i1"), 1.0)]
    small = Policy("retrieval", budget=110, recent_share=0.3)
    for builder, city, other in ((first, "Paris", "Rome"), (second, "Rome", "Paris"), (first, "Paris", "Rome")):
        for policy in (PRESETS["window"], small):
            messages, report = _plan(builder.items, policy, recalled=recalled)
            text = "\n".join(m.text for m in messages)
            assert city in text and other not in text, (policy.name, text)
            assert report.tokens == sum(message_tokens(m, TOKENIZER) for m in messages) + REPLY_PRIMER
        assert report.recalled == ((0, 1),) and f"user: question 0 about {city}" in messages[0].text
