"""OpenAI-compatible routes: ``/v1/chat/completions``, ``/v1/models`` (and the same under
``/compatible-mode``). Wire work is done by ``protocols.openai_chat``; generation by the engine."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..protocols.openai_chat import translate as wire
from . import stateful, uploads
from .context import apply_policy
from .errors import error_response
from .gateway import gateway_of, now, request_id
from .streaming import EventStream, encode, prime

JSON = "application/json"


async def chat_completions(request: Request) -> Response:
    gateway = gateway_of(request)
    rid = request_id(request)
    try:
        tenant = await gateway.authorize(request)
        chat, options = wire.parse_request(await gateway.read_body(request), limits=stateful.input_limits(gateway))
        chat = await uploads.resolve(request, chat, tenant)
        chat, conversation = stateful.conversation_of(request, chat)
        if conversation is not None:  # a stored conversation: see server/stateful.py
            return await stateful.chat_completion(gateway, request, chat, options, conversation)
        chat, headers = await apply_policy(gateway, request, chat)
        if not options.stream:
            completion = await gateway.engine.complete_once(chat)
            body = wire.completion_to_response(completion, request_id=rid, model=chat.model, created=now())
            return Response(body, media_type=JSON, headers=headers)
        deltas = await prime(gateway.engine.complete(chat))
    except Exception as exc:
        return error_response(request.url.path, exc, rid)
    encoder = wire.ChunkEncoder(
        request_id=rid,
        model=chat.model,
        created=now(),
        include_usage=options.include_usage,
        thinking=bool(chat.params.enable_thinking),
    )
    return EventStream(encode(encoder, deltas, head=encoder.start()), headers=headers)


async def models(request: Request) -> Response:
    gateway = gateway_of(request)
    try:
        await gateway.authorize(request)
    except Exception as exc:
        return error_response(request.url.path, exc, request_id(request))
    return Response(wire.models_list(gateway.registry.names(), now()), media_type=JSON)


routes = [
    Route(f"{prefix}/chat/completions", chat_completions, methods=["POST"]) for prefix in ("/v1", "/compatible-mode/v1")
] + [Route(f"{prefix}/models", models, methods=["GET"]) for prefix in ("/v1", "/compatible-mode/v1")]
