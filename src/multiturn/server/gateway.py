"""What every route shares: the engine, the settings, and the per-request chores
(authentication, a bounded body read) that come before any protocol work."""

from __future__ import annotations

import hmac
import time
import uuid
from dataclasses import dataclass

from starlette.requests import Request

from ..backends.registry import BackendRegistry
from ..engine import Engine
from ..errors import InvalidInput, Unauthorized
from ..settings import Settings


class PayloadTooLarge(InvalidInput):
    status = 413


@dataclass
class Gateway:
    settings: Settings
    engine: Engine
    registry: BackendRegistry

    def authorize(self, request: Request) -> None:
        """Raises ``Unauthorized`` unless keys are off or the Bearer key is one of them."""
        keys = self.settings.api_keys
        if not keys:
            return
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        token = given.strip().encode()
        if scheme.lower() != "bearer" or not any(hmac.compare_digest(token, k.encode()) for k in keys):
            raise Unauthorized("Invalid API-key provided.")

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


def request_id(request: Request) -> str:
    rid: str = request.scope.setdefault("state", {}).get("request_id") or uuid.uuid4().hex
    return rid


def now() -> int:
    return int(time.time())


def gateway_of(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway
