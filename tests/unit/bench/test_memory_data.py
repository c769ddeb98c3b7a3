"""Evidence ids as LoCoMo-format files write them: single turns, irregular separators, and ranges
within a session (``D12:3-D12:5`` is three turns)."""

from __future__ import annotations

import pytest

from multiturn.bench.memory_data import _dias


@pytest.mark.parametrize(
    ("written", "turns"),
    [
        ("D3:7", ["D3:7"]),
        ("D8:6; D9:17", ["D8:6", "D9:17"]),
        ("D:11:26", ["D11:26"]),
        ("D30:05", ["D30:5"]),
        ("D12:3-D12:5", ["D12:3", "D12:4", "D12:5"]),
        ("D12:3 - 5", ["D12:3", "D12:4", "D12:5"]),
        ("D1:9-D2:1", ["D1:9", "D2:1"]),  # across sessions: its two ends
        ("D4:6-D4:4", ["D4:6"]),  # backwards: the first only
    ],
)
def test_evidence_ids(written: str, turns: list[str]) -> None:
    assert _dias(written) == turns
