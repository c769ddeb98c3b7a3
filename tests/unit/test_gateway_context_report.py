"""The stateless report header: positions of the incoming array as ranges, compact JSON."""

from __future__ import annotations

import json

from multiturn.context.unstored import message_ids
from multiturn.server.context import _ranges, report_header
from multiturn.types import ContextReport, Message


def test_ranges_join_consecutive_positions() -> None:
    assert _ranges([]) == ""
    assert _ranges([4]) == "4"
    assert _ranges([0, 1, 2, 3, 8, 10, 11, 12]) == "0-3,8,10-12"


def test_message_ids_chain_so_equal_prefixes_have_equal_ids() -> None:
    a = message_ids([Message.of("user", "hi"), Message.of("assistant", "hello"), Message.of("user", "x")])
    b = message_ids([Message.of("user", "hi"), Message.of("assistant", "hello"), Message.of("user", "y")])
    c = message_ids([Message.of("user", "hello"), Message.of("assistant", "hello")])
    assert a[:2] == b[:2] and a[2] != b[2]
    assert c[1] != a[1]  # the same message after another prefix is another item
    assert len(set(a)) == 3


def test_the_header_names_positions_not_ids() -> None:
    ids = message_ids([Message.of("user", str(n)) for n in range(6)])
    report = ContextReport(policy="window", kept=(ids[4], ids[5]), dropped_count=4, budget=100, tokens=40)
    body = json.loads(report_header(report, ids))
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
