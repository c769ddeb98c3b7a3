"""Stateful turns through the gateway: what ``/v1/responses`` and stateful chat completions
share, and the stateful chat completions themselves. The turn's life belongs to the engine's
``TurnService``; this module only translates.

Stateful chat completions: a ``conversation`` field in the body (``extra_body`` in the openai SDK)
or an ``X-Multiturn-Conversation`` header names a stored conversation. The client sends only its
new messages: leading ``system`` messages are this request's instructions (not stored: the
conversation's own system prompt applies when none is sent), the other messages are stored in
order and the last one must be the user's; the server prepends the stored history through the
context policy (the conversation's, or the one the request names as stateless requests do:
``X-Multiturn-Policy``, ``X-Multiturn-Budget``, a ``model@policy`` suffix, the key's policy).
Concurrent turns on one conversation queue on its head. The answer carries
``X-Multiturn-Conversation`` and ``X-Multiturn-Context`` (the context report, compact JSON, with
stored item ids where stateless requests give array positions).

Tenancy: every route works on ``engine_for(request)``, the engine scoped to the tenant the
request's key acts for; another tenant's conversation or response is ``NotFound`` (404).
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import replace
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ..engine import Engine, Turn, TurnOptions
from ..errors import InvalidInput
from ..protocols.limits import Limits, check_turn_bytes
from ..protocols.openai_chat import translate as chat_wire
from ..protocols.responses.translate import report_object
from ..store.base import DEFAULT_TENANT
from ..types import ChatRequest, Completion, Delta, Reply
from .context import requested_policy
from .errors import error_response
from .gateway import Gateway, gateway_of, now, request_id
from .streaming import EventStream, encode, prime

log = logging.getLogger(__name__)

CONVERSATION_HEADER = "x-multiturn-conversation"
REPORT_HEADER = "x-multiturn-context"
CONVERSATION_FIELD = "conversation"
JSON = "application/json"


TenantHandler = Callable[[Request, Engine], Awaitable[Response]]


def tenant_route(handler: TenantHandler) -> Callable[[Request], Awaitable[Response]]:
    """A route of the stateful API: authenticate, scope the engine to the caller's tenant, and
    answer any error in the OpenAI shape."""

    @functools.wraps(handler)
    async def route(request: Request) -> Response:
        try:
            gateway = gateway_of(request)
            await gateway.authorize(request)
            return await handler(request, engine_for(gateway, request))
        except Exception as exc:
            return error_response(request.url.path, exc, request_id(request))

    return route


def input_limits(gateway: Gateway) -> Limits:
    """The caps on a request's input items and on a stored turn's bytes (settings)."""
    settings = gateway.settings
    return Limits(max_input_items=settings.max_input_items, max_turn_bytes=settings.max_turn_bytes)


def engine_for(gateway: Gateway, request: Request) -> Engine:
    """The engine scoped to the request's tenant (set by ``Gateway.authorize``)."""
    tenant = getattr(request.state, "tenant_id", None) or DEFAULT_TENANT
    return gateway.engine.for_tenant(tenant)


def report_header(report: Any) -> str:
    return json.dumps(report_object(report), separators=(",", ":"))


async def deltas_of(turn: Turn) -> AsyncGenerator[Delta, None]:
    """A turn's deltas (its final ``Reply`` is kept on the turn)."""
    async with aclosing(turn.events()) as events:
        async for event in events:
            if isinstance(event, Delta):
                yield event


def completion_of(reply: Reply) -> Completion:
    return Completion(
        content=reply.content,
        reasoning=reply.reasoning,
        tool_calls=reply.tool_calls,
        finish_reason=reply.finish_reason,
        usage=reply.usage,
    )


# -- stateful chat completions -----------------------------------------------------------------


def conversation_of(request: Request, chat: ChatRequest) -> tuple[ChatRequest, str | None]:
    """The conversation a chat-completions request names (body field or header), and the
    request without that field (it must not reach an upstream)."""
    named = chat.params.extra.get(CONVERSATION_FIELD)
    header = request.headers.get(CONVERSATION_HEADER)
    if named is None and not header:
        return chat, None
    if named is not None and not isinstance(named, str):
        raise InvalidInput("conversation must be a conversation id (a string)")
    extra = {k: v for k, v in chat.params.extra.items() if k != CONVERSATION_FIELD}
    return replace(chat, params=replace(chat.params, extra=extra)), named or header


async def chat_completion(
    gateway: Gateway, request: Request, chat: ChatRequest, options: chat_wire.StreamOptions, conversation_id: str
) -> Response:
    """A chat completion that continues a stored conversation (see the module docstring)."""
    rid = request_id(request)
    engine = engine_for(gateway, request)
    try:
        messages = list(chat.messages)
        instructions: list[str] = []
        while messages and messages[0].role == "system":
            instructions.append(messages.pop(0).text)
        if not messages or messages[-1].role != "user":
            raise InvalidInput("a stateful request must end with a user message")
        if options.n > 1:
            raise InvalidInput("n > 1 is not supported with a stored conversation")
        check_turn_bytes(messages, input_limits(gateway), "messages")
        chat, policy = requested_policy(request, chat)
        *before, last = messages
        turn = engine.turn(
            conversation_id,
            last.content,
            chat.params,
            policy=policy,
            options=TurnOptions(
                before=tuple(before),
                instructions="\n\n".join(instructions) if instructions else None,
                model=chat.model,
            ),
        )
        if not options.stream:
            reply = await turn.collect()
            body = chat_wire.completion_to_response(
                completion_of(reply), request_id=rid, model=chat.model, created=now()
            )
            return Response(body, media_type=JSON, headers=_turn_headers(turn, conversation_id))
        deltas = await prime(deltas_of(turn))
    except Exception as exc:
        return error_response(request.url.path, exc, rid)
    encoder = chat_wire.ChunkEncoder(
        request_id=rid,
        model=chat.model,
        created=now(),
        include_usage=options.include_usage,
        thinking=bool(chat.params.enable_thinking),
    )
    return EventStream(encode(encoder, deltas, head=encoder.start()), headers=_turn_headers(turn, conversation_id))


def _turn_headers(turn: Turn, conversation_id: str) -> dict[str, str]:
    headers = {CONVERSATION_HEADER: conversation_id}
    if turn.start is not None:
        headers[REPORT_HEADER] = report_header(turn.start.report)
    return headers
