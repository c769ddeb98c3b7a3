"""What every route shares: the engine, the settings, and the per-request chores
(authentication, a bounded body read) that come before any protocol work."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

from starlette.requests import Request

from ..backends.registry import BackendRegistry
from ..engine import Engine
from ..errors import InvalidInput
from ..settings import Settings
from ..store.base import KeyStore
from .auth import Authenticator


class PayloadTooLarge(InvalidInput):
    status = 413


@dataclass
class Gateway:
    settings: Settings
    engine: Engine
    registry: BackendRegistry
    keys: KeyStore | None = None
    auth: Authenticator = field(init=False)

    def __post_init__(self) -> None:
        self.auth = Authenticator(self.settings.api_keys, self.keys)

    async def authorize(self, request: Request) -> str:
        """The tenant the request acts for; sets ``request.state.tenant_id`` and
        ``request.state.key_policy`` (the key's context policy, or None). The rule is in
        ``auth.py``: static keys (tenant ``default``) or stored keys, required when any exist.

        Raises:
            Unauthorized: a key is required and the Bearer key is none of them (or revoked).
        """
        caller = await self.auth.caller(request.headers.get("authorization"))
        request.state.tenant_id = caller.tenant_id
        request.state.key_policy = caller.policy
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


def request_id(request: Request) -> str:
    rid: str = request.scope.setdefault("state", {}).get("request_id") or uuid.uuid4().hex
    return rid


def now() -> int:
    return int(time.time())


def gateway_of(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway
