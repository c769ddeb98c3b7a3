"""Server-sent events that really stream, and stop when the client leaves.

``EventStream`` is a minimal ASGI response: it sends each chunk as soon as the producer yields
it (no buffering, no compression) and, concurrently, waits for ``http.disconnect``. When the
client goes away the producer is cancelled at once, so the generation (the embedded model's
loop, or the upstream request) stops instead of running to its end for nobody.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import suppress
from typing import Protocol, TypeVar

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from ..types import Delta, FinishReason, Usage

log = logging.getLogger(__name__)
T = TypeVar("T")


class EventStream(Response):
    def __init__(
        self,
        chunks: AsyncIterator[bytes],
        *,
        headers: Mapping[str, str],
        media_type: str = "text/event-stream",
    ) -> None:
        self._chunks = chunks
        self.status_code = 200
        self.background = None
        raw = {"content-type": media_type, "cache-control": "no-cache", "x-accel-buffering": "no", **headers}
        self._raw_headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in raw.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self._raw_headers})
        producer = asyncio.ensure_future(self._pump(send))
        watcher = asyncio.ensure_future(_wait_for_disconnect(receive))
        try:
            done, _ = await asyncio.wait({producer, watcher}, return_when=asyncio.FIRST_COMPLETED)
            if watcher in done and not producer.done():
                log.info("client disconnected mid-stream; cancelling the generation")
            for task in (producer, watcher):
                if not task.done():
                    task.cancel()
            for task in (producer, watcher):
                with suppress(asyncio.CancelledError):
                    await task
        finally:
            aclose = getattr(self._chunks, "aclose", None)
            if aclose is not None:
                await aclose()

    async def _pump(self, send: Send) -> None:
        try:
            async for chunk in self._chunks:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except OSError:  # the client went away while we were writing
            return
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _wait_for_disconnect(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


async def prime(deltas: AsyncIterator[T]) -> AsyncIterator[T]:
    """Wait for the first item of ``deltas`` before anything is sent.

    Errors a backend can only find out about by starting (an unknown model, a prompt over the
    window, an upstream's 4xx) raise here, while the response can still be a proper HTTP error.
    Returns an iterator over every item, the first included.
    """
    iterator = aiter(deltas)
    try:
        first = await anext(iterator)
    except StopAsyncIteration:
        return _empty()
    return _chain(first, iterator)


async def _chain(first: T, rest: AsyncIterator[T]) -> AsyncIterator[T]:
    try:
        yield first
        async for item in rest:
            yield item
    finally:
        aclose = getattr(rest, "aclose", None)
        if aclose is not None:
            await aclose()


async def _empty() -> AsyncIterator[T]:
    return
    yield


class Encoder(Protocol):
    """A protocol's per-stream renderer of deltas (``ChunkEncoder``, ``EventEncoder``)."""

    def delta(self, d: Delta) -> bytes: ...

    def finish(self, finish_reason: FinishReason, usage: Usage) -> bytes: ...

    def error(self, exc: Exception) -> bytes: ...


async def encode(encoder: Encoder, deltas: AsyncIterator[Delta], *, head: bytes = b"") -> AsyncIterator[bytes]:
    """Render a stream; a failure after the first byte becomes the protocol's error event."""
    if head:
        yield head
    try:
        async for delta in deltas:
            if delta.content or delta.reasoning or delta.tool_calls:
                yield encoder.delta(delta)
            if delta.finish_reason is not None:
                yield encoder.finish(delta.finish_reason, delta.usage or Usage())
    except Exception as exc:
        yield encoder.error(exc)
