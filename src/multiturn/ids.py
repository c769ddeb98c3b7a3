"""Identifiers: a prefix, then a time-ordered suffix (``conv_0193ab...``).

Ids sort by creation order within a process, even within one millisecond: the suffix is 12
hex digits of milliseconds, then 12 hex digits that start random each millisecond and count
up when the clock has not moved (a monotonic ULID, in hex). Across processes, ids of the same
millisecond are unordered but unique. Tests that need fixed ids inject their own ``IdFactory``.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from typing import TypeAlias

IdFactory: TypeAlias = Callable[[str], str]

_RANDOM_BITS = 48
_lock = threading.Lock()
_last = (0, 0)


def new_id(prefix: str) -> str:
    """A new id such as ``item_0193ab12cd34e5f6a7b8c9d0``."""
    global _last
    with _lock:
        ms = time.time_ns() // 1_000_000
        last_ms, last_random = _last
        if ms <= last_ms and last_random + 1 < 1 << _RANDOM_BITS:
            ms, random = last_ms, last_random + 1
        else:
            random = secrets.randbits(_RANDOM_BITS - 1)  # leaves room to count up
        _last = (ms, random)
    return f"{prefix}_{ms:012x}{random:012x}"


def now_ms() -> int:
    return time.time_ns() // 1_000_000
