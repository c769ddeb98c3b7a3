"""Stored API keys and the gateway's authenticator, on SQLite and PostgreSQL.

The authenticator runs against the real store; its clock is injected so the cache's lifetime
is tested without waiting.
"""

from __future__ import annotations

import hashlib

import pytest
import sqlalchemy as sa

from multiturn.errors import NotFound, Unauthorized
from multiturn.server.auth import ANONYMOUS, Authenticator, Caller
from multiturn.store import SQLStore
from multiturn.store.api_keys import hash_key

OTHER_TENANT = "someone-else"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_key_is_stored_only_as_its_sha256(store: SQLStore) -> None:
    record, key = await store.create_api_key(tenant_id="acme", name="ci", policy="summary")
    assert key.startswith("mt-") and len(key) >= 40
    assert record.key_hash == hashlib.sha256(key.encode()).hexdigest() == hash_key(key)
    assert key.startswith(record.prefix) and len(record.prefix) < 16
    rows = await store._read(lambda conn: conn.execute(sa.text("SELECT * FROM api_keys")).mappings().all())
    assert len(rows) == 1
    assert all(key not in str(value) for value in rows[0].values())
    assert (rows[0]["tenant_id"], rows[0]["name"], rows[0]["policy"]) == ("acme", "ci", "summary")
    assert await store.api_key_by_hash(record.key_hash) == record
    assert await store.api_key_by_hash(hash_key(key + "x")) is None


async def test_two_keys_differ_and_list_never_shows_a_key(store: SQLStore) -> None:
    first, key1 = await store.create_api_key()
    second, key2 = await store.create_api_key(tenant_id=OTHER_TENANT)
    assert key1 != key2 and first.key_hash != second.key_hash
    listed = await store.list_api_keys()
    assert [k.id for k in listed] == [first.id, second.id]
    assert all(key1 not in repr(k) and key2 not in repr(k) for k in listed)
    assert [k.id for k in await store.list_api_keys(tenant_id=OTHER_TENANT)] == [second.id]


async def test_revoke_is_scoped_by_tenant_and_idempotent(store: SQLStore) -> None:
    mine, _ = await store.create_api_key(tenant_id="acme")
    with pytest.raises(NotFound):
        await store.revoke_api_key(mine.id, tenant_id=OTHER_TENANT)
    assert (await store.list_api_keys())[0].revoked_at is None
    with pytest.raises(NotFound):
        await store.revoke_api_key("key_missing")
    revoked = await store.revoke_api_key(mine.id, tenant_id="acme")
    assert revoked.revoked_at is not None
    again = await store.revoke_api_key(mine.id)
    assert again.revoked_at == revoked.revoked_at
    assert (await store.api_key_by_hash(mine.key_hash)) == revoked


async def test_without_any_key_everyone_is_the_default_tenant(store: SQLStore) -> None:
    auth = Authenticator([], store)
    assert await auth.caller(None) == ANONYMOUS
    assert await auth.caller("Bearer whatever") == ANONYMOUS


async def test_stored_keys_turn_authentication_on_within_the_ttl(store: SQLStore) -> None:
    clock = Clock()
    auth = Authenticator([], store, ttl=5.0, clock=clock)
    assert await auth.caller(None) == ANONYMOUS
    record, key = await store.create_api_key(tenant_id="acme", policy="retrieval")
    assert await auth.caller(None) == ANONYMOUS  # cached: the first key counts within the TTL
    clock.now += 5.0
    with pytest.raises(Unauthorized) as caught:
        await auth.caller(None)
    assert caught.value.message == "Invalid API-key provided."
    assert await auth.caller(f"Bearer {key}") == Caller("acme", "retrieval")
    assert await auth.caller(f"bearer   {key}  ") == Caller("acme", "retrieval")
    for header in (f"Basic {key}", f"Bearer {key[:-1]}", "Bearer", "", f"Bearer {record.key_hash}"):
        with pytest.raises(Unauthorized):
            await auth.caller(header)


async def test_a_revoked_key_is_refused_within_the_ttl(store: SQLStore) -> None:
    clock = Clock()
    record, key = await store.create_api_key(tenant_id="acme")
    auth = Authenticator([], store, ttl=5.0, clock=clock)
    assert await auth.caller(f"Bearer {key}") == Caller("acme")
    await store.revoke_api_key(record.id)
    clock.now += 4.9
    assert await auth.caller(f"Bearer {key}") == Caller("acme")  # the cached lookup
    clock.now += 0.1
    with pytest.raises(Unauthorized):
        await auth.caller(f"Bearer {key}")
    # Revoking every key does not turn authentication off.
    clock.now += 60
    with pytest.raises(Unauthorized):
        await auth.caller(None)


async def test_static_and_stored_keys_work_together(store: SQLStore) -> None:
    _, key = await store.create_api_key(tenant_id="acme")
    auth = Authenticator(["static-secret"], store)
    assert await auth.caller("Bearer static-secret") == ANONYMOUS
    assert await auth.caller(f"Bearer {key}") == Caller("acme")
    with pytest.raises(Unauthorized):
        await auth.caller("Bearer static-secre")
    with pytest.raises(Unauthorized):
        await auth.caller(None)


async def test_static_keys_alone_need_no_store() -> None:
    auth = Authenticator(["k1", "k2"], None)
    assert await auth.caller("Bearer k2") == ANONYMOUS
    with pytest.raises(Unauthorized):
        await auth.caller("Bearer k3")
