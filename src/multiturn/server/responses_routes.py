"""The Responses API: ``POST /v1/responses``, ``GET|DELETE /v1/responses/{id}``,
``GET /v1/responses/{id}/input_items`` (and the same under ``/compatible-mode/v1``).

A response is one stored turn of a conversation:
- ``previous_response_id``: the new input goes under that response's output item, so two
  responses on the same previous response are siblings (both kept, both retrievable);
- ``conversation``: the new input goes at the conversation's head;
- neither: a new conversation is made for the chain (metadata ``origin: responses``); deleting
  the chain's last response deletes it.
``response.conversation`` always names the conversation the items went to.

``store: false`` answers from the same context and writes nothing: the response cannot be
retrieved or continued (``previous_response_id`` on it is a 404), as Model Studio documents.

Input items of a response are its whole context as stored: the path from the conversation's
first item to its newest input item (earlier turns included, as Model Studio lists them);
``instructions`` are not items. ``truncation: auto`` is the ``window`` policy, ``disabled`` is
``full`` (over the window is a 400); ``context_policy`` (extension) names any preset. The
response object carries ``context_report`` (extension) and non-streamed answers also the
``X-Multiturn-Context`` header.
"""

from __future__ import annotations

from dataclasses import replace

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..engine import Engine, TurnStart
from ..errors import InvalidInput, NotFound
from ..ids import new_id, now_ms
from ..protocols.openai_chat.errors import describe
from ..protocols.responses import translate as wire
from ..protocols.responses.stream import ResponseEventEncoder, response_error_code
from ..records import ItemRecord
from ..store.responses import ORIGIN_KEY, ORIGIN_RESPONSES, ResponseRecord, ResponseStatus
from ..types import ChatRequest, Message
from .errors import error_response
from .gateway import gateway_of, request_id
from .stateful import REPORT_HEADER, StoredTurn, engine_for, report_header, responses_of, tenant_route
from .streaming import EventStream, encode, prime

JSON = "application/json"
PAGE_LIMIT = 20
MAX_PAGE = 100


async def create(request: Request) -> Response:
    gateway = gateway_of(request)
    rid = request_id(request)
    try:
        await gateway.authorize(request)
        ask = wire.parse_create(await gateway.read_body(request))
        engine = engine_for(gateway, request)
        policy = ask.policy or getattr(request.state, "key_policy", None)
        if not ask.store:
            return await _unstored(request, engine, ask, policy)
        return await _stored(request, engine, ask, policy)
    except Exception as exc:
        return error_response(request.url.path, exc, rid)


async def _stored(request: Request, engine: Engine, ask: wire.ResponseCreate, policy: str | None) -> Response:
    store = responses_of(engine)
    parent: str | None = None
    made: str | None = None
    if ask.previous_response_id is not None:
        previous = await _previous(engine, ask.previous_response_id)
        conversation_id, parent = previous.conversation_id, previous.output_item_id
    elif ask.conversation_id is not None:
        conversation_id = (await engine.get(ask.conversation_id)).id
    else:
        conversation_id = made = (await engine.create(model=ask.model, metadata={ORIGIN_KEY: ORIGIN_RESPONSES})).id
    state = wire.ResponseState(
        id=new_id("resp"),
        created_at=now_ms() // 1000,
        model=ask.model,
        status="in_progress",
        previous_response_id=ask.previous_response_id,
        conversation_id=conversation_id,
        instructions=ask.instructions,
        metadata=ask.metadata,
        echo={**ask.echo, "store": True},
    )

    async def started(start: TurnStart) -> None:
        record = ResponseRecord(
            id=state.id,
            tenant_id=engine.tenant_id,
            conversation_id=conversation_id,
            previous_response_id=ask.previous_response_id,
            input_item_ids=start.path[-len(ask.inputs) :],
            model=ask.model,
            status="in_progress",
            created_at=state.created_at * 1000,
            instructions=ask.instructions,
            metadata=dict(ask.metadata),
            params=dict(ask.echo),
        )
        await store.create_response(record)

    async def stored(turn: StoredTurn, status: str, error: BaseException | None) -> None:
        assert turn.start is not None
        usage = turn.reply.usage if turn.reply is not None else None
        final: ResponseStatus = "cancelled" if status == "cancelled" else "failed" if error else "completed"
        if turn.reply is not None and turn.reply.finish_reason == "length":
            final = "incomplete"
        failure = None
        if isinstance(error, Exception):
            detail = describe(error)
            failure = {"code": response_error_code(detail.status), "message": detail.message}
        await store.finish_response(
            state.id,
            tenant_id=engine.tenant_id,
            status=final,
            output_item_id=turn.start.answer_id,
            usage=usage,
            error=failure,
        )

    turn = StoredTurn(
        engine,
        conversation_id,
        ask.inputs,
        ask.params,
        policy=policy,
        parent_id=parent,
        instructions=ask.instructions,
        model=ask.model,
        on_start=started,
        on_stored=stored,
    )
    try:
        if not ask.stream:
            await turn.collect()
            body = await _object(engine, await store.get_response(state.id, tenant_id=engine.tenant_id))
            assert turn.start is not None
            headers = {REPORT_HEADER: report_header(turn.start.report)}
            return Response(wire.dumps(body), media_type=JSON, headers=headers)
        deltas = await prime(turn.deltas())
    except BaseException:
        if made is not None and turn.start is None:  # nothing was answered: leave nothing behind
            await engine.store.delete_conversation(made, tenant_id=engine.tenant_id)
        raise
    assert turn.start is not None
    state = replace(state, context_report=wire.report_object(turn.start.report))
    encoder = ResponseEventEncoder(state, turn.start.answer_id)
    headers = {REPORT_HEADER: report_header(turn.start.report)}
    return EventStream(encode(encoder, deltas, head=encoder.start()), headers=headers)


async def _previous(engine: Engine, response_id: str) -> ResponseRecord:
    try:
        previous = await responses_of(engine).get_response(response_id, tenant_id=engine.tenant_id)
    except NotFound:
        raise NotFound(f"Previous response with id '{response_id}' not found.") from None
    if previous.output_item_id is None or previous.status == "in_progress":
        raise InvalidInput(f"previous response {response_id!r} has no stored answer (status {previous.status})")
    return previous


async def _unstored(request: Request, engine: Engine, ask: wire.ResponseCreate, policy: str | None) -> Response:
    """``store: false``: the same context, read only; nothing is written."""
    history: list[ItemRecord] = []
    system = ask.instructions
    if ask.previous_response_id is not None:
        previous = await _previous(engine, ask.previous_response_id)
        history = await engine.store.path(previous.conversation_id, previous.output_item_id, tenant_id=engine.tenant_id)
    elif ask.conversation_id is not None:
        conversation = await engine.get(ask.conversation_id)
        history = await engine.history(conversation.id)
        system = system if system is not None else conversation.system_prompt
    messages = [Message.of("system", system)] if system else []
    messages += [
        item.to_message()
        for item in history
        if item.status != "failed" and (item.role != "assistant" or item.content or item.tool_calls)
    ]
    chat = ChatRequest(model=ask.model, messages=(*messages, *ask.inputs), params=ask.params)
    report = None
    if history or policy is not None:
        chat, planned, _ = await engine.plan_stateless(chat, policy or "window")
        report = wire.report_object(planned)
    state = wire.ResponseState(
        id=new_id("resp"),
        created_at=now_ms() // 1000,
        model=ask.model,
        status="in_progress",
        previous_response_id=ask.previous_response_id,
        instructions=ask.instructions,
        metadata=ask.metadata,
        echo={**ask.echo, "store": False},
        context_report=report,
    )
    answer_id = new_id("item")
    if ask.stream:
        deltas = await prime(engine.complete(chat))
        encoder = ResponseEventEncoder(state, answer_id)
        return EventStream(encode(encoder, deltas, head=encoder.start()), headers={})
    done = await engine.complete_once(chat)
    incomplete = done.finish_reason == "length"
    final = replace(
        state,
        status="incomplete" if incomplete else "completed",
        output=wire.output_items(answer_id, done.content, done.reasoning, "incomplete" if incomplete else "completed"),
        usage=done.usage,
        incomplete_reason="max_output_tokens" if incomplete else None,
    )
    return Response(wire.dumps(wire.response_object(final)), media_type=JSON)


async def _object(engine: Engine, record: ResponseRecord) -> dict[str, object]:
    output: tuple[dict[str, object], ...] = ()
    report = None
    if record.output_item_id is not None:
        item = await engine.store.get_item(record.output_item_id, tenant_id=engine.tenant_id)
        status: wire.ItemStatus = (
            "completed" if item.status == "completed" and record.status == "completed" else "incomplete"
        )
        output = wire.output_items(item.id, item.text, item.reasoning, status)
        report = wire.report_object(item.context_report) if item.context_report else None
    state = wire.ResponseState(
        id=record.id,
        created_at=record.created_at // 1000,
        model=record.model,
        status=record.status,
        output=output,
        usage=record.usage,
        previous_response_id=record.previous_response_id,
        conversation_id=record.conversation_id,
        instructions=record.instructions,
        metadata=record.metadata,
        echo={**record.params, "store": True},
        error=record.error,
        incomplete_reason="max_output_tokens" if record.status == "incomplete" else None,
        context_report=report,
    )
    return wire.response_object(state)


@tenant_route
async def retrieve(request: Request, engine: Engine) -> Response:
    record = await responses_of(engine).get_response(request.path_params["id"], tenant_id=engine.tenant_id)
    return Response(wire.dumps(await _object(engine, record)), media_type=JSON)


@tenant_route
async def delete(request: Request, engine: Engine) -> Response:
    response_id = request.path_params["id"]
    await responses_of(engine).delete_response(response_id, tenant_id=engine.tenant_id)
    body = {"id": response_id, "object": "response.deleted", "deleted": True}
    return Response(wire.dumps(body), media_type=JSON)


@tenant_route
async def input_items(request: Request, engine: Engine) -> Response:
    record = await responses_of(engine).get_response(request.path_params["id"], tenant_id=engine.tenant_id)
    path = await engine.store.path(record.conversation_id, record.input_item_ids[-1], tenant_id=engine.tenant_id)
    objects = [wire.item_object(i.id, i.role, i.content, i.status) for i in path]
    return Response(wire.dumps(page(request, objects, default_order="desc")), media_type=JSON)


def page(request: Request, objects: list[dict[str, object]], *, default_order: str) -> dict[str, object]:
    """A cursor page of ``objects`` (oldest first) under the query's ``order``, ``after`` and
    ``limit``; ``include`` and other parameters are ignored."""
    order, after, limit = query_page(request, default_order)
    ordered = list(reversed(objects)) if order == "desc" else objects
    if after is not None:
        ids = [o["id"] for o in ordered]
        if after not in ids:
            raise NotFound(f"item {after!r} not found")
        ordered = ordered[ids.index(after) + 1 :]
    return wire.list_page(ordered[:limit], has_more=len(ordered) > limit)


def query_page(request: Request, default_order: str) -> tuple[str, str | None, int]:
    query = request.query_params
    order = query.get("order", default_order)
    if order not in ("asc", "desc"):
        raise InvalidInput(f"order must be 'asc' or 'desc', not {order!r}")
    raw = query.get("limit", str(PAGE_LIMIT))
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE:
        raise InvalidInput(f"limit must be an integer in [1, {MAX_PAGE}], not {raw!r}")
    return order, query.get("after") or None, int(raw)


routes = [
    route
    for prefix in ("/v1", "/compatible-mode/v1")
    for route in (
        Route(f"{prefix}/responses", create, methods=["POST"]),
        Route(f"{prefix}/responses/{{id}}", retrieve, methods=["GET"]),
        Route(f"{prefix}/responses/{{id}}", delete, methods=["DELETE"]),
        Route(f"{prefix}/responses/{{id}}/input_items", input_items, methods=["GET"]),
    )
]
