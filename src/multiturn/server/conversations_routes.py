"""The Conversations API: ``/v1/conversations`` create, retrieve, update (metadata), delete;
``/v1/conversations/{id}/items`` list, create, retrieve, delete. Extensions: ``GET
/v1/conversations`` (the tenant's conversations, newest first, ``after``/``limit``) and ``POST
/v1/conversations/{id}/fork`` (``{"item_id": ...}``: a new conversation holding the path up to
that item; default the head).

A conversation is a tree; its items, as this API lists them, are the current branch: the path
from the first item to the head. Deleting an item deletes it and everything after it on every
branch (its subtree), and the head moves back to its parent when it was inside: items are never
rewritten, so a middle item cannot be cut out of a chain. The caller's ``metadata`` is kept
apart from the conversation's own settings (``context_policy``, an extension, sets its policy).

Items are shown in the Responses shapes: messages, ``function_call`` items (an answer with tool
calls shows one per call, ``fc_`` + its id + ``_`` + the call's position, after its message if it
has text) and ``function_call_output`` items (stored ``tool`` messages). Items appended may be
any of them; results must answer calls at the head or among the items (``protocols/history.py``).
Retrieving a call's id gives that call; deleting it deletes the answer it belongs to (and, as
always, what follows).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..context.plan import preset
from ..engine import Engine
from ..errors import NotFound
from ..protocols.responses import translate as wire
from ..records import ConversationRecord, ItemRecord
from .gateway import gateway_of
from .responses_routes import item_objects, page, query_page
from .stateful import input_limits, tenant_route

JSON = "application/json"
CLIENT_METADATA = "client_metadata"
"""Where a conversation's metadata keeps what API callers set (``metadata`` on the wire)."""


def _conversation(record: ConversationRecord) -> dict[str, Any]:
    return wire.conversation_object(record.id, record.created_at, record.metadata.get(CLIENT_METADATA) or {})


def _items(items: list[ItemRecord]) -> list[dict[str, Any]]:
    return [shown for item in items for shown in item_objects(item)]


def _json(body: Any) -> Response:
    return Response(wire.dumps(body), media_type=JSON)


@tenant_route
async def create(request: Request, engine: Engine) -> Response:
    gateway = gateway_of(request)
    change = wire.parse_conversation_create(await gateway.read_body(request), input_limits(gateway))
    metadata: dict[str, Any] = {CLIENT_METADATA: change.metadata or {}}
    if change.policy is not None:
        preset(change.policy)  # an unknown name is a 400 now, not at the first turn
        metadata["policy"] = change.policy
    conversation = await engine.create(metadata=metadata)
    await engine.append_items(conversation.id, change.items)
    return _json(_conversation(conversation))


@tenant_route
async def listing(request: Request, engine: Engine) -> Response:
    order, after, limit = query_page(request, "desc")
    found = await engine.page(after=after, limit=limit + 1, descending=order == "desc")
    return _json(wire.list_page([_conversation(c) for c in found[:limit]], has_more=len(found) > limit))


@tenant_route
async def retrieve(request: Request, engine: Engine) -> Response:
    return _json(_conversation(await engine.get(request.path_params["id"])))


@tenant_route
async def update(request: Request, engine: Engine) -> Response:
    conversation = await engine.get(request.path_params["id"])
    change = wire.parse_conversation_update(await gateway_of(request).read_body(request))
    metadata = dict(conversation.metadata)
    if change.metadata is not None:
        metadata[CLIENT_METADATA] = change.metadata
    if change.policy is not None:
        preset(change.policy)
        metadata["policy"] = change.policy
    return _json(_conversation(await engine.update(conversation.id, metadata=metadata)))


@tenant_route
async def delete(request: Request, engine: Engine) -> Response:
    conversation_id = request.path_params["id"]
    await engine.delete(conversation_id)
    return _json({"id": conversation_id, "object": "conversation.deleted", "deleted": True})


@tenant_route
async def fork(request: Request, engine: Engine) -> Response:
    body = await gateway_of(request).read_body(request)
    at = wire.parse_fork(body)
    return _json(_conversation(await engine.fork(request.path_params["id"], at)))


@tenant_route
async def list_items(request: Request, engine: Engine) -> Response:
    path = await engine.history(request.path_params["id"])
    return _json(page(request, _items(path), default_order="desc"))


@tenant_route
async def create_items(request: Request, engine: Engine) -> Response:
    conversation = await engine.get(request.path_params["id"])
    gateway = gateway_of(request)
    inputs = wire.parse_items(await gateway.read_body(request), input_limits(gateway))
    before = []
    if inputs.messages[0].role == "tool":  # results of the calls at the head
        before = wire.continued_by([item.to_message() for item in await engine.history(conversation.id)])
    wire.check_inputs(before, inputs, "items", continued="conversation")
    added = await engine.append_items(conversation.id, inputs.messages)
    return _json(wire.list_page(_items(added), has_more=False))


@tenant_route
async def retrieve_item(request: Request, engine: Engine) -> Response:
    shown_id = request.path_params["item_id"]
    item = await engine.item(request.path_params["id"], wire.stored_id(shown_id))
    for shown in item_objects(item):
        if shown["id"] == shown_id:
            return _json(shown)
    raise NotFound(f"item {shown_id!r} not found in conversation {item.conversation_id!r}")


@tenant_route
async def delete_item(request: Request, engine: Engine) -> Response:
    stored = wire.stored_id(request.path_params["item_id"])  # a call: the answer it belongs to
    conversation = await engine.delete_item(request.path_params["id"], stored)
    return _json(_conversation(conversation))


routes = [
    route
    for prefix in ("/v1", "/compatible-mode/v1")
    for route in (
        Route(f"{prefix}/conversations", create, methods=["POST"]),
        Route(f"{prefix}/conversations", listing, methods=["GET"]),
        Route(f"{prefix}/conversations/{{id}}", retrieve, methods=["GET"]),
        Route(f"{prefix}/conversations/{{id}}", update, methods=["POST"]),
        Route(f"{prefix}/conversations/{{id}}", delete, methods=["DELETE"]),
        Route(f"{prefix}/conversations/{{id}}/fork", fork, methods=["POST"]),
        Route(f"{prefix}/conversations/{{id}}/items", list_items, methods=["GET"]),
        Route(f"{prefix}/conversations/{{id}}/items", create_items, methods=["POST"]),
        Route(f"{prefix}/conversations/{{id}}/items/{{item_id}}", retrieve_item, methods=["GET"]),
        Route(f"{prefix}/conversations/{{id}}/items/{{item_id}}", delete_item, methods=["DELETE"]),
    )
]
