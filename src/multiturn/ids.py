"""Identifiers: a prefix, then a time-ordered, random suffix (``conv_0193ab...``).

Ids sort by creation time, so listing by id is listing by age. Tests that need fixed ids inject
their own ``IdFactory``.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import TypeAlias

IdFactory: TypeAlias = Callable[[str], str]


def new_id(prefix: str) -> str:
    """A new id such as ``item_0193ab12cd34e5f6a7b8c9d0``: 12 hex digits of ms, 12 random."""
    return f"{prefix}_{time.time_ns() // 1_000_000:012x}{secrets.token_hex(6)}"


def now_ms() -> int:
    return time.time_ns() // 1_000_000
