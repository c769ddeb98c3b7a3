"""The stateless report header: positions of the incoming array as ranges, compact JSON."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from multiturn.context.unstored import message_ids
from multiturn.server.context import report_header
from multiturn.types import ContextReport, Message, complement, parse_spans, span_count, spans_of, spans_text


def test_runs_join_consecutive_positions() -> None:
    assert spans_text(spans_of([])) == ""
    assert spans_text(spans_of([4])) == "4"
    assert spans_text(spans_of([0, 1, 2, 3, 8, 10, 11, 12])) == "0-3,8,10-12"
    with pytest.raises(ValueError):
        parse_spans("3-1")
    with pytest.raises(ValueError):
        parse_spans("0-2,3")  # touching runs are one run: not a form spans_text writes


@given(st.sets(st.integers(0, 200)), st.integers(0, 220))
def test_runs_round_trip_and_complement(positions: set[int], length: int) -> None:
    spans = spans_of(positions)
    assert parse_spans(spans_text(spans)) == spans
    assert span_count(spans) == len(positions)
    rest = complement(spans, length)
    assert {n for a, b in rest for n in range(a, b + 1)} == set(range(length)) - positions


def test_message_ids_chain_so_equal_prefixes_have_equal_ids() -> None:
    a = message_ids([Message.of("user", "hi"), Message.of("assistant", "hello"), Message.of("user", "x")])
    b = message_ids([Message.of("user", "hi"), Message.of("assistant", "hello"), Message.of("user", "y")])
    c = message_ids([Message.of("user", "hello"), Message.of("assistant", "hello")])
    assert a[:2] == b[:2] and a[2] != b[2]
    assert c[1] != a[1]  # the same message after another prefix is another item
    assert len(set(a)) == 3


def test_the_header_names_positions_not_ids() -> None:

    report = ContextReport(policy="window", items=6, kept=((4, 5),), budget=100, tokens=40)
    body = json.loads(report_header(report))
    assert body == {
        "policy": "window",
        "budget": 100,
        "tokens": 40,
        "tokens_by_part": {},
        "kept": "4-5",
        "dropped": "0-3",
        "summarized": "",
        "recalled": "",
    }
