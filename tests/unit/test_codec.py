"""``multiturn.codec``: canonical types to JSON-safe dicts and back, exactly."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from multiturn import codec
from multiturn.errors import InvalidInput
from multiturn.types import AudioPart, ImagePart, Part, TextPart, ToolCall, Usage, VideoPart

optional_text = st.none() | st.text()

parts: st.SearchStrategy[Part] = st.one_of(
    st.builds(TextPart, text=st.text()),
    st.builds(ImagePart, url=st.text(), detail=optional_text),
    st.builds(AudioPart, url=optional_text, data=optional_text, format=optional_text),
    st.builds(VideoPart, url=optional_text, frames=st.lists(st.text(), max_size=4).map(tuple)),
)
tool_calls = st.builds(ToolCall, id=st.text(min_size=1), name=st.text(min_size=1), arguments=st.text())
usages = st.builds(
    Usage,
    prompt_tokens=st.integers(0, 2**31),
    completion_tokens=st.integers(0, 2**31),
    cached_tokens=st.integers(0, 2**31),
    reasoning_tokens=st.integers(0, 2**31),
)


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
