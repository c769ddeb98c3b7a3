"""R, the reference relay: the floor for a Python gateway, with a choice of upstream client.

Starlette on uvicorn (uvloop, httptools), one route. The body is parsed (a real gateway needs
``model`` and ``stream``) and re-sent as JSON with an upstream ``Authorization`` header;
non-streamed bytes are returned unchanged; a stream is relayed network chunk by network chunk,
with no buffering or parsing. No auth, logging, usage accounting, retries or error mapping.

    RELAY_CLIENT=httpx|httpx2|aiohttp UPSTREAM=http://127.0.0.1:U \
        uvicorn relay:app --app-dir bench/gateway --loop uvloop --http httptools --no-access-log
"""

from __future__ import annotations

import importlib
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

CLIENT = os.environ.get("RELAY_CLIENT", "httpx")
UPSTREAM = os.environ.get("UPSTREAM", "http://127.0.0.1:18101")
PATH = "/v1/chat/completions"
HEADERS = {"Authorization": "Bearer fake-upstream-key"}
SSE = "text/event-stream"


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    if CLIENT == "aiohttp":
        connector = aiohttp.TCPConnector(limit=256)
        async with aiohttp.ClientSession(UPSTREAM, connector=connector, timeout=aiohttp.ClientTimeout(60)) as session:
            app.state.client = session
            yield
        return
    http = importlib.import_module(CLIENT)  # httpx or httpx2: the same API
    limits = http.Limits(max_connections=256, max_keepalive_connections=256)
    async with http.AsyncClient(base_url=UPSTREAM, timeout=60.0, limits=limits) as client:
        app.state.client = client
        yield


async def chat_httpx(request: Request) -> Response:
    body, client = await request.json(), request.app.state.client
    if not body.get("stream"):
        up = await client.post(PATH, json=body, headers=HEADERS)
        return Response(up.content, up.status_code, media_type="application/json")
    up = await client.send(client.build_request("POST", PATH, json=body, headers=HEADERS), stream=True)
    return StreamingResponse(up.aiter_raw(), up.status_code, media_type=SSE, background=BackgroundTask(up.aclose))


async def chat_aiohttp(request: Request) -> Response:
    body, session = await request.json(), request.app.state.client
    up = await session.post(PATH, json=body, headers=HEADERS)
    if not body.get("stream"):
        data = await up.read()
        up.release()
        return Response(data, up.status, media_type="application/json")
    return StreamingResponse(up.content.iter_any(), up.status, media_type=SSE, background=BackgroundTask(up.release))


async def health(request: Request) -> Response:
    return JSONResponse({"status": "ok", "client": CLIENT})


chat = chat_aiohttp if CLIENT == "aiohttp" else chat_httpx
app = Starlette(routes=[Route(PATH, chat, methods=["POST"]), Route("/health", health)], lifespan=lifespan)
