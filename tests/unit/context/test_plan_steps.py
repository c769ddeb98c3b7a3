"""The planner's named steps, one by one: budget, summary, head, blocks, window, media, recall,
report (``plan_context`` composes them; its properties are in ``test_plan_policies.py``)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from multiturn.context.blocks import build_block, inline_bytes, omit_media, replayed
from multiturn.context.budget import prompt_budget
from multiturn.context.cache import PlanCache
from multiturn.context.media import MEDIA_STEP, MEDIA_TRIES, fit_media, media_boundary, media_steps
from multiturn.context.plan import (
    PRESETS,
    Policy,
    build_report,
    pinned_items,
    plan_head,
    plan_recall,
    sent_ids,
    usable_summary,
)
from multiturn.context.recent import Recent, Window, strain, window_budget, window_items
from multiturn.context.retrieval import RECALLED_HEADER, Recalled, quote, select_recalled
from multiturn.context.summary import Summary, summary_block
from multiturn.records import ItemRecord
from multiturn.tokens import EstimateTokenizer, message_tokens
from multiturn.types import AudioPart, ImagePart, Message, TextPart, ToolCall, VideoPart

from .paths import PNG_280, PathBuilder

TOKENIZER = EstimateTokenizer()


def _count(message: Message) -> int:
    return message_tokens(message, TOKENIZER)


def _rounds(n: int, *, words: int = 1) -> PathBuilder:
    builder = PathBuilder()
    for i in range(n):
        builder.round(f"q{i} " * words, f"a{i} " * words)
    builder.add("user", "new")
    return builder


def _recent(path: list[ItemRecord], policy: Policy, *, through: int = -1, pinned: set[str] | None = None) -> Recent:
    cache = PlanCache(size=256)
    starts, _ = cache.shape(path)
    return Recent(
        path,
        starts,
        cache.positions(path),
        through=through,
        pinned=pinned or set(),
        policy=policy,
        count=cache.counter(TOKENIZER),
        cache=cache,
    )


# -- budget --------------------------------------------------------------------------------------


def test_the_budget_is_the_window_less_the_output_under_the_policys_ceiling() -> None:
    assert prompt_budget(8192, 1024, PRESETS["window"]) == 7168
    assert prompt_budget(8192, 1024, replace(PRESETS["window"], budget=500)) == 500
    assert prompt_budget(8192, 1024, replace(PRESETS["window"], budget=50_000)) == 7168
    assert prompt_budget(100, 1024, PRESETS["window"]) == 0  # never negative


# -- summary and head ----------------------------------------------------------------------------


def test_pinned_items_are_the_preambles_system_items() -> None:
    builder = PathBuilder()
    builder.add("system", "Answer in French.")
    builder.add("system", "broken", status="failed")
    builder.add("assistant", "Bonjour!")
    builder.round("q", "a")
    starts, _ = PlanCache().shape(builder.items)
    assert [i.id for i in pinned_items(builder.items, starts)] == ["i0"]
    plain = _rounds(2).items
    assert pinned_items(plain, PlanCache().shape(plain)[0]) == []  # no preamble
    only = builder.items[:1]
    assert [i.id for i in pinned_items(only, PlanCache().shape(only)[0])] == ["i0"]  # a preamble alone
    assert pinned_items([], ()) == []


def test_a_summary_is_used_only_for_a_prefix_of_this_path_before_the_new_input() -> None:
    path = _rounds(3).items  # i0..i5 answered rounds, i6 the new input
    positions = PlanCache().positions(path)
    summary = Summary("so far", through_item_id="i3")
    assert usable_summary(PRESETS["summary"], summary, positions, 6) == (summary, 3)
    assert usable_summary(PRESETS["auto"], summary, positions, 6) == (summary, 3)
    assert usable_summary(PRESETS["window"], summary, positions, 6) == (None, -1)  # the policy has none
    assert usable_summary(PRESETS["retrieval"], summary, positions, 6) == (None, -1)
    elsewhere = Summary("another branch", through_item_id="x9")
    assert usable_summary(PRESETS["summary"], elsewhere, positions, 6) == (None, -1)
    claims_input = Summary("too far", through_item_id="i6")
    assert usable_summary(PRESETS["summary"], claims_input, positions, 6) == (None, -1)
    assert usable_summary(PRESETS["summary"], None, positions, 6) == (None, -1)


def test_the_head_is_the_system_prompt_and_pinned_items_with_the_summary_last() -> None:
    pinned = PathBuilder().add("system", "Answer in French.")
    summary = Summary("We spoke of Paris.", through_item_id="i0")
    head = plan_head("Be brief.", [pinned], summary, _count)
    assert head.messages == (
        Message.of("system", "Be brief."),
        Message.of("system", f"Answer in French.\n\n{summary_block('We spoke of Paris.')}"),
    )
    plain = [Message.of("system", "Be brief."), Message.of("system", "Answer in French.")]
    assert head.tokens == sum(_count(m) for m in plain)
    assert head.summary_tokens == sum(_count(m) for m in head.messages) - head.tokens > 0
    bare = plan_head(None, [], None, _count)
    assert (bare.messages, bare.tokens, bare.summary_tokens) == ((), 0, 0)
    alone = plan_head(None, [], summary, _count)  # the summary is the one system message
    assert alone.messages == (Message.of("system", summary_block(summary.text)),) and alone.tokens == 0


# -- blocks --------------------------------------------------------------------------------------


def test_a_block_pairs_tool_calls_and_leaves_out_what_cannot_be_sent() -> None:
    builder = PathBuilder()
    builder.add("user", "look both up")
    calls = (ToolCall("c1", "lookup", "{}"), ToolCall("c2", "lookup", "{}"))
    builder.add("assistant", None, tool_calls=calls, reasoning="two lookups")
    builder.add("tool", "found 1", tool_call_id="c1")  # c2 never answered
    builder.add("tool", "stray", tool_call_id="c9")  # answers no call
    builder.add("assistant", None, status="failed")
    builder.add("assistant", None)  # empty
    builder.add("assistant", "done", reasoning="thought")
    block = build_block(builder.items, replay="drop", omit=False, count=_count)
    assert block.kept == ("i0", "i1", "i2", "i6") and block.dropped == ("i3", "i4", "i5")
    assert block.messages[1].tool_calls == (calls[0],) and all(m.reasoning is None for m in block.messages)
    assert block.tokens == sum(_count(m) for m in block.messages)
    assert block.arrival == _count(block.messages[0])  # opened by its user item: that item alone
    chain = build_block(builder.items, replay="tool_chain", omit=False, count=_count)
    assert [m.reasoning for m in chain.messages] == [None, "two lookups", None, None]
    keep = build_block(builder.items, replay="keep", omit=False, count=_count)
    assert [m.reasoning for m in keep.messages] == [None, "two lookups", None, "thought"]


def test_a_block_without_a_user_item_arrives_whole_and_counts_inline_media() -> None:
    builder = PathBuilder()
    builder.add("assistant", content=(TextPart("look"), ImagePart(PNG_280)))
    builder.add("assistant", "and this")
    block = build_block(builder.items, replay="drop", omit=False, count=_count)
    assert block.arrival == block.tokens and block.media_bytes == len(PNG_280)
    omitted = build_block(builder.items, replay="drop", omit=True, count=_count)
    assert omitted.messages[0].content == (TextPart("look"), TextPart("[image omitted]"))
    assert omitted.media_bytes == 0 and omitted.tokens < block.tokens


def test_media_placeholders_reasoning_and_inline_bytes() -> None:
    message = Message("user", (TextPart("hi"), ImagePart("https://x/a.png"), AudioPart(data="AAAA", format="wav")))
    assert omit_media(message).content == (TextPart("hi"), TextPart("[image omitted]"), TextPart("[audio omitted]"))
    text = Message.of("user", "hi")
    assert omit_media(text) is text
    thinking = Message("assistant", (TextPart("4"),), reasoning="2+2")
    assert replayed(thinking, "drop").reasoning is None and replayed(thinking, "keep") is thinking
    assert replayed(thinking, "tool_chain").reasoning is None  # no tool calls: not the chain
    assert inline_bytes(ImagePart(PNG_280)) == len(PNG_280) and inline_bytes(ImagePart("https://x/a.png")) == 0
    assert inline_bytes(AudioPart(data="AAAA")) == 4 and inline_bytes(TextPart("x" * 99)) == 0
    assert inline_bytes(VideoPart(frames=(PNG_280, "https://x/f.png"))) == len(PNG_280)


# -- window --------------------------------------------------------------------------------------


def test_the_window_share_is_what_the_memory_share_and_the_summary_leave() -> None:
    assert window_budget(PRESETS["window"], 1000, 0) == 1000
    assert window_budget(PRESETS["retrieval"], 1000, 0) == 100  # 10 % to recent rounds
    assert window_budget(PRESETS["auto"], 1000, 300) == 100  # the summary fits the memory share
    assert window_budget(PRESETS["auto"], 1000, 950) == 50  # a larger one takes from the window
    assert window_budget(PRESETS["summary"], 1000, 300) == 700
    assert window_budget(PRESETS["window"], -5, 0) == -5  # nothing left: the window drops all it can


def test_window_items_skip_what_the_summary_covers_and_what_is_pinned() -> None:
    path = _rounds(2).items
    assert [i.id for i in window_items(path[0:2], 0, -1, set())] == ["i0", "i1"]
    assert [i.id for i in window_items(path[0:2], 0, 0, set())] == ["i1"]
    assert [i.id for i in window_items(path[2:4], 2, 3, set())] == []
    assert [i.id for i in window_items(path[0:2], 0, -1, {"i1"})] == ["i0"]


def test_recent_chooses_from_the_rounds_after_the_summary() -> None:
    path = _rounds(4).items  # rounds 0-3 answered, round 4 the new input
    recent = _recent(path, PRESETS["summary"], through=3)
    assert (recent.first, recent.rounds, recent.newest_round) == (2, 3, 4)
    whole = recent.window(0, 100_000)
    assert whole.cut == 0 and [m.text for m in whole.messages] == ["q2 ", "a2 ", "q3 ", "a3 ", "new"]
    assert whole.tokens == sum(_count(m) for m in whole.messages) and whole.input_tokens == _count(whole.messages[-1])


def test_the_window_cuts_in_blocks_and_full_never_does() -> None:
    path = _rounds(12, words=10).items
    size = sum(_count(Message.of(r, f"{r[0]}0 " * 10)) for r in ("user", "assistant"))  # a round, about
    window = _recent(path, PRESETS["window"]).window(0, 4 * size)
    assert window.cut > 0 and window.tokens <= 4 * size
    assert window.history.size <= 4 and window.newest[0].kept == (path[-1].id,)
    full = _recent(path, PRESETS["full"]).window(0, 4 * size)
    assert full.cut == 0 and full.rounds == 13
    nothing = _recent(path, PRESETS["window"]).window(0, 0)  # only the new input stays
    assert nothing.cut == 12 and nothing.history.size == 0 and len(nothing.newest) == 1
    assert [item.id for item in nothing.items] == [path[-1].id]  # what it chooses from: never recalled


def test_strain_counts_rounds_dropped_then_tokens_then_bytes_over() -> None:
    builder = PathBuilder()
    builder.add("user", content=(TextPart("see"), ImagePart(PNG_280)))
    builder.add("assistant", "seen")
    builder.add("user", "and?")
    full = Policy("full", media_bytes=10)
    planned = _recent(builder.items, full).window(0, 1000)
    assert strain(planned, full, 1000, 0) == (0, 0, len(PNG_280) - 10)
    assert strain(planned, full, planned.tokens - 5, 0) == (0, 5, len(PNG_280) - 10)
    assert strain(planned, Policy("window"), 0, 0) == (0, 0, 0)  # a window is strained by its cut only
    assert strain(replace(planned, cut=3), Policy("window"), 0, 0) == (3, 0, 0)


# -- media ---------------------------------------------------------------------------------------


def test_the_policys_media_boundary_moves_in_steps_and_spares_the_newest_rounds() -> None:
    assert media_boundary(10, None) == 0
    assert [media_boundary(last, 2) for last in range(7)] == [0, 0, 0, 2, 2, 4, 4]
    assert all(media_boundary(last, 3) <= max(0, last + 1 - 3) for last in range(20))  # the newest 3 stay


def test_media_steps_go_oldest_first_in_steps_and_at_most_tries() -> None:
    assert media_steps([0, 1, 4], 0, 9) == [2, 6]
    assert media_steps([0, 1, 4], 2, 9) == [6]  # none at or before the current boundary
    assert media_steps([7, 8], 0, 8) == [8]  # never past the newest round
    many = media_steps(list(range(0, 40, 2)), 0, 40)
    assert len(many) == MEDIA_TRIES and many == sorted(many) and many[-1] == 40
    assert all(step % MEDIA_STEP == 0 for step in many)


def test_fit_media_takes_the_first_boundary_that_fits_else_the_least_strained() -> None:
    tried: list[int] = []

    def window_at(boundary: int) -> int:
        tried.append(boundary)
        return boundary

    def strain_of(boundary: int) -> tuple[int, int, int]:
        return (max(0, 6 - boundary), 0, 0)  # fits from boundary 6 on

    assert fit_media(window_at, strain_of, [0, 1, 3, 5, 7], first=0, boundary=0, newest_round=9) == 6
    assert tried == [0, 2, 4, 6]  # stops at the first that fits
    tried.clear()
    assert fit_media(window_at, lambda b: (5, 0, 0), [0, 3], first=0, boundary=0, newest_round=9) == 0
    assert tried == [0, 2, 4]  # none better: the policy's own boundary
    tried.clear()
    assert fit_media(window_at, strain_of, [9], first=0, boundary=0, newest_round=9) == 0
    assert tried == [0]  # only the newest round has media: nothing to try
    tried.clear()
    assert fit_media(window_at, strain_of, [0, 1], first=4, boundary=0, newest_round=9) == 0
    assert tried == [0]  # media only in rounds the window never sends


# -- recall --------------------------------------------------------------------------------------


def test_a_quote_is_the_rounds_rendering_and_its_cost_in_a_quotation() -> None:
    path = _rounds(2).items
    cache = PlanCache()
    positions = cache.positions(path)
    text, cost = quote(Recalled(("i0", "i1"), 1.0), path, positions, TOKENIZER.count, cache)
    assert text == "user: q0 \nassistant: a0 "
    assert cost == _count(Message.of("system", text)) - _count(Message.of("system", "")) + 1
    joined = _count(Message.of("system", f"x\n\n{text}")) - _count(Message.of("system", "x"))
    assert abs(cost - joined) <= 1  # the estimate of what it adds to a quotation
    given = quote(Recalled(("i0",), 1.0, text="abridged"), path, positions, TOKENIZER.count, cache)
    assert given[0] == "abridged"


def test_select_recalled_keeps_the_best_that_fit_in_chronological_order() -> None:
    path = _rounds(6, words=8).items
    cache = PlanCache()
    positions = cache.positions(path)

    def quoted(entry: Recalled) -> tuple[str, int]:
        return quote(entry, path, positions, TOKENIZER.count, cache)

    head = [Message.of("system", "sys")]
    entries = [
        Recalled(("i6", "i7"), 3.0),
        Recalled(("i2", "i3"), 2.0),
        Recalled(("i8", "i9"), 1.0),
        Recalled(("i2",), 9.0),  # a better round sharing an item: the other is skipped
        Recalled(("i0", "i1"), 5.0),
        Recalled(("zz",), 9.0),  # not on the path
    ]
    extended, chosen = select_recalled(entries, positions, {"i0"}, 10_000, _count, quoted, head)
    assert [e.item_ids for e in chosen] == [("i2",), ("i6", "i7"), ("i8", "i9")]  # i0 excluded; by position
    assert extended[0].text.startswith(f"sys\n\n{RECALLED_HEADER}\n<recalled>\nuser: q1")
    room = sum(_count(m) for m in extended) - _count(head[0])
    _, fewer = select_recalled(entries, positions, {"i0"}, room - 1, _count, quoted, head)
    assert len(fewer) < 3 and all(e in chosen for e in fewer)
    assert select_recalled(entries, positions, set(), 0, _count, quoted, head) == (head, [])


def test_plan_recall_needs_a_recalling_policy_and_skips_what_the_window_sends() -> None:
    path = _rounds(6).items
    cache = PlanCache()
    positions = cache.positions(path)
    head = (Message.of("system", "sys"),)
    recalled = [Recalled(("i0", "i1"), 1.0), Recalled(("i10", "i11"), 5.0)]
    policy = PRESETS["retrieval"]
    window = _recent(path, policy).window(0, 45)  # keeps rounds 4 and 5 (i8-i11) and the new input
    assert {"i10", "i11"} <= {item.id for item in window.items}

    def quoted(entry: Recalled) -> tuple[str, int]:
        return quote(entry, path, positions, TOKENIZER.count, cache)

    excluded = sent_ids((), window)
    assert {"i10", "i11"} <= excluded
    args = {"room": 1000, "excluded": excluded, "positions": positions, "count": _count, "quote": quoted}
    messages, chosen, tokens = plan_recall(policy, recalled, head, window=window, **args)  # type: ignore[arg-type]
    assert [e.item_ids for e in chosen] == [("i0", "i1")]
    assert tokens == _count(messages[0]) - _count(head[0]) > 0
    assert plan_recall(PRESETS["window"], recalled, head, window=window, **args) == (list(head), [], 0)  # type: ignore[arg-type]
    empty = Window(window.cut, window.history, ())
    assert plan_recall(policy, recalled, head, window=empty, **args) == (list(head), [], 0)  # type: ignore[arg-type]


# -- report --------------------------------------------------------------------------------------


def test_the_report_gives_every_item_its_fate_and_the_tokens_by_part() -> None:
    builder = PathBuilder()
    builder.add("system", "pinned")
    for i in range(5):
        builder.round(f"q{i}", f"a{i}")
    builder.add("user", "new")
    path = builder.items  # i0 pinned, i1..i10 rounds, i11 the new input
    cache = PlanCache()
    positions = cache.positions(path)
    recent = _recent(path, PRESETS["auto"], through=4, pinned={"i0"})
    window = recent.window(0, 100_000)
    by_part = {"system": 10, "summary": 5, "recalled": 0, "history": 20, "input": 3, "template": 3}
    report = build_report(
        PRESETS["auto"],
        path,
        positions,
        budget=40,
        pinned=[path[0]],
        through=4,
        window=window,
        recalled=[Recalled(("i3", "i4"), 2.0)],  # as a test: the report says what it is told
        by_part=by_part,
    )
    assert report.kept == ((0, 0), (5, 11)) and report.summarized == ((1, 4),)
    assert report.recalled == ((3, 4),) and report.recalled_scores == {3: 2.0, 4: 2.0}
    assert (report.tokens, report.budget, report.over_budget, report.items) == (41, 40, True, 12)


# -- the cache's counter -------------------------------------------------------------------------


def test_the_counter_counts_each_message_once() -> None:
    class Counting(EstimateTokenizer):
        calls = 0

        def count(self, text: str) -> int:
            Counting.calls += 1
            return super().count(text)

    cache = PlanCache(size=256)
    count = cache.counter(Counting())
    message = Message.of("user", "hello there")
    assert count(message) == message_tokens(message, TOKENIZER)
    calls = Counting.calls
    assert count(Message.of("user", "hello there")) == count(message) and Counting.calls == calls
    for n in range(100):
        count(Message.of("user", f"m{n}"))
    assert len(cache.counts) == 64  # bounded: a quarter of the size


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_plans_through_the_steps(name: str) -> None:
    """A smoke check that the steps compose for every preset (the properties are elsewhere)."""
    from multiturn.context.plan import plan_context

    path = _rounds(8, words=5).items
    messages, report = plan_context(
        "sys", path, policy=PRESETS[name], window_tokens=400, reserved_output=50, tokenizer=TOKENIZER
    )
    assert messages[0].role == "system" and messages[-1] == Message.of("user", "new")
    assert report.policy == name and report.tokens == sum(report.tokens_by_part.values())
