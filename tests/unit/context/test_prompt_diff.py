"""``multiturn.context.prompt_diff``: a stored report rebuilds exactly the prompt the planner sent
(a property over generated conversations and policies), and each step that breaks a cached
prefix is found where it breaks it and named."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from multiturn.context.plan import PRESETS, Policy, plan_context
from multiturn.context.prompt_diff import (
    PromptParts,
    common_prefix,
    explain,
    message_body,
    parts_of,
    render,
    segment_at,
    text_of,
)
from multiturn.context.retrieval import RECALLED_HEADER, Recalled, render_items
from multiturn.context.summary import SUMMARY_HEADER, SUMMARY_PREFIX, Summary, summary_block
from multiturn.memory.ranking import units
from multiturn.records import ItemRecord
from multiturn.tokens import EstimateTokenizer
from multiturn.types import ContextReport, ImagePart, Message

from .paths import PathBuilder, conversations

TOKENIZER = EstimateTokenizer()
SYSTEM = "You are a helpful travel assistant."


def chatml(messages: Sequence[Message]) -> str:
    return "".join(f"<|im_start|>{m.role}\n{message_body(m)}<|im_end|>\n" for m in messages)


def _plan(
    path: Sequence[ItemRecord],
    policy: Policy,
    *,
    window: int = 100_000,
    summary: Summary | None = None,
    recalled: Sequence[Recalled] = (),
    system: str | None = SYSTEM,
) -> tuple[list[Message], ContextReport]:
    return plan_context(
        system,
        path,
        policy=policy,
        window_tokens=window,
        reserved_output=0,
        tokenizer=TOKENIZER,
        summary=summary,
        recalled=recalled,
    )


def _rebuilt(
    path: Sequence[ItemRecord],
    report: ContextReport,
    *,
    summary: Summary | None = None,
    system: str | None = SYSTEM,
    replay: str = "drop",
    answer: Message | None = None,
) -> PromptParts:
    history = list(path)
    quoted = [(ids, render_items(items)) for ids, items in units(history)]
    return parts_of(
        system,
        path,
        report,
        summary=summary.text if summary else None,
        recalled=quoted,
        answer=answer,
        reasoning_replay=replay,  # type: ignore[arg-type]
    )


# -- the rebuilt prompt is the planner's ---------------------------------------------------------


@settings(max_examples=100)
@given(
    path=conversations(),
    policy=st.sampled_from(list(PRESETS.values())),
    replay=st.sampled_from(["drop", "tool_chain", "keep"]),
    window=st.integers(50, 3000),
    system=st.sampled_from([SYSTEM, None, ""]),
    data=st.data(),
)
def test_a_stored_report_rebuilds_the_prompt_the_planner_sent(
    path: list[ItemRecord], policy: Policy, replay: str, window: int, system: str | None, data: st.DataObject
) -> None:
    # media the planner replaces by placeholders to fit are not in the report: text-only paths
    assume(not any(isinstance(p, ImagePart) for item in path for p in item.content))
    policy = replace(policy, reasoning_replay=replay)  # type: ignore[arg-type]
    summary = None
    if data.draw(st.booleans()):
        through = data.draw(st.sampled_from(path))
        summary = Summary(text=data.draw(st.text("abc xyz", min_size=1, max_size=80)), through_item_id=through.id)
    candidates = [Recalled(ids, data.draw(st.floats(0.1, 10))) for ids, _ in units(path) if data.draw(st.booleans())]
    messages, report = _plan(path, policy, window=window, summary=summary, recalled=candidates, system=system)
    rebuilt = _rebuilt(path, report, summary=summary, system=system, replay=replay)
    assert text_of(render(rebuilt)) == chatml(messages)


def test_segments_name_each_component_in_the_planners_order() -> None:
    b = PathBuilder()
    for n in range(6):
        b.round(f"question {n} about Lisbon", f"answer {n}")
    b.add("user", "and the trams?")
    summary = Summary("They talked about Lisbon.", through_item_id="i3")
    recalled = [Recalled(("i4",), 5.0)]
    _, report = _plan(b.items, PRESETS["auto"], window=160, summary=summary, recalled=recalled)
    segments = render(_rebuilt(b.items, report, summary=summary))
    kinds = [s.kind for s in segments]
    assert kinds[:4] == ["system", "summary", "recalled", "head_end"]
    assert kinds[-1] == "input" and set(kinds[4:-1]) <= {"window"}
    assert segments[1].text == "\n\n" + summary_block(summary.text)
    assert segments[2].text.startswith("\n\n" + RECALLED_HEADER)
    assert segments[-1].item_ids == ("i12",)


# -- explaining a break --------------------------------------------------------------------------


def _conversation(rounds: int) -> PathBuilder:
    b = PathBuilder()
    for n in range(rounds):
        b.round(f"Tell me fact number {n} about the city of Porto, please.", f"Fact {n}: Porto is old.")
    return b


def _turn(
    b: PathBuilder, policy: Policy, *, window: int = 100_000, summary: Summary | None = None, **rest: object
) -> PromptParts:
    _, report = _plan(b.items, policy, window=window, summary=summary)
    return replace(_rebuilt(b.items, report, summary=summary), **rest)  # type: ignore[arg-type]


def test_a_prompt_that_extends_the_previous_one_breaks_nothing() -> None:
    b = _conversation(3)
    b.add("user", "And the river?")
    before = _turn(b, PRESETS["window"], answer=Message.of("assistant", "The Douro."))
    b.add("assistant", "The Douro.")
    b.add("user", "How long is it?")
    diff = explain(before, _turn(b, PRESETS["window"]), TOKENIZER, cached_tokens=40)
    assert diff.cause == "none" and not diff.breaks_prefix
    assert diff.common_chars == len(text_of(render(before, with_answer=True)))
    assert diff.common_tokens == diff.previous_tokens < diff.current_tokens
    assert diff.cached_tokens == 40 and diff.dropped_ids == ()


def test_a_window_drop_is_found_in_the_window_with_the_items_it_dropped() -> None:
    b = PathBuilder()
    policy = PRESETS["window"]
    causes = []
    before: PromptParts | None = None
    for n in range(30):
        b.add("user", f"Tell me fact number {n} about the city of Porto, please.")
        after = _turn(b, policy, window=300)
        if before is not None:
            diff = explain(before, after, TOKENIZER)
            causes.append(diff.cause)
            if diff.cause == "window_drop":
                dropped = diff
        answer = Message.of("assistant", f"Fact {n}: Porto is old.")
        before = replace(after, answer=answer)
        b.add("assistant", answer.text)
    # blocks: a few drops over 30 turns, and every other turn extends the previous prompt
    assert 1 <= causes.count("window_drop") <= 6
    assert set(causes) == {"none", "window_drop"}
    assert dropped.current_segment == "window" and dropped.previous_segment == "window"
    assert dropped.breaks_prefix and "window dropped" in dropped.explanation
    positions = [int(i[1:]) for i in dropped.dropped_ids]
    assert len(positions) >= 4 and positions == sorted(positions)
    # they part in the first window message, at the fact's number (two numbers may share a digit)
    opening = len(f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\nTell me fact number ")
    assert opening <= dropped.common_chars <= opening + 1


def test_a_summary_that_appears_with_a_policy_change_is_named_with_both() -> None:
    b = _conversation(8)
    b.add("user", "Summarize?")
    before = _turn(b, PRESETS["window"], answer=Message.of("assistant", "Sure."))
    b.add("assistant", "Sure.")
    b.add("user", "What was fact 1?")
    summary = Summary("Facts 0-3 about Porto.", through_item_id="i7")
    diff = explain(before, _turn(b, PRESETS["summary"], summary=summary), TOKENIZER)
    assert diff.cause == "summary_update"
    assert diff.policy_change == ("window", "summary")
    assert diff.current_segment == "summary" and diff.previous_segment == "system"
    assert diff.explanation.startswith("The policy changed from window to summary; ")
    assert SUMMARY_HEADER[:40] in diff.current_excerpt and SUMMARY_PREFIX not in diff.previous_excerpt


def test_a_recall_change_after_the_same_summary() -> None:
    b = _conversation(4)
    b.add("user", "x")
    common = {"summary": "S.", "head": (Message.of("system", SYSTEM),)}
    before = PromptParts(**common, recalled=("user: fact 1",), answer=Message.of("assistant", "y"))  # type: ignore[arg-type]
    after = PromptParts(**common, recalled=("user: fact 2",))  # type: ignore[arg-type]
    diff = explain(before, after, TOKENIZER)
    assert diff.cause == "recall_change" and diff.current_segment == diff.previous_segment == "recalled"
    added = PromptParts(**common, recalled=("user: fact 1", "user: fact 3"))  # type: ignore[arg-type]
    assert explain(replace(before, recalled=()), added, TOKENIZER).cause == "recall_change"


def test_a_system_edit() -> None:
    before = PromptParts(head=(Message.of("system", "Be brief."),), answer=Message.of("assistant", "ok"))
    after = PromptParts(head=(Message.of("system", "Be verbose."),))
    diff = explain(before, after, TOKENIZER)
    assert diff.cause == "system_edit" and diff.common_chars == len("<|im_start|>system\nBe ")


def test_reasoning_not_replayed_rewrites_the_answer() -> None:
    question = ("i0", Message.of("user", "2+2?"))
    before = PromptParts(newest=(question,), answer=Message("assistant", Message.of("assistant", "4").content, "add"))
    after = PromptParts(
        window=(question, ("i1", Message.of("assistant", "4"))), newest=(("i2", Message.of("user", "and 3+3?")),)
    )
    diff = explain(before, after, TOKENIZER)
    assert diff.cause == "answer_rewritten" and diff.previous_segment == "answer"


def test_another_model_shares_no_cache() -> None:
    parts = PromptParts(head=(Message.of("system", "x"),), model="qwen-plus")
    diff = explain(replace(parts, answer=Message.of("assistant", "a")), replace(parts, model="qwen-max"), TOKENIZER)
    assert diff.cause == "model_change" and "qwen-max" in diff.explanation


def test_common_prefix_and_segment_lookup() -> None:
    assert common_prefix("abcdef", "abcxyz") == 3
    assert common_prefix("abc", "abcdef") == 3
    assert common_prefix("", "a") == 0
    segments = render(PromptParts(head=(Message.of("system", "s"),), newest=(("i0", Message.of("user", "u")),)))
    text = text_of(segments)
    assert segment_at(segments, 0) is segments[0]
    assert segment_at(segments, len(text) - 1) is segments[-1]
    assert segment_at(segments, len(text)) is None
