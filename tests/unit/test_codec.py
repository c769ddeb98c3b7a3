"""``multiturn.codec``: canonical types to JSON-safe dicts and back, exactly."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from multiturn import codec
from multiturn.errors import InvalidInput
from multiturn.types import (
    AudioPart,
    ContextReport,
    Cost,
    ImagePart,
    Part,
    TextPart,
    ToolCall,
    Usage,
    VideoPart,
    spans_of,
)

optional_text = st.none() | st.text()

parts: st.SearchStrategy[Part] = st.one_of(
    st.builds(TextPart, text=st.text()),
    st.builds(ImagePart, url=st.text(), detail=optional_text),
    st.builds(AudioPart, url=optional_text, data=optional_text, format=optional_text),
    st.builds(VideoPart, url=optional_text, frames=st.lists(st.text(), max_size=4).map(tuple)),
)
tool_calls = st.builds(ToolCall, id=st.text(min_size=1), name=st.text(min_size=1), arguments=st.text())
money = st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False)
costs = st.builds(
    Cost,
    currency=st.sampled_from(["USD", "CNY", "EUR"]),
    input=money,
    cached_input=money,
    output=money,
    conversation=st.none() | money,
)
usages = st.builds(
    Usage,
    prompt_tokens=st.integers(0, 2**31),
    completion_tokens=st.integers(0, 2**31),
    cached_tokens=st.integers(0, 2**31),
    reasoning_tokens=st.integers(0, 2**31),
    cost=st.none() | costs,
)
spans = st.sets(st.integers(0, 200), max_size=30).map(spans_of)
reports = st.builds(
    ContextReport,
    policy=st.sampled_from(["full", "window", "summary", "retrieval", "auto"]),
    items=st.integers(0, 201),
    kept=spans,
    recalled=spans,
    summarized=spans,
    budget=st.none() | st.integers(0, 2**31),
    tokens=st.integers(0, 2**31),
    tokens_by_part=st.dictionaries(
        st.sampled_from(["system", "summary", "recalled", "history", "input"]), st.integers(0, 10**6)
    ),
    recalled_scores=st.dictionaries(st.integers(0, 200), st.floats(allow_nan=False, allow_infinity=False)),
    over_budget=st.booleans(),
    error=st.none() | st.text(),
) | st.builds(ContextReport.unplanned, st.text())


@pytest.mark.parametrize(
    ("part", "encoded"),
    [
        (TextPart("hi"), {"type": "text", "text": "hi"}),
        (TextPart(""), {"type": "text", "text": ""}),
        (ImagePart(url="https://x/a.png"), {"type": "image", "url": "https://x/a.png"}),
        (ImagePart(url="data:,", detail="low"), {"type": "image", "url": "data:,", "detail": "low"}),
        (AudioPart(), {"type": "audio"}),
        (AudioPart(url="https://x/a.mp3"), {"type": "audio", "url": "https://x/a.mp3"}),
        (AudioPart(data="AAA=", format="wav"), {"type": "audio", "data": "AAA=", "format": "wav"}),
        (VideoPart(), {"type": "video"}),
        (VideoPart(url="https://x/v.mp4"), {"type": "video", "url": "https://x/v.mp4"}),
        (VideoPart(frames=("f1", "f2")), {"type": "video", "frames": ["f1", "f2"]}),
    ],
)
def test_encode_and_decode_each_part_type(part: Part, encoded: dict[str, Any]) -> None:
    assert codec.encode_part(part) == encoded
    assert codec.decode_part(encoded) == part


@given(st.lists(parts, max_size=6))
def test_parts_round_trip_through_json(values: list[Part]) -> None:
    encoded = codec.encode_parts(values)
    stored = json.loads(json.dumps(encoded))
    assert stored == encoded
    assert codec.decode_parts(stored) == tuple(values)


@given(st.text())
def test_text_round_trips(text: str) -> None:
    assert codec.decode_part(codec.encode_part(TextPart(text))) == TextPart(text)


@given(usages)
def test_usage_round_trips(usage: Usage) -> None:
    encoded = codec.encode_usage(usage)
    assert codec.decode_usage(json.loads(json.dumps(encoded))) == usage


@given(reports)
def test_reports_round_trip_through_json(report: ContextReport) -> None:
    encoded = json.loads(json.dumps(codec.encode_report(report)))
    assert codec.decode_report(encoded) == report


def test_a_report_keeps_its_wire_shape_and_its_error() -> None:
    report = ContextReport(policy="window", items=5, kept=((0, 0), (3, 4)), budget=100, tokens=42, error="boom")
    assert codec.encode_report(report) == {
        "policy": "window",
        "items": 5,
        "kept": "0,3-4",
        "recalled": "",
        "summarized": "",
        "budget": 100,
        "tokens": 42,
        "tokens_by_part": {},
        "recalled_scores": {},
        "over_budget": False,
        "error": "boom",
    }
    assert codec.encode_report(ContextReport.unplanned("the process stopped")) == {"error": "the process stopped"}
    assert codec.decode_report({"error": "gone"}) == ContextReport.unplanned("gone")
    assert not ContextReport.unplanned("gone").planned and report.planned


def test_a_report_of_the_older_shape_keeps_its_tokens_but_names_no_position() -> None:
    old = {"policy": "window", "kept": ["item_a", "item_b"], "budget": 900, "tokens": 7, "tokens_by_part": {"input": 7}}
    assert codec.decode_report(old) == ContextReport(policy="window", budget=900, tokens=7, tokens_by_part={"input": 7})


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"kept": "0"},
        {"policy": "window", "kept": "3-1"},
        {"policy": "window", "kept": "x"},
        {"policy": "window", "tokens": "many"},
        {"policy": "window", "error": 3},
    ],
)
def test_decode_refuses_a_malformed_report(data: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput):
        codec.decode_report(data)


def test_a_cost_is_stored_with_its_usage_and_refused_when_malformed() -> None:
    cost = Cost("USD", input=0.0004, cached_input=0.00002, output=0.0012, conversation=0.01)
    assert codec.encode_usage(Usage(1, 2, 3, 4, cost))["cost"] == {
        "currency": "USD",
        "total": 0.00162,
        "input": 0.0004,
        "cached_input": 0.00002,
        "output": 0.0012,
        "conversation": 0.01,
    }
    with pytest.raises(InvalidInput, match="malformed cost"):
        codec.decode_usage({"prompt_tokens": 1, "cost": {"input": 1.0}})
    with pytest.raises(InvalidInput, match="malformed cost"):
        codec.decode_usage({"prompt_tokens": 1, "cost": {"currency": "USD", "input": "lots"}})


def test_usage_encoding_and_absence() -> None:
    assert codec.encode_usage(Usage(1, 2, 3, 4)) == {
        "prompt_tokens": 1,
        "completion_tokens": 2,
        "cached_tokens": 3,
        "reasoning_tokens": 4,
    }
    assert codec.decode_usage(None) is None
    assert codec.decode_usage({}) == Usage()
    assert codec.decode_usage({"prompt_tokens": 5}) == Usage(prompt_tokens=5)


@given(st.lists(tool_calls, max_size=5))
def test_tool_calls_round_trip(calls: list[ToolCall]) -> None:
    encoded = codec.encode_tool_calls(calls)
    assert codec.decode_tool_calls(json.loads(json.dumps(encoded))) == tuple(calls)


def test_tool_call_encoding_and_absence() -> None:
    call = ToolCall(id="call_1", name="get_weather", arguments='{"city": "Paris"}')
    assert codec.encode_tool_calls([call]) == [
        {"id": "call_1", "name": "get_weather", "arguments": '{"city": "Paris"}'}
    ]
    assert codec.decode_tool_calls(None) == ()
    assert codec.decode_tool_calls([]) == ()


@pytest.mark.parametrize(
    "data",
    [
        {"type": "file", "url": "https://x/a.pdf"},
        {"type": "input_text", "text": "hi"},
        {"text": "no type"},
        {},
        {"type": "text"},
        {"type": "text", "text": 3},
        {"type": "image"},
        {"type": "image", "url": None},
    ],
)
def test_decode_refuses_unknown_or_malformed_parts(data: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput, match="unknown content part"):
        codec.decode_part(data)


def test_decode_parts_refuses_one_bad_part_among_good_ones() -> None:
    with pytest.raises(InvalidInput):
        codec.decode_parts([{"type": "text", "text": "ok"}, {"type": "hologram"}])


def test_encode_refuses_a_non_part() -> None:
    with pytest.raises(TypeError):
        codec.encode_part("just a string")  # type: ignore[arg-type]
