"""DashScope-native routes: text generation and multimodal generation. Wire work is done by
``protocols.dashscope``; generation by the engine."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..protocols.dashscope import translate as wire
from . import uploads
from .context import apply_policy
from .errors import error_response
from .gateway import gateway_of, request_id
from .stateful import input_limits
from .streaming import EventStream, encode, prime

TEXT = "/api/v1/services/aigc/text-generation/generation"
MULTIMODAL = "/api/v1/services/aigc/multimodal-generation/generation"


async def generation(request: Request) -> Response:
    gateway = gateway_of(request)
    rid = request_id(request)
    try:
        tenant = await gateway.authorize(request)
        body = await gateway.read_body(request)
        multimodal = request.url.path == MULTIMODAL
        chat, options = wire.parse_request(body, request.headers, multimodal=multimodal, limits=input_limits(gateway))
        chat = await uploads.resolve(request, chat, tenant)
        chat, headers = await apply_policy(gateway, request, chat)
        if not options.stream:
            completion = await gateway.engine.complete_once(chat)
            payload = wire.completion_to_response(completion, request_id=rid, options=options)
            return Response(payload, media_type="application/json", headers=headers)
        deltas = await prime(gateway.engine.complete(chat))
    except Exception as exc:
        return error_response(request.url.path, exc, rid)
    encoder = wire.EventEncoder(request_id=rid, options=options)
    return EventStream(encode(encoder, deltas), headers=headers, media_type="text/event-stream;charset=UTF-8")


routes = [Route(path, generation, methods=["POST"]) for path in (TEXT, MULTIMODAL)]
