"""Reading a compact ``ContextReport`` back as lists of ids, for assertions."""

from __future__ import annotations

from collections.abc import Sequence

from multiturn.records import ItemRecord
from multiturn.types import ContextReport, Fate


def fated(report: ContextReport, path: Sequence[ItemRecord | str], fate: Fate) -> tuple[str, ...]:
    """The ids of ``path`` (items or ids, in order) whose fate in ``report`` is ``fate``."""
    ids = [item if isinstance(item, str) else item.id for item in path]
    fates = report.fates(ids)
    return tuple(item_id for item_id in ids if fates[item_id] == fate)
