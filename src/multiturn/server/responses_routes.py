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
``instructions`` are not items.

Tools: the request's function tools, ``tool_choice`` and ``text.format`` reach the backend as
canonical parameters (``protocols/responses/options.py``; what is refused is refused there). An
input that ends with a ``function_call_output`` is stored whole before the answer (the turn has
no user content); one that opens with a result is checked against the stored items it continues
(the previous response's answer, the conversation's head) before anything is written.

``truncation: auto`` is the ``window`` policy, ``disabled`` is
``full`` (over the window is a 400); ``context_policy`` (extension) names any preset. The
response object carries ``context_report`` (extension) and non-streamed answers also the
``X-Multiturn-Context`` header.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..engine import Engine, ResponseSpec, TurnOptions
from ..errors import InvalidInput, NotFound
from ..ids import new_id, now_ms
from ..protocols.openai_chat.errors import describe
from ..protocols.responses import translate as wire
from ..protocols.responses.stream import ResponseEventEncoder, response_error_code
from ..records import ConversationRecord, ItemRecord
from ..store.responses import ORIGIN_KEY, ORIGIN_RESPONSES, ResponseRecord
from ..types import ChatRequest, Message, Part
from .errors import error_response, shown
from .gateway import gateway_of, request_id
from .stateful import REPORT_HEADER, deltas_of, engine_for, input_limits, report_header, tenant_route
from .streaming import EventStream, encode, prime

JSON = "application/json"
PAGE_LIMIT = 20
MAX_PAGE = 100


async def create(request: Request) -> Response:
    gateway = gateway_of(request)
    rid = request_id(request)
    try:
        await gateway.authorize(request)
        ask = wire.parse_create(await gateway.read_body(request), input_limits(gateway))
        engine = engine_for(gateway, request)
        policy = ask.policy or getattr(request.state, "key_policy", None)
        if not ask.store:
            return await _unstored(request, engine, ask, policy)
        return await _stored(request, engine, ask, policy)
    except Exception as exc:
        return error_response(request.url.path, exc, rid)


async def _stored(request: Request, engine: Engine, ask: wire.ResponseCreate, policy: str | None) -> Response:
    made: ConversationRecord | None = None
    after: str | None = None
    parent: str | None = None
    conversation: ConversationRecord | None = None
    if ask.previous_response_id is not None:
        try:
            previous, conversation = await engine.response_and_conversation(ask.previous_response_id)
        except NotFound:
            raise NotFound(f"Previous response with id '{ask.previous_response_id}' not found.") from None
        if previous.output_item_id is None:  # still in progress: the turn waits for its answer
            if ask.inputs[0].role == "tool":
                raise InvalidInput(
                    f"previous response {previous.id!r} is still in progress: its function calls are not known "
                    "yet, so a function_call_output cannot answer them"
                )
            after = previous.id
        else:
            parent = previous.output_item_id
            if ask.inputs[0].role == "tool":
                answer = await engine.response_answer(previous)
                called = [answer.to_message()] if answer is not None else []
                wire.check_continued(ask, called, "previous_response_id")
    elif ask.conversation_id is not None:
        conversation = await engine.get(ask.conversation_id)
        if ask.inputs[0].role == "tool":
            path = await engine.history(conversation.id)
            wire.check_continued(ask, wire.continued_by([i.to_message() for i in path]), "conversation")
    else:
        conversation = made = await engine.create(model=ask.model, metadata={ORIGIN_KEY: ORIGIN_RESPONSES})
    conversation_id = conversation.id
    spec = ResponseSpec(
        id=new_id("resp"),
        model=ask.model,
        created_at=now_ms(),
        previous_response_id=ask.previous_response_id,
        instructions=ask.instructions,
        metadata=dict(ask.metadata),
        params=dict(ask.echo),
        describe_error=_error_object,
    )
    content, before = _split(ask)
    options = TurnOptions(
        parent_id=parent,
        parent_known=parent is not None,
        after_response=after,
        waits=True if after is not None else None,
        conversation=conversation,
        before=before,
        instructions=ask.instructions,
        model=ask.model,
        response=spec,
    )
    turn = engine.turn(conversation_id, content, ask.params, policy=policy, options=options)
    try:
        if not ask.stream:
            await turn.collect()
            assert turn.start is not None and turn.answer is not None and turn.status is not None
            record = ResponseRecord(
                id=spec.id,
                tenant_id=engine.tenant_id,
                conversation_id=conversation_id,
                input_item_ids=turn.start.input_ids,
                model=spec.model,
                status=turn.status,
                created_at=spec.created_at,
                previous_response_id=spec.previous_response_id,
                output_item_id=turn.answer.id,
                usage=turn.answer.usage,
                instructions=spec.instructions,
                metadata=spec.metadata,
                params=spec.params,
            )
            body = _response_object(record, turn.answer)  # as stored: no need to read it back
            return Response(
                wire.dumps(body), media_type=JSON, headers={REPORT_HEADER: report_header(turn.start.report)}
            )
        deltas = await prime(deltas_of(turn))
    except BaseException:
        if made is not None and turn.start is None:  # nothing was answered: leave nothing behind
            await engine.delete(made.id)
        raise
    assert turn.start is not None
    state = wire.ResponseState(
        id=spec.id,
        created_at=spec.created_at // 1000,
        model=ask.model,
        status="in_progress",
        previous_response_id=ask.previous_response_id,
        conversation_id=conversation_id,
        instructions=ask.instructions,
        metadata=ask.metadata,
        echo={**ask.echo, "store": True},
        context_report=turn.start.report,
    )
    encoder = ResponseEventEncoder(state, turn.start.answer_id)
    headers = {REPORT_HEADER: report_header(turn.start.report)}
    return EventStream(encode(encoder, deltas, head=encoder.start()), headers=headers)


def _split(ask: wire.ResponseCreate) -> tuple[tuple[Part, ...] | None, tuple[Message, ...]]:
    """The turn's user content and the items stored before it; an input that ends with a tool
    result has no user content: all of it is stored before the answer."""
    *before, last = ask.inputs
    if last.role == "user":
        return last.content, tuple(before)
    return None, ask.inputs


def _error_object(exc: BaseException) -> dict[str, Any]:
    """A failed turn's ``error`` in the Responses object."""
    detail = describe(shown(exc))  # an upstream's detail only in the log
    return {"code": response_error_code(detail.status), "message": detail.message}


async def _previous(engine: Engine, response_id: str) -> ResponseRecord:
    """The response a ``store: false`` request continues: it needs its answer now."""
    try:
        previous = await engine.response(response_id)
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
        history = await engine.path(previous.conversation_id, previous.output_item_id)
    elif ask.conversation_id is not None:
        conversation = await engine.get(ask.conversation_id)
        history = await engine.history(conversation.id)
        system = system if system is not None else conversation.system_prompt
    if ask.inputs[0].role == "tool" and (ask.previous_response_id or ask.conversation_id):
        continued = "previous_response_id" if ask.previous_response_id else "conversation"
        wire.check_continued(ask, wire.continued_by([item.to_message() for item in history]), continued)
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
        report = planned
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
        output=wire.output_items(
            answer_id, done.content, done.reasoning, "incomplete" if incomplete else "completed", done.tool_calls
        ),
        usage=done.usage,
        incomplete_reason="max_output_tokens" if incomplete else None,
    )
    return Response(wire.dumps(wire.response_object(final)), media_type=JSON)


async def _object(engine: Engine, record: ResponseRecord) -> dict[str, object]:
    return _response_object(record, await engine.response_answer(record))


def _response_object(record: ResponseRecord, answer: ItemRecord | None) -> dict[str, object]:
    """The Responses object of a stored turn and its stored answer (``None`` while in progress)."""
    output: tuple[dict[str, object], ...] = ()
    report = None
    if answer is not None:
        status: wire.ItemStatus = (
            "completed" if answer.status == "completed" and record.status == "completed" else "incomplete"
        )
        output = wire.output_items(answer.id, answer.text, answer.reasoning, status, answer.tool_calls)
        report = answer.context_report
    cut = answer is not None and answer.finish_reason == "length"
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
        incomplete_reason="max_output_tokens" if record.status == "incomplete" and cut else None,
        context_report=report,
    )
    return wire.response_object(state)


@tenant_route
async def retrieve(request: Request, engine: Engine) -> Response:
    record = await engine.response(request.path_params["id"])
    return Response(wire.dumps(await _object(engine, record)), media_type=JSON)


@tenant_route
async def delete(request: Request, engine: Engine) -> Response:
    response_id = request.path_params["id"]
    await engine.delete_response(response_id)
    body = {"id": response_id, "object": "response.deleted", "deleted": True}
    return Response(wire.dumps(body), media_type=JSON)


@tenant_route
async def input_items(request: Request, engine: Engine) -> Response:
    path = await engine.response_context(await engine.response(request.path_params["id"]))
    objects = [shown for item in path for shown in item_objects(item)]
    return Response(wire.dumps(page(request, objects, default_order="desc")), media_type=JSON)


def item_objects(item: ItemRecord) -> list[dict[str, object]]:
    """A stored item as Responses items (an answer with calls is several)."""
    return wire.item_objects(
        item.id, item.role, item.content, item.status, tool_calls=item.tool_calls, tool_call_id=item.tool_call_id
    )


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
