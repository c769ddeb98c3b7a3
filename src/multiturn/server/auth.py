"""Who is calling: the Bearer key of a request, resolved to a tenant (and the key's policy).

The rule: authentication is on when ``settings.api_keys`` is not empty or the store holds any
key (revoked ones count, so revoking every key does not open the gateway). When it is off,
every request acts for the ``default`` tenant. When it is on, a request needs one of:

- a static key of ``settings.api_keys``: the ``default`` tenant, no key policy;
- a stored key (``multiturn keys create``): its tenant and policy, unless it is revoked.

Stored keys are found by the SHA-256 of the presented key (an indexed lookup) and the digests
are then compared with ``hmac.compare_digest``; static keys are compared in constant time too.

Lookups are cached in the process for ``ttl`` seconds (5 by default), hits and misses alike,
so a busy key costs one database query per TTL rather than one per request. The price:
revoking a key, or creating the first one, takes effect in every gateway process within the
TTL, not at once. The cache holds digests, never keys, and is bounded.

A caller's ``key`` names its API key for per-key limits (``limits.py``): the key's SHA-256
digest, or ``""`` for every request when authentication is off (one bucket).
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ..errors import Unauthorized
from ..store.api_keys import hash_key
from ..store.base import DEFAULT_TENANT, ApiKeyRecord, KeyStore

DEFAULT_TTL = 5.0
MAX_CACHED = 4096


@dataclass(frozen=True, slots=True)
class Caller:
    tenant_id: str
    policy: str | None = None
    key: str = field(default="", compare=False)


ANONYMOUS = Caller(DEFAULT_TENANT)
"""Who a request is when authentication is off (a static key is the same tenant, with its ``key``)."""


class Authenticator:
    def __init__(
        self,
        static_keys: Sequence[str],
        store: KeyStore | None,
        *,
        ttl: float = DEFAULT_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._static = [key.encode() for key in static_keys]
        self._store = store
        self._ttl = ttl
        self._clock = clock
        self._enabled = bool(self._static)
        self._enabled_checked = float("-inf")
        self._cache: dict[str, tuple[float, ApiKeyRecord | None]] = {}

    async def caller(self, authorization: str | None) -> Caller:
        """The caller a request's ``Authorization`` header names.

        Raises:
            Unauthorized: authentication is on and the header holds no valid key.
        """
        if not await self._on():
            return ANONYMOUS
        scheme, _, given = (authorization or "").partition(" ")
        token = given.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("Invalid API-key provided.")
        presented = token.encode()
        digest = hash_key(token)
        if any(hmac.compare_digest(presented, key) for key in self._static):
            return Caller(DEFAULT_TENANT, key=digest)
        if self._store is not None:
            record = await self._lookup(digest)
            if record is not None and record.revoked_at is None and hmac.compare_digest(record.key_hash, digest):
                return Caller(record.tenant_id, record.policy, key=digest)
        raise Unauthorized("Invalid API-key provided.")

    async def _on(self) -> bool:
        if self._enabled or self._store is None:
            return self._enabled
        now = self._clock()
        if now - self._enabled_checked >= self._ttl:
            self._enabled = await self._store.has_api_keys()
            self._enabled_checked = now
        return self._enabled

    async def _lookup(self, digest: str) -> ApiKeyRecord | None:
        assert self._store is not None
        now = self._clock()
        cached = self._cache.get(digest)
        if cached is not None and now - cached[0] < self._ttl:
            return cached[1]
        record = await self._store.api_key_by_hash(digest)
        if len(self._cache) >= MAX_CACHED:
            self._cache.clear()
        self._cache[digest] = (now, record)
        return record
