"""Server-sent events that really stream, and stop when the client leaves.

``EventStream`` is a minimal ASGI response: it sends each chunk as soon as the producer yields
it (no buffering, no compression) and, concurrently, waits for ``http.disconnect``. When the
client goes away the producer is cancelled at once, so the generation (the embedded model's
loop, or the upstream request) stops instead of running to its end for nobody.

Silence: while nothing has been sent for ``sse_keepalive`` seconds the stream sends an SSE
comment, ``: keep-alive``, which every official client skips (the openai SDKs for Python and
Node drop lines that start with ``:``; dashscope's parsers drop every line that is not ``id``,
``event``, ``status`` or ``data``), so proxies and clients do not take a slow upstream for a
dead one. ``prime`` waits for the first delta before the response starts, so that what fails
before any byte (a bad request the upstream refuses, an unreachable upstream, a full stream
limit) is a proper HTTP error; but it waits at most one keep-alive interval: past that the
response starts (headers, and the protocol's opening events), and a later failure is the
protocol's error event instead of an HTTP status. A stream also counts against its key's
``max_concurrent_streams`` from ``prime`` until the response ends (``gateway.Exchange``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import suppress
from typing import Protocol, TypeVar, cast

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from ..types import Delta, FinishReason, Usage
from .errors import log_failure, public
from .gateway import current_exchange

log = logging.getLogger(__name__)
T = TypeVar("T")
KEEPALIVE = b": keep-alive\n\n"


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
        exchange = self._exchange = current_exchange()
        interval = exchange.keepalive if exchange is not None else 0.0
        loop = asyncio.get_running_loop()
        self._last_sent = loop.time()
        self._sending = asyncio.Lock()
        self._ended = False
        producer = asyncio.ensure_future(self._pump(send))
        watcher = asyncio.ensure_future(_wait_for_disconnect(receive))
        tasks = [producer, watcher]
        if interval > 0:
            tasks.append(asyncio.ensure_future(self._keep_alive(send, interval)))
        try:
            done, _ = await asyncio.wait({producer, watcher}, return_when=asyncio.FIRST_COMPLETED)
            if watcher in done and not producer.done():
                log.info("client disconnected mid-stream; cancelling the generation")
            for task in tasks:
                if not task.done():
                    task.cancel()
            for task in tasks:
                with suppress(asyncio.CancelledError):
                    await task
        finally:
            aclose = getattr(self._chunks, "aclose", None)
            if aclose is not None:
                await aclose()

    async def _pump(self, send: Send) -> None:
        loop = asyncio.get_running_loop()
        try:
            async for chunk in self._chunks:
                async with self._sending:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                    self._last_sent = loop.time()
        except OSError:  # the client went away while we were writing
            return
        async with self._sending:
            self._ended = True
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _keep_alive(self, send: Send, interval: float) -> None:
        """A comment whenever nothing was sent for ``interval`` seconds (one task per stream)."""
        loop = asyncio.get_running_loop()
        try:
            while True:
                wait = self._last_sent + interval - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                    continue
                async with self._sending:
                    if self._ended or (self._exchange is not None and self._exchange.said_all):
                        return
                    await send({"type": "http.response.body", "body": KEEPALIVE, "more_body": True})
                    self._last_sent = loop.time()
        except OSError:  # the client went away; the watcher sees it too
            return


async def _wait_for_disconnect(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


async def prime(deltas: AsyncIterator[T]) -> AsyncIterator[T]:
    """Wait for the first item of ``deltas`` before anything is sent, for at most one
    keep-alive interval (none: no bound).

    Errors a backend can only find out about by starting (an unknown model, a prompt over the
    window, an upstream's 4xx) raise here, while the response can still be a proper HTTP error.
    Returns an iterator over every item, the first included (when the first is still on its way,
    the iterator waits for it).

    Raises:
        RateLimited: the key already has its ``max_concurrent_streams`` open (nothing started).
    """
    exchange = current_exchange()
    if exchange is not None:
        exchange.open_stream()
    iterator = aiter(deltas)
    grace = exchange.keepalive if exchange is not None else 0.0
    if grace <= 0:
        try:
            first = await anext(iterator)
        except StopAsyncIteration:
            return _empty()
        return _chain(first, iterator)
    pending = asyncio.ensure_future(_next(iterator))
    try:
        await asyncio.wait({pending}, timeout=grace)
    except BaseException:
        await _drop(pending, iterator)
        raise
    if not pending.done():
        return _later(pending, iterator)
    got = pending.result()
    return _empty() if got is _END else _chain(cast(T, got), iterator)


_END = object()


async def _next(iterator: AsyncIterator[T]) -> T | object:
    try:
        return await anext(iterator)
    except StopAsyncIteration:
        return _END


async def _drop(pending: asyncio.Future[T | object], rest: AsyncIterator[T]) -> None:
    if not pending.done():
        pending.cancel()
    with suppress(BaseException):
        await pending
    aclose = getattr(rest, "aclose", None)
    if aclose is not None:
        await aclose()


async def _later(pending: asyncio.Future[T | object], rest: AsyncIterator[T]) -> AsyncIterator[T]:
    """Every item of ``rest``, the first of which ``pending`` is still waiting for."""
    try:
        first = await pending
        if first is _END:
            return
        yield cast(T, first)
        async for item in rest:
            yield item
    finally:
        await _drop(pending, rest)


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
    """Render a stream; a failure after the first byte becomes the protocol's error event
    (an upstream's detail only in the log: ``errors.public``)."""
    exchange = current_exchange()
    if head:
        yield head
    try:
        async for delta in deltas:
            if delta.content or delta.reasoning or delta.tool_calls:
                yield encoder.delta(delta)
            if delta.finish_reason is not None:
                final = encoder.finish(delta.finish_reason, delta.usage or Usage())
                if exchange is not None:
                    exchange.said_all = True
                yield final
    except Exception as exc:
        rid, path = (exchange.request_id, exchange.path) if exchange is not None else ("-", "-")
        log_failure(path, exc, rid)
        if exchange is not None:
            exchange.said_all = True
        yield encoder.error(public(exc, rid))
