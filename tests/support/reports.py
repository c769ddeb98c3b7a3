"""Reading a compact ``ContextReport`` back as lists of ids, for assertions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from multiturn import codec
from multiturn.records import ItemRecord
from multiturn.types import ContextReport, Fate


def fated(report: ContextReport | Mapping[str, Any], path: Sequence[ItemRecord | str], fate: Fate) -> tuple[str, ...]:
    """The ids of ``path`` (items or ids, in order) whose fate in ``report`` is ``fate``."""
    decoded = codec.decode_report(report) if isinstance(report, Mapping) else report
    assert decoded is not None
    ids = [item if isinstance(item, str) else item.id for item in path]
    fates = decoded.fates(ids)
    return tuple(item_id for item_id in ids if fates[item_id] == fate)
