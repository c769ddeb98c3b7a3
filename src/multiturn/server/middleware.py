"""The outermost layer: a request id on every response, one structured access-log line per
request (never a message body), a last safety net so that no failure reaches a client as an HTML
page or a traceback, and the end of work nobody waits for.

A client that leaves after sending its request but before the response starts (a non-streamed
answer, a turn queued or planning, a stream not yet primed) cancels the request's task at once:
the upstream call is dropped, a stored turn ends as cancelled (the engine's shielded end), and
nothing runs on for nobody. Once a response has started, a stream watches for the client itself
(``streaming.EventStream``). The watch starts when the request body has been read in full.

The request's ``gateway.Exchange`` is set here for everything the request runs, and its open
streams are released here once the response has ended, however it ended.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import render_error
from .gateway import CURRENT, Exchange

access_log = logging.getLogger("multiturn.access")
log = logging.getLogger(__name__)


class RequestContext:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = str(uuid.uuid4())
        scope.setdefault("state", {})["request_id"] = rid
        header = (b"x-request-id", rid.encode())
        started = time.perf_counter()
        status = 0
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = watch.responding = True
                status = message["status"]
                message["headers"] = [*message.get("headers", []), header]
            await send(message)

        exchange = Exchange(rid, scope["path"])
        token = CURRENT.set(exchange)
        watch = _Watch(receive)
        try:
            await self.app(scope, watch.receive, send_with_id)
        except asyncio.CancelledError:
            if not watch.cancelled:
                raise
            current = asyncio.current_task()
            if current is not None:
                current.uncancel()
            status = 499
            log.info("client left before the response (request %s); its work was cancelled", rid)
        except Exception as exc:
            log.exception("unhandled error in %s %s (request %s)", scope["method"], scope["path"], rid)
            if response_started:
                raise
            status, body, headers = render_error(scope["path"], exc, rid)
            await _send_error(send_with_id, status, body, headers)
        finally:
            watch.stop()
            exchange.release()
            CURRENT.reset(token)
            if access_log.isEnabledFor(logging.INFO):
                access_log.info(
                    orjson.dumps(
                        {
                            "request_id": rid,
                            "method": scope["method"],
                            "path": scope["path"],
                            "status": status,
                            "ms": round((time.perf_counter() - started) * 1000, 2),
                        }
                    ).decode()
                )


def _encode(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]


async def _send_error(send: Send, status: int, body: bytes, headers: dict[str, str]) -> None:
    extra = [(k, v) for k, v in _encode(headers) if k != b"content-type"]
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), *extra],
        }
    )
    await send({"type": "http.response.body", "body": body})


WATCH_AFTER = 0.1
"""Seconds a request runs, after its body is read, before its client is watched: most answers
are sent sooner, and a timer costs them less than a task."""


class _Watch:
    """The request's ``receive``, watching for the client's departure once the body is read.

    From ``WATCH_AFTER`` seconds after the last body chunk (or at once, when the app asks for
    the next message itself), one task awaits the next ASGI message (``http.disconnect`` when
    the client goes); the app's own later ``receive`` calls wait for that same verdict. If the
    client leaves before the response starts, the request's task is cancelled.
    """

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self._task = asyncio.current_task()
        self._timer: asyncio.TimerHandle | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._gone: asyncio.Event | None = None
        self._read = False
        self._stopped = False
        self.responding = False
        self.cancelled = False

    async def receive(self) -> Message:
        if self._read:
            gone = self._start()
            await gone.wait()
            return {"type": "http.disconnect"}
        message = await self._receive()
        if message["type"] == "http.request" and not message.get("more_body", False):
            self._read = True
            self._timer = asyncio.get_running_loop().call_later(WATCH_AFTER, self._start)
        return message

    def _start(self) -> asyncio.Event:
        if self._gone is None:
            self._gone = asyncio.Event()
            if not self._stopped:
                self._watcher = asyncio.get_running_loop().create_task(self._watch(self._gone))
        return self._gone

    async def _watch(self, gone: asyncio.Event) -> None:
        while (await self._receive())["type"] != "http.disconnect":
            pass
        gone.set()
        if not self.responding and self._task is not None:
            self.cancelled = True
            self._task.cancel()

    def stop(self) -> None:
        self._stopped = True
        if self._timer is not None:
            self._timer.cancel()
        if self._watcher is not None and not self._watcher.done():
            self._watcher.cancel()
