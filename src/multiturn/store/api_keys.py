"""Gateway API keys: how they are made, how they are stored, and the queries on their table.

A key is ``mt-`` followed by 32 random bytes (``secrets.token_urlsafe``, 43 characters). It is
shown once, when it is created, and never stored: the table keeps its SHA-256 (hex) and its
first characters for display.

Why one fast hash and not a password hash (bcrypt, scrypt, Argon2)? Those are slow on purpose,
to make guessing a *low-entropy* secret from a stolen hash expensive. A key of 256 random bits
cannot be guessed, fast hash or not: 2^255 SHA-256 evaluations is out of reach of any hardware.
What a slow hash would add is cost on every request (tens of milliseconds of CPU by design),
and a salt would make the lookup by hash impossible. An unsalted SHA-256 lets the gateway find
a key with one indexed equality query and then compare digests in constant time.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..errors import NotFound
from .base import ApiKeyRecord
from .schema import api_keys

KEY_PREFIX = "mt-"
SHOWN_CHARS = 10
"""How many leading characters of a key are stored for display (the ``mt-`` and 7 random)."""


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    """The SHA-256 of a key, as stored and looked up (64 hex digits)."""
    return hashlib.sha256(key.encode()).hexdigest()


def insert(conn: Connection, record: ApiKeyRecord) -> None:
    conn.execute(api_keys.insert().values(**_row(record)))


def select(conn: Connection, tenant_id: str | None) -> list[ApiKeyRecord]:
    query = sa.select(api_keys).order_by(api_keys.c.created_at, api_keys.c.id)
    if tenant_id is not None:
        query = query.where(api_keys.c.tenant_id == tenant_id)
    return [_record(row) for row in (conn.execute(query)).mappings()]


def revoke(conn: Connection, key_id: str, tenant_id: str | None, now: int) -> ApiKeyRecord:
    query = sa.select(api_keys).where(api_keys.c.id == key_id)
    if tenant_id is not None:
        query = query.where(api_keys.c.tenant_id == tenant_id)
    row = (conn.execute(query.with_for_update())).mappings().first()
    if row is None:
        raise NotFound(f"API key {key_id!r} not found")
    record = _record(row)
    if record.revoked_at is not None:
        return record
    conn.execute(api_keys.update().where(api_keys.c.id == key_id).values(revoked_at=now))
    return _record({**row, "revoked_at": now})


def by_hash(conn: Connection, key_hash: str) -> ApiKeyRecord | None:
    row = (conn.execute(sa.select(api_keys).where(api_keys.c.key_hash == key_hash))).mappings().first()
    return _record(row) if row is not None else None


def any_key(conn: Connection) -> bool:
    return (conn.execute(sa.select(api_keys.c.id).limit(1))).first() is not None


def _row(record: ApiKeyRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "tenant_id": record.tenant_id,
        "name": record.name,
        "key_hash": record.key_hash,
        "prefix": record.prefix,
        "policy": record.policy,
        "created_at": record.created_at,
        "revoked_at": record.revoked_at,
    }


def _record(row: Any) -> ApiKeyRecord:
    return ApiKeyRecord(
        id=row["id"],
        tenant_id=row["tenant_id"],
        name=row["name"],
        prefix=row["prefix"],
        key_hash=row["key_hash"],
        policy=row["policy"],
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
    )
