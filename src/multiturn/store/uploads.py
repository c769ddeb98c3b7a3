"""Uploaded files: what the DashScope SDK sends for a local file (``{"image": "file://..."}``).

The SDK asks for an upload certificate (``getPolicy``), posts the file to the ``upload_host``
it names with the certificate's ``policy``, and then sends its request with the file's
``oss://<key>`` in place of the path. The gateway plays both servers: a grant (``grant``)
lets the holder of its policy — a random token, stored as its SHA-256 — upload under one
directory for a few minutes (``put``); a request naming ``oss://<key>`` gets the file
(``get``), of its tenant only, until it expires. Expired grants and files are deleted
whenever a new file comes in.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..errors import InvalidInput, NotFound
from ..ids import now_ms
from .api_keys import hash_key
from .base import DEFAULT_TENANT
from .core import StoreCore
from .schema import upload_grants, uploads


@dataclass(frozen=True, slots=True)
class Grant:
    policy: str
    """The token handed to the client; only its hash is stored."""
    upload_dir: str
    expires_at: int


@dataclass(frozen=True, slots=True)
class Upload:
    key: str
    content_type: str
    data: bytes


class UploadTables(StoreCore):
    async def grant_upload(self, *, tenant_id: str = DEFAULT_TENANT, seconds: int = 300) -> Grant:
        """A new upload grant of the tenant, valid ``seconds``."""
        grant = Grant(
            policy=secrets.token_urlsafe(32),
            upload_dir=f"multiturn/{secrets.token_hex(12)}",
            expires_at=now_ms() + seconds * 1000,
        )
        row = {
            "policy_hash": hash_key(grant.policy),
            "tenant_id": tenant_id,
            "upload_dir": grant.upload_dir,
            "expires_at": grant.expires_at,
        }
        await self._write(lambda conn: conn.execute(upload_grants.insert().values(**row)))
        return grant

    async def put_upload(self, policy: str, key: str, content_type: str, data: bytes, *, keep_seconds: int) -> None:
        """Store a file under ``key`` for the holder of ``policy``. Raises InvalidInput: the
        policy is unknown or expired, or the key is not under its directory or already used."""
        now = now_ms()

        def run(conn: Connection) -> None:
            _expire(conn, now)
            grant = conn.execute(
                sa.select(upload_grants).where(upload_grants.c.policy_hash == hash_key(policy))
            ).first()
            if grant is None or grant.expires_at < now:
                raise InvalidInput("the upload policy is unknown or expired: ask for a new upload certificate")
            name = key.removeprefix(f"{grant.upload_dir}/")
            if name == key or not name or "/" in name or len(key) > 512:
                raise InvalidInput(f"the key must be one file name under {grant.upload_dir}/")
            taken = conn.execute(sa.select(uploads.c.key).where(uploads.c.key == key)).first()
            if taken is not None:
                raise InvalidInput(f"{key} is already uploaded (uploads do not overwrite)")
            conn.execute(
                uploads.insert().values(
                    key=key,
                    tenant_id=grant.tenant_id,
                    content_type=content_type,
                    size=len(data),
                    data=data,
                    created_at=now,
                    expires_at=now + keep_seconds * 1000,
                )
            )

        await self._write(run, long=True)

    async def get_upload(self, key: str, *, tenant_id: str = DEFAULT_TENANT) -> Upload:
        """The file of this tenant under ``key``. Raises NotFound (unknown, another tenant's,
        or expired)."""

        def run(conn: Connection) -> Upload:
            row = conn.execute(
                sa.select(uploads.c.key, uploads.c.content_type, uploads.c.data, uploads.c.expires_at).where(
                    uploads.c.key == key, uploads.c.tenant_id == tenant_id
                )
            ).first()
            if row is None or row.expires_at < now_ms():
                raise NotFound(f"no uploaded file oss://{key} (uploads expire; upload it again)")
            return Upload(row.key, row.content_type, bytes(row.data))

        return await self._read(run, long=True)


def _expire(conn: Connection, now: int) -> None:
    conn.execute(upload_grants.delete().where(upload_grants.c.expires_at < now))
    conn.execute(uploads.delete().where(uploads.c.expires_at < now))
