"""Stateful turns through the gateway: what ``/v1/responses`` and stateful chat completions share,
and the stateful chat completions themselves.

``StoredTurn`` runs one ``Engine.send`` and hands its deltas on with one difference: the final
delta (finish reason, usage) is held back until the engine has stored the answer and the hook
``on_stored`` has run. So when a client sees the end of a stream (``response.completed``,
``[DONE]``), the answer is in the store and the next turn, in this process or another, finds it.

Stateful chat completions: a ``conversation`` field in the body (``extra_body`` in the openai SDK)
or an ``X-Multiturn-Conversation`` header names a stored conversation. The client sends only its
new messages: leading ``system`` messages are this request's instructions (not stored: the
conversation's own system prompt applies when none is sent), the other messages are stored in
order and the last one must be the user's; the server prepends the stored history through the
context policy (the conversation's, or the one the request names as stateless requests do:
``X-Multiturn-Policy``, ``X-Multiturn-Budget``, a ``model@policy`` suffix, the key's policy).
The answer carries ``X-Multiturn-Conversation`` and ``X-Multiturn-Context`` (the context
report, compact JSON, with stored item ids where stateless requests give array positions).

Tenancy: every route works on ``engine_for(request)``, the engine scoped to the tenant the
request's key acts for; another tenant's conversation or response is ``NotFound`` (404).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from contextlib import aclosing
from dataclasses import dataclass, replace
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ..context.plan import Policy
from ..engine import Engine, TurnOptions, TurnStart
from ..errors import InvalidInput, MultiturnError
from ..protocols.openai_chat import translate as chat_wire
from ..protocols.responses.translate import report_object
from ..records import NewItem
from ..store.base import DEFAULT_TENANT, HEAD
from ..store.responses import ResponseStore, keeps_responses
from ..types import Accumulator, ChatRequest, Delta, GenerationParams, Message, Reply
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


def engine_for(gateway: Gateway, request: Request) -> Engine:
    """The engine scoped to the request's tenant (set by ``Gateway.authorize``)."""
    tenant = getattr(request.state, "tenant_id", None) or DEFAULT_TENANT
    return gateway.engine.for_tenant(tenant)


def responses_of(engine: Engine) -> ResponseStore:
    store = engine.store
    if not keeps_responses(store):
        raise InvalidInput("this gateway's store does not keep responses")
    return store


def report_header(report: Any) -> str:
    return json.dumps(report_object(report), separators=(",", ":"))


async def append_messages(engine: Engine, conversation_id: str, messages: Sequence[Message]) -> list[str]:
    """Store ``messages`` at the conversation's head, in order, without answering; their ids."""
    ids: list[str] = []
    parent: str | None = None
    for message in messages:
        item = NewItem(role=message.role, content=message.content)
        stored = await engine.store.append(
            conversation_id, HEAD if parent is None else parent, item, tenant_id=engine.tenant_id
        )
        parent = stored.id
        ids.append(stored.id)
    return ids


@dataclass
class StoredTurn:
    """One stored turn: ``deltas()`` streams it; ``start`` and ``reply`` tell what it did."""

    engine: Engine
    conversation_id: str
    inputs: tuple[Message, ...]
    params: GenerationParams
    policy: str | Policy | None = None
    parent_id: str | None = None
    instructions: str | None = None
    model: str | None = None
    on_start: Callable[[TurnStart], Awaitable[None]] | None = None
    on_stored: Callable[[StoredTurn, str, BaseException | None], Awaitable[None]] | None = None
    """Awaited once the answer is stored: with the status ``completed``, or ``failed`` /
    ``cancelled`` and the error, before the end of the stream is sent."""
    start: TurnStart | None = None
    reply: Reply | None = None

    async def _started(self, start: TurnStart) -> None:
        self.start = start
        if self.on_start is not None:
            await self.on_start(start)

    async def deltas(self) -> AsyncGenerator[Delta, None]:
        *before, last = self.inputs
        options = TurnOptions(
            parent_id=self.parent_id,
            before=tuple(before),
            instructions=self.instructions,
            model=self.model,
            on_start=self._started,
        )
        held: Delta | None = None
        try:
            send = self.engine.send(self.conversation_id, last.content, self.params, policy=self.policy, turn=options)
            async with aclosing(send) as events:
                async for event in events:
                    if isinstance(event, Reply):
                        self.reply = event
                    elif event.finish_reason is not None:
                        if event.content or event.reasoning:
                            yield Delta(content=event.content, reasoning=event.reasoning)
                        held = Delta(finish_reason=event.finish_reason, usage=event.usage)
                    else:
                        yield event
        except BaseException as exc:
            if self.start is not None and self.on_stored is not None:
                status = "failed" if isinstance(exc, Exception) else "cancelled"
                await _quietly(self.on_stored(self, status, exc))
            raise
        if self.on_stored is not None:
            await asyncio.shield(self.on_stored(self, "completed", None))
        if held is not None:
            yield held

    async def collect(self) -> Accumulator:
        answer = Accumulator()
        async with aclosing(self.deltas()) as deltas:
            async for delta in deltas:
                answer.add(delta)
        return answer


async def _quietly(job: Awaitable[None]) -> None:
    """Record a turn's end while it is being torn down: shielded, and a failure only logged."""
    try:
        await asyncio.shield(job)
    except MultiturnError:
        log.warning("could not record the end of a turn", exc_info=True)


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
        await engine.get(conversation_id)  # 404 before anything else
        chat, policy = requested_policy(request, chat)
        turn = StoredTurn(
            engine,
            conversation_id,
            tuple(messages),
            chat.params,
            policy=policy,
            instructions="\n\n".join(instructions) if instructions else None,
            model=chat.model,
        )
        if not options.stream:
            answer = await turn.collect()
            body = chat_wire.completion_to_response(
                answer.completion(), request_id=rid, model=chat.model, created=now()
            )
            return Response(body, media_type=JSON, headers=_turn_headers(turn, conversation_id))
        deltas = await prime(turn.deltas())
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


def _turn_headers(turn: StoredTurn, conversation_id: str) -> dict[str, str]:
    headers = {CONVERSATION_HEADER: conversation_id}
    if turn.start is not None:
        headers[REPORT_HEADER] = report_header(turn.start.report)
    return headers
