"""OpenAI-compatible routes: ``/v1/chat/completions``, ``/v1/models`` (and the same under
``/compatible-mode``). Wire work is done by ``protocols.openai_chat``; generation by the engine."""

from __future__ import annotations

from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..protocols.openai_chat import translate as wire
from ..types import Accumulator, Delta, Usage
from .errors import error_response
from .gateway import gateway_of, now, request_id
from .streaming import EventStream, prime

JSON = "application/json"


async def chat_completions(request: Request) -> Response:
    gateway = gateway_of(request)
    rid = request_id(request)
    try:
        gateway.authorize(request)
        chat, options = wire.parse_request(await gateway.read_body(request))
        deltas = await prime(gateway.engine.complete(chat))
        if not options.stream:
            answer = Accumulator()
            async for delta in deltas:
                answer.add(delta)
            body = wire.completion_to_response(answer.completion(), request_id=rid, model=chat.model, created=now())
            return Response(body, media_type=JSON)
    except Exception as exc:
        return error_response(request.url.path, exc, rid)
    encoder = wire.ChunkEncoder(
        request_id=rid,
        model=chat.model,
        created=now(),
        include_usage=options.include_usage,
        thinking=bool(chat.params.enable_thinking),
    )
    return EventStream(_chunks(encoder, deltas), headers={})


async def _chunks(encoder: wire.ChunkEncoder, deltas: AsyncIterator[Delta]) -> AsyncIterator[bytes]:
    yield encoder.start()
    try:
        async for delta in deltas:
            if delta.content or delta.reasoning or delta.tool_calls:
                yield encoder.delta(delta)
            if delta.finish_reason is not None:
                yield encoder.finish(delta.finish_reason, delta.usage or Usage())
    except Exception as exc:  # after the first byte, failures travel as an in-stream error event
        yield encoder.error(exc)


async def models(request: Request) -> Response:
    gateway = gateway_of(request)
    try:
        gateway.authorize(request)
    except Exception as exc:
        return error_response(request.url.path, exc, request_id(request))
    return Response(wire.models_list(gateway.registry.names(), now()), media_type=JSON)


routes = [
    Route(f"{prefix}/chat/completions", chat_completions, methods=["POST"]) for prefix in ("/v1", "/compatible-mode/v1")
] + [Route(f"{prefix}/models", models, methods=["GET"]) for prefix in ("/v1", "/compatible-mode/v1")]
