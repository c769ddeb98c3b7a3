"""Per-key limits: a request rate (a token bucket) and the streams open at once.

A key is what ``auth.Caller.key`` names: one API key (static or stored), or the one keyless
bucket when authentication is off. Both limits are off unless configured
(``rate_limit_requests``, ``max_concurrent_streams``) and live in this process's memory: N
gateway processes behind a balancer allow N times the configured numbers.

- Rate: a bucket of ``burst`` tokens (default: a minute's worth) refilled at
  ``requests_per_minute / 60`` tokens a second; a request takes one token or is refused with
  ``RateLimited`` whose ``retry_after`` is the wait for the next token.
- Streams: ``open_stream`` counts a stream from before its first byte until ``release`` (the
  gateway releases when the response has ended, whichever way it ended); one over the limit is
  refused with ``retry_after`` one second.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import RateLimited
from ..settings import Settings

MAX_BUCKETS = 65_536
"""Buckets kept before the full ones (the keys that have been idle longest) are forgotten."""


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


class Limits:
    def __init__(
        self,
        *,
        requests_per_minute: int | None = None,
        burst: int | None = None,
        streams: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._rate = requests_per_minute / 60.0 if requests_per_minute else 0.0
        self._burst = float(burst or requests_per_minute or 0)
        self._streams = streams
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._open: dict[str, int] = {}

    @classmethod
    def of(cls, settings: Settings) -> Limits:
        return cls(
            requests_per_minute=settings.rate_limit_requests,
            burst=settings.rate_limit_burst,
            streams=settings.max_concurrent_streams,
        )

    @property
    def counts_streams(self) -> bool:
        return self._streams is not None

    def admit(self, key: str) -> None:
        """Take one request token of ``key``.

        Raises:
            RateLimited: the key's bucket is empty; ``retry_after`` is the wait for a token.
        """
        if not self._rate:
            return
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= MAX_BUCKETS:
                self._forget_full(now)
            bucket = self._buckets[key] = _Bucket(self._burst, now)
        else:
            bucket.tokens = min(self._burst, bucket.tokens + (now - bucket.at) * self._rate)
            bucket.at = now
        if bucket.tokens < 1.0:
            wait = (1.0 - bucket.tokens) / self._rate
            raise RateLimited(
                f"Too many requests for this API key: the limit is {_per_minute(self._rate)} a minute.",
                retry_after=float(math.ceil(wait)),
            )
        bucket.tokens -= 1.0

    def open_stream(self, key: str) -> None:
        """Count one more open stream of ``key``; ``release_stream`` ends it.

        Raises:
            RateLimited: the key already has ``max_concurrent_streams`` open.
        """
        if self._streams is None:
            return
        open_now = self._open.get(key, 0)
        if open_now >= self._streams:
            raise RateLimited(
                f"Too many concurrent streams for this API key: the limit is {self._streams}.", retry_after=1.0
            )
        self._open[key] = open_now + 1

    def release_stream(self, key: str) -> None:
        left = self._open.get(key, 0) - 1
        if left > 0:
            self._open[key] = left
        else:
            self._open.pop(key, None)

    def open_streams(self, key: str) -> int:
        return self._open.get(key, 0)

    def _forget_full(self, now: float) -> None:
        for key, bucket in list(self._buckets.items()):
            if bucket.tokens + (now - bucket.at) * self._rate >= self._burst:
                del self._buckets[key]
        if len(self._buckets) >= MAX_BUCKETS:
            self._buckets.clear()


def _per_minute(rate: float) -> str:
    return f"{rate * 60:g} requests"
