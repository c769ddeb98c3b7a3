"""DashScope's upload flow, so the SDK's local files work (``{"image": "file://..."}``).

- ``GET /api/v1/uploads?action=getPolicy&model=M`` (authorized like every route): an upload
  certificate in DashScope's shape, whose ``upload_host`` is this gateway
  (``/api/v1/uploads/oss``) and whose ``policy`` is a random grant of the caller's tenant.
- ``POST /api/v1/uploads/oss``: the SDK's form post of one file (OSS's form fields: ``key``,
  ``policy``, ``file``...). The grant is the authorization (the SDK sends no key there), so a
  ``multipart/form-data`` body is accepted on this route only: a web page cannot forge a grant.
- ``oss://<key>`` in a request's media parts (any route) is replaced by the file inline (a
  ``data:`` URL) before the request goes further, for the tenant that uploaded it
  (``resolve``); an unknown or expired key is a 400 naming it.

Files are kept ``upload_ttl`` seconds (DashScope keeps its temporary files 48 h) and capped at
``max_request_bytes``.
"""

from __future__ import annotations

import base64
from dataclasses import replace

from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..errors import InvalidInput, NotFound
from ..store.uploads import UploadTables
from ..types import AudioPart, ChatRequest, ImagePart, Message, Part, VideoPart
from .errors import error_response
from .gateway import PayloadTooLarge, gateway_of, request_id

POLICY = "/api/v1/uploads"
UPLOAD = "/api/v1/uploads/oss"
GRANT_SECONDS = 300
OSS = "oss://"


def _uploads(request: Request) -> UploadTables:
    store = gateway_of(request).engine.store
    if not isinstance(store, UploadTables):
        raise InvalidInput("this store keeps no uploads")
    return store


async def policy(request: Request) -> Response:
    gateway = gateway_of(request)
    rid = request_id(request)
    try:
        tenant = await gateway.authorize(request)
        action = request.query_params.get("action")
        if action != "getPolicy":
            raise InvalidInput(f"action must be getPolicy, not {action!r}")
        grant = await _uploads(request).grant_upload(tenant_id=tenant, seconds=GRANT_SECONDS)
    except Exception as exc:
        return error_response(request.url.path, exc, rid)
    limit_mb = max(1, gateway.settings.max_request_bytes // (1024 * 1024))
    data = {
        "policy": grant.policy,
        "signature": "multiturn",  # the policy is the grant; nothing is signed
        "upload_dir": grant.upload_dir,
        "upload_host": str(request.base_url).rstrip("/") + UPLOAD,
        "expire_in_seconds": GRANT_SECONDS,
        "max_file_size_mb": limit_mb,
        "capacity_limit_mb": limit_mb,
        "oss_access_key_id": "multiturn",
        "x_oss_object_acl": "private",
        "x_oss_forbid_overwrite": "true",
    }
    return JSONResponse({"request_id": rid, "data": data})


async def upload(request: Request) -> Response:
    gateway = gateway_of(request)
    rid = request_id(request)
    limit = gateway.settings.max_request_bytes
    try:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit + 64 * 1024:
            raise PayloadTooLarge(f"the file exceeds the limit of {limit} bytes")
        if not request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
            raise InvalidInput("the upload must be a multipart/form-data form post")
        try:
            form = await request.form(max_files=1, max_fields=32)
        except (HTTPException, MultiPartException) as exc:  # Starlette's words for a malformed form
            raise InvalidInput(f"the upload form is malformed: {getattr(exc, 'detail', exc)}") from exc
        try:
            file, key, grant = form.get("file"), form.get("key"), form.get("policy")
            if not isinstance(file, UploadFile) or not isinstance(key, str) or not isinstance(grant, str):
                raise InvalidInput("the form needs the fields key, policy and file")
            data = await file.read(limit + 1)
            if len(data) > limit:
                raise PayloadTooLarge(f"the file exceeds the limit of {limit} bytes")
            declared_type = form.get("x-oss-content-type")
            content_type = declared_type if isinstance(declared_type, str) else file.content_type
        finally:
            await form.close()
        await _uploads(request).put_upload(
            grant, key, content_type or "application/octet-stream", data, keep_seconds=gateway.settings.upload_ttl
        )
    except Exception as exc:
        return error_response(request.url.path, exc, rid)
    return Response(status_code=200, headers={"x-oss-request-id": rid})


async def resolve(request: Request, chat: ChatRequest, tenant_id: str) -> ChatRequest:
    """``chat`` with every ``oss://`` media URL replaced by the uploaded file, inline. Raises
    InvalidInput: a key unknown to this tenant, or expired."""
    if not any(_names_upload(part) for message in chat.messages for part in message.content):
        return chat
    store = _uploads(request)
    cache: dict[str, str] = {}

    async def inline(url: str) -> str:
        if not url.startswith(OSS):
            return url
        if url not in cache:
            try:
                found = await store.get_upload(url[len(OSS) :], tenant_id=tenant_id)
            except NotFound as exc:
                raise InvalidInput(exc.message) from exc
            cache[url] = f"data:{found.content_type};base64,{base64.b64encode(found.data).decode()}"
        return cache[url]

    messages: list[Message] = []
    for message in chat.messages:
        parts: list[Part] = []
        for part in message.content:
            if isinstance(part, ImagePart):
                part = replace(part, url=await inline(part.url))
            elif isinstance(part, AudioPart):
                part = replace(part, url=await inline(part.url) if part.url is not None else None)
            elif isinstance(part, VideoPart):
                url = await inline(part.url) if part.url is not None else None
                part = replace(part, url=url, frames=tuple([await inline(f) for f in part.frames]))
            parts.append(part)
        messages.append(replace(message, content=tuple(parts)))
    return replace(chat, messages=tuple(messages))


def _names_upload(part: Part) -> bool:
    if isinstance(part, ImagePart):
        return part.url.startswith(OSS)
    if isinstance(part, AudioPart):
        return (part.url or "").startswith(OSS)
    if isinstance(part, VideoPart):
        return (part.url or "").startswith(OSS) or any(f.startswith(OSS) for f in part.frames)
    return False


routes = [Route(POLICY, policy, methods=["GET"]), Route(UPLOAD, upload, methods=["POST"])]
