"""What every route shares: the engine, the settings, and the per-request chores
(the media type, authentication and the per-key request rate, a bounded body read) that come
before any protocol work.

A request that sends a body (POST, PUT, PATCH) must say it is JSON: ``Content-Type:
application/json`` (parameters such as ``charset`` allowed) or a structured
``application/<x>+json``, which no browser sends across origins without a CORS preflight.
Anything else, or none, is refused with 415 in the route's protocol shape before the key is
looked up or anything is read or stored: a web page can POST ``text/plain`` (or a form type) to
a keyless gateway on 127.0.0.1 as a "simple request", and must not spend its upstream key so.

``Exchange`` is what the gateway knows of the request being served, in a context variable the
outer middleware sets (tasks a request starts inherit it): its id, and once authorized its key,
the limits and the stream settings. ``streaming.prime`` counts a stream on it; the middleware
releases that count when the response has ended, however it ended.
"""

from __future__ import annotations

import time
import uuid
from contextvars import ContextVar
from dataclasses import dataclass, field

from starlette.requests import Request

from ..backends.registry import BackendRegistry
from ..engine import Engine
from ..errors import InvalidInput
from ..settings import Settings
from ..store.base import KeyStore
from .auth import Authenticator
from .limits import Limits


class PayloadTooLarge(InvalidInput):
    status = 413


class UnsupportedMediaType(InvalidInput):
    status = 415


BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


@dataclass(slots=True)
class Exchange:
    request_id: str
    path: str
    key: str | None = None
    limits: Limits | None = None
    keepalive: float = 0.0
    streams: int = 0
    said_all: bool = False
    """The stream's last event (finish or error) is out: no keep-alive may follow it."""

    def open_stream(self) -> None:
        """Count this request's stream against its key's limit (``Limits.open_stream``)."""
        if self.limits is not None and self.key is not None and self.limits.counts_streams:
            self.limits.open_stream(self.key)
            self.streams += 1

    def release(self) -> None:
        """The response has ended: its streams stop counting."""
        if self.limits is not None and self.key is not None:
            while self.streams:
                self.streams -= 1
                self.limits.release_stream(self.key)


CURRENT: ContextVar[Exchange | None] = ContextVar("multiturn_exchange", default=None)


def current_exchange() -> Exchange | None:
    return CURRENT.get()


@dataclass
class Gateway:
    settings: Settings
    engine: Engine
    registry: BackendRegistry
    keys: KeyStore | None = None
    auth: Authenticator = field(init=False)
    limits: Limits = field(init=False)

    def __post_init__(self) -> None:
        self.auth = Authenticator(self.settings.api_keys, self.keys)
        self.limits = Limits.of(self.settings)

    async def authorize(self, request: Request) -> str:
        """The tenant the request acts for; sets ``request.state.tenant_id`` and
        ``request.state.key_policy`` (the key's context policy, or None). The rule is in
        ``auth.py``: static keys (tenant ``default``) or stored keys, required when any exist.

        Raises:
            UnsupportedMediaType: the request sends a body that does not say it is JSON.
            Unauthorized: a key is required and the Bearer key is none of them (or revoked).
            RateLimited: the key is over its request rate (``limits.py``).
        """
        if request.method in BODY_METHODS and not is_json(request.headers.get("content-type", "")):
            given = request.headers.get("content-type")
            raise UnsupportedMediaType(
                "the request body must be JSON, sent with Content-Type: application/json"
                + (f" (not {given!r})" if given else " (none was sent)")
            )
        caller = await self.auth.caller(request.headers.get("authorization"))
        self.limits.admit(caller.key)
        request.state.tenant_id = caller.tenant_id
        request.state.key_policy = caller.policy
        exchange = CURRENT.get()
        if exchange is not None:
            exchange.key = caller.key
            exchange.limits = self.limits
            exchange.keepalive = self.settings.sse_keepalive
        return caller.tenant_id

    async def read_body(self, request: Request) -> bytes:
        limit = self.settings.max_request_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise PayloadTooLarge(f"the request body exceeds the limit of {limit} bytes")
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"the request body exceeds the limit of {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)


def is_json(content_type: str) -> bool:
    """Whether a ``Content-Type`` is ``application/json`` or ``application/<x>+json``."""
    media = content_type.partition(";")[0].strip().lower()
    kind, _, subtype = media.partition("/")
    return kind == "application" and (subtype == "json" or (subtype.endswith("+json") and len(subtype) > 5))


def request_id(request: Request) -> str:
    rid: str = request.scope.setdefault("state", {}).get("request_id") or uuid.uuid4().hex
    return rid


def now() -> int:
    return int(time.time())


def gateway_of(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway
