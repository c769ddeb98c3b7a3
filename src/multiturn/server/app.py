"""``create_app(settings)``: the gateway as an ASGI app.

The lifespan migrates the store, builds the backend registry and the engine once; routers are
thin and stateless. Nothing is stored for the stateless endpoints (they read the store only
for stored API keys, through the gateway's cached authenticator).
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..backends.registry import BackendRegistry
from ..client import build_engine
from ..errors import InvalidInput, NotFound
from ..settings import Settings
from ..store.sql import SQLStore
from . import conversations_routes, dashscope_routes, inspector_routes, openai_routes, responses_routes, uploads
from .errors import error_response
from .gateway import Gateway, gateway_of, request_id
from .middleware import RequestContext
from .openapi import openapi_schema


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        store = SQLStore(settings.database_url, cache_items=settings.cache_items)
        try:
            await store.migrate()
        except BaseException:
            await store.close()
            raise
        registry = BackendRegistry(settings)
        for name, alias in settings.models.items():
            if alias.backend == "upstream":
                registry.get(name)  # no network: imports the HTTP client now, not on the first request
        engine = build_engine(settings, store, registry)
        try:
            await engine.turns.open()  # closes turns a killed process left open
        except BaseException:
            await store.close()
            raise
        app.state.gateway = Gateway(settings=settings, engine=engine, registry=registry, keys=store)
        # Everything built so far lives as long as the process: keep it out of the collector's
        # full passes, which otherwise stall the event loop for tens of milliseconds under load.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            await engine.aclose()
            await registry.aclose()
            await store.close()

    middleware = [Middleware(RequestContext)]
    if settings.cors_origins:
        middleware.append(
            Middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["*"], allow_headers=["*"])
        )
    schema = openapi_schema()

    async def openapi(request: Request) -> Response:
        return JSONResponse(schema)

    async def healthz(request: Request) -> Response:
        """Liveness, and this process's turn counters (``TurnStats``)."""
        return JSONResponse({"status": "ok", "turns": asdict(gateway_of(request).engine.turns.stats)})

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        rid = request_id(request)
        if exc.status_code == 404:
            return error_response(request.url.path, NotFound(f"no route {request.url.path}"), rid)
        failure = error_response(request.url.path, InvalidInput(f"method {request.method} not allowed"), rid)
        failure.status_code = exc.status_code
        return failure

    routes = [
        *openai_routes.routes,
        *dashscope_routes.routes,
        *responses_routes.routes,
        *conversations_routes.routes,
        *uploads.routes,
        *inspector_routes.routes,
        Route("/healthz", healthz, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        *inspector_routes.web_routes,
    ]
    return Starlette(
        routes=routes, middleware=middleware, lifespan=lifespan, exception_handlers={HTTPException: http_error}
    )
