"""The OpenAPI document, built from the same pydantic wire models that parse and describe
every body, so the published schema is the contract the server keeps (fuzzers check it).

Invariants, pinned by ``tests/fuzz/test_schema_shape.py`` and checked against the running server
by the schemathesis run in ``tests/fuzz/``:

- every ``{param}`` of a path is declared as a path parameter of each of its operations;
- every POST declares its request body (``application/json``) and a 415 for any other type;
- every operation declares each error status its route can answer, with the body of its
  protocol's error shape: ``{"error": {...}, "request_id"}`` (OpenAI, Responses, Conversations)
  or ``{"request_id", "code", "message"}`` (DashScope-native); no operation has a ``default``
  response, so a status the document does not list is a finding;
- every operation has a unique ``operationId``; the creating operations carry OpenAPI links to
  the operations that read, change or delete what they created (stateful fuzzing follows them);
- a streamed answer (``text/event-stream``) describes one event, its ``data`` a JSON document of
  the protocol's chunk model (the OpenAI ``[DONE]`` sentinel aside).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from .. import __version__
from ..context.plan import PRESETS
from ..protocols.dashscope import wire as native
from ..protocols.openai_chat import wire as compat
from ..protocols.responses import wire as stateful
from . import inspector_wire as inspector

REF = "#/components/schemas/{model}"
PREFIXES = {"/v1": "", "/compatible-mode/v1": "Compat"}
"""The OpenAI-style prefixes and the suffix of their operations' ids (ids are unique)."""
NATIVE_TEXT = "/api/v1/services/aigc/text-generation/generation"
NATIVE_MULTIMODAL = "/api/v1/services/aigc/multimodal-generation/generation"
MAX_PAGE = 100
"""``responses_routes.MAX_PAGE``: the largest ``limit`` a list accepts (routers are not imported here)."""

STATUS_TEXT = {
    400: "Invalid request: a malformed body, a field out of range, an unknown policy, a bad query parameter",
    401: "Authentication is on and the Bearer key is missing, wrong or revoked",
    404: "No such object (or another tenant's), or no such model",
    413: "The request body exceeds `max_request_bytes`",
    415: "The request body is not declared as JSON (`Content-Type: application/json`)",
    422: "The upstream found the request unprocessable (its message relayed)",
    429: (
        "Over the key's request rate or open streams (`rate_limit_requests`, `max_concurrent_streams`),"
        " or the upstream's rate limit; `Retry-After` says when to retry"
    ),
    500: "An internal error (the message is generic; the request id finds the detail in the log)",
    502: "The upstream failed (a generic message naming the request id; the detail is in the log)",
    503: "The model cannot be used (not pulled, missing optional dependency)",
    504: "The upstream did not answer in time",
}

# Which errors each kind of route can answer (the routers, ``server/gateway.py`` and
# ``protocols/*/errors.py`` decide). Every route but /healthz authenticates (401) and takes a
# token of its key's request rate (429); every POST refuses a body not declared as JSON (415).
LOOKUP = (401, 404, 429, 500)  # GET or DELETE of one object by id
PAGE = (400, 401, 404, 429, 500)  # a list: `order`/`limit` checked (400), `after` must be in it (404)
WRITE = (400, 401, 404, 413, 415, 429, 500)  # a stateful POST on an object
CREATE = (400, 401, 413, 415, 429, 500)  # a new conversation
UPSTREAM = (422, 502, 503, 504)  # what answering with a model adds
GENERATE = (*WRITE, *UPSTREAM)  # 404: an unknown model, conversation or previous response
NATIVE_GENERATE = (*CREATE, *UPSTREAM)  # DashScope: an unknown model is a 400
MODELS = (401, 429, 500)


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF.format(model=model.__name__)}


def _json(model: type[BaseModel]) -> dict[str, Any]:
    return {"application/json": {"schema": _ref(model)}}


def _sse(data: dict[str, Any], description: str, *, event: dict[str, Any] | None = None) -> dict[str, Any]:
    """A ``text/event-stream`` answer: ``schema`` describes one event (OpenAPI 3.1 reading)."""
    properties: dict[str, Any] = {"data": data}
    if event is not None:
        properties["event"] = event
    schema = {"type": "object", "description": description, "properties": properties}
    return {"text/event-stream": {"schema": schema}}


def _json_data(schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "string", "contentMediaType": "application/json", "contentSchema": schema}


def _request_id_header() -> dict[str, Any]:
    return {"X-Request-Id": {"$ref": "#/components/headers/X-Request-Id"}}


def _ok(description: str, content: dict[str, Any], headers: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"description": description, "headers": {**_request_id_header(), **(headers or {})}, "content": content}


def _errors(error: type[BaseModel], statuses: tuple[int, ...]) -> dict[str, Any]:
    """The error responses ``statuses``, each with a body in the shape ``error``."""
    answers: dict[str, Any] = {}
    for status in sorted(statuses):
        headers = _request_id_header()
        if status == 429:
            headers["Retry-After"] = {"$ref": "#/components/headers/Retry-After"}
        answers[str(status)] = {"description": STATUS_TEXT[status], "headers": headers, "content": _json(error)}
    return answers


def _body(model: type[BaseModel], *, required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": _json(model)}


def _path(name: str, description: str) -> dict[str, Any]:
    # An id never holds a "/" (the route would not match it): say so, or a fuzzer builds other paths.
    schema = {"type": "string", "minLength": 1, "pattern": "^[^/]+$"}
    return {"name": name, "in": "path", "required": True, "schema": schema, "description": description}


def _page_query(default_order: str) -> list[dict[str, Any]]:
    return [
        {
            "name": "order",
            "in": "query",
            "required": False,
            "schema": {"type": "string", "enum": ["asc", "desc"], "default": default_order},
            "description": "`asc`: oldest first; `desc`: newest first",
        },
        {
            "name": "after",
            "in": "query",
            "required": False,
            "schema": {"type": "string"},
            "description": "the id after which the page starts (404 when it is not in the list)",
        },
        {
            "name": "limit",
            "in": "query",
            "required": False,
            "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": 20},
        },
    ]


def _policy_headers() -> list[dict[str, Any]]:
    """The opt-in context policy of a stateless request (``server/context.py``)."""
    return [
        {
            "name": "X-Multiturn-Policy",
            "in": "header",
            "required": False,
            "schema": {"type": "string", "enum": list(PRESETS)},
            "description": "plan the messages with this context policy preset (multiturn extension)",
        },
        {
            "name": "X-Multiturn-Budget",
            "in": "header",
            "required": False,
            "schema": {"type": "string", "pattern": "^[0-9]*[1-9][0-9]*$"},
            "description": "cap the prompt at this many tokens (a positive integer; multiturn extension)",
        },
    ]


def _context_header() -> dict[str, Any]:
    return {
        "X-Multiturn-Context": {
            "description": "the context report as compact JSON, when a policy planned the request",
            "schema": {"type": "string"},
        }
    }


# --- the operations, protocol by protocol --------------------------------------------------------------


def _chat_completions(suffix: str) -> dict[str, Any]:
    data = {
        "if": {"const": "[DONE]"},
        "else": _json_data({"anyOf": [_ref(compat.ChatCompletionChunk), _ref(compat.StreamError)]}),
    }
    stream = _sse(data, "a ChatCompletionChunk (or an error event) as JSON; the last event is `data: [DONE]`")
    conversation = {
        "name": "X-Multiturn-Conversation",
        "in": "header",
        "required": False,
        "schema": {"type": "string"},
        "description": "continue this stored conversation (multiturn extension; the body's `conversation` too)",
    }
    headers = {
        **_context_header(),
        "X-Multiturn-Conversation": {"description": "the stored conversation continued", "schema": {"type": "string"}},
    }
    return {
        "post": {
            "operationId": f"createChatCompletion{suffix}",
            "tags": ["openai"],
            "summary": "Create a chat completion (OpenAI-compatible)",
            "parameters": [conversation, *_policy_headers()],
            "requestBody": _body(compat.ChatCompletionRequest),
            "responses": {
                "200": _ok(
                    "A completion, or with `stream: true` a stream of ChatCompletionChunk events",
                    {**_json(compat.ChatCompletionResponse), **stream},
                    headers,
                ),
                **_errors(compat.ErrorResponse, GENERATE),
            },
        }
    }


def _models(suffix: str) -> dict[str, Any]:
    return {
        "get": {
            "operationId": f"listModels{suffix}",
            "tags": ["openai"],
            "summary": "List the model names this gateway serves",
            "responses": {
                "200": _ok("Models", _json(compat.ModelList)),
                **_errors(compat.ErrorResponse, MODELS),
            },
        }
    }


def _generation(operation_id: str, summary: str) -> dict[str, Any]:
    sse_header = {
        "name": "X-DashScope-SSE",
        "in": "header",
        "required": False,
        "schema": {"type": "string", "enum": ["enable", "disable"]},
        "description": "`enable` streams the answer as server-sent events",
    }
    stream = _sse(
        _json_data({"anyOf": [_ref(native.StreamChunk), _ref(native.ErrorBody)]}),
        "`id:`, `event:result` (or `event:error`), `:HTTP_STATUS/<status>` and `data:<StreamChunk JSON>`",
        event={"type": "string", "enum": ["result", "error"]},
    )
    return {
        "post": {
            "operationId": operation_id,
            "tags": ["dashscope"],
            "summary": summary,
            "parameters": [sse_header, *_policy_headers()],
            "requestBody": _body(native.GenerationRequest),
            "responses": {
                "200": _ok(
                    "A generation, or when streaming a stream of result events",
                    {**_json(native.GenerationResponse), **stream},
                    _context_header(),
                ),
                **_errors(native.ErrorBody, NATIVE_GENERATE),
            },
        }
    }


def _op(
    operation_id: str,
    summary: str,
    answer: type[BaseModel],
    statuses: tuple[int, ...],
    *,
    parameters: list[dict[str, Any]] | None = None,
    body: dict[str, Any] | None = None,
    links: dict[str, Any] | None = None,
    tag: str,
) -> dict[str, Any]:
    ok = _ok(answer.__name__, _json(answer))
    if links:
        ok["links"] = links
    op: dict[str, Any] = {
        "operationId": operation_id,
        "tags": [tag],
        "summary": summary,
        "parameters": parameters or [],
        "responses": {"200": ok, **_errors(compat.ErrorResponse, statuses)},
    }
    if body is not None:
        op["requestBody"] = body
    return op


def _link(operation_id: str, **parameters: str) -> dict[str, Any]:
    return {"operationId": operation_id, "parameters": parameters}


def _body_link(operation_id: str, **fields: str) -> dict[str, Any]:
    """A link that fills these fields of the target's body (the rest as the client chooses)."""
    return {"operationId": operation_id, "requestBody": fields}


def _conversation_links(suffix: str, expression: str) -> dict[str, Any]:
    """Links to every operation on the conversation ``expression`` names, and to the turns that
    continue it (a response, a stateful chat completion)."""
    names = ("getConversation", "updateConversation", "deleteConversation", "forkConversation", "listItems")
    links = {name: _link(f"{name}{suffix}", id=expression) for name in (*names, "createItems")}
    links["createResponse"] = _body_link(f"createResponse{suffix}", conversation=expression)
    links["createChatCompletion"] = _body_link(f"createChatCompletion{suffix}", conversation=expression)
    return links


def _responses_paths(prefix: str, s: str) -> dict[str, Any]:
    """The Responses API (``server/responses_routes.py``)."""
    data = _json_data({"type": "object", "required": ["type", "sequence_number"]})
    create = _op(
        f"createResponse{s}",
        "Create a response (a stored turn unless `store: false`)",
        stateful.ResponseObject,
        GENERATE,
        body=_body(stateful.ResponseCreateRequest),
        links={
            "getResponse": _link(f"getResponse{s}", id="$response.body#/id"),
            "listInputItems": _link(f"listInputItems{s}", id="$response.body#/id"),
            "deleteResponse": _link(f"deleteResponse{s}", id="$response.body#/id"),
            "getConversation": _link(f"getConversation{s}", id="$response.body#/conversation/id"),
            "listItems": _link(f"listItems{s}", id="$response.body#/conversation/id"),
            "continueResponse": _body_link(f"createResponse{s}", previous_response_id="$response.body#/id"),
        },
        tag="responses",
    )
    ok = create["responses"]["200"]
    ok["description"] = "The response, or with `stream: true` a stream of Responses events"
    ok["content"].update(_sse(data, "`event: <type>` and `data: <event JSON>`; no `[DONE]`", event={"type": "string"}))
    ok["headers"].update(_context_header())
    response_id = [_path("id", "a response id")]
    return {
        f"{prefix}/responses": {"post": create},
        f"{prefix}/responses/{{id}}": {
            "get": _op(
                f"getResponse{s}",
                "Retrieve a response",
                stateful.ResponseObject,
                LOOKUP,
                parameters=response_id,
                tag="responses",
            ),
            "delete": _op(
                f"deleteResponse{s}",
                "Delete a response",
                stateful.DeletedObject,
                LOOKUP,
                parameters=response_id,
                tag="responses",
            ),
        },
        f"{prefix}/responses/{{id}}/input_items": {
            "get": _op(
                f"listInputItems{s}",
                "The items a response answered (its whole stored context)",
                stateful.ListPage,
                PAGE,
                parameters=[*response_id, *_page_query("desc")],
                tag="responses",
            )
        },
    }


def _conversations_paths(prefix: str, s: str) -> dict[str, Any]:
    """The Conversations API (``server/conversations_routes.py``)."""
    conversation_id = [_path("id", "a conversation id")]
    item_id = [*conversation_id, _path("item_id", "an item id of that conversation")]
    made = _conversation_links(s, "$response.body#/id")
    item_links = {
        "getItem": _link(f"getItem{s}", id="$request.path.id", item_id="$response.body#/first_id"),
        "deleteItem": _link(f"deleteItem{s}", id="$request.path.id", item_id="$response.body#/last_id"),
    }
    return {
        f"{prefix}/conversations": {
            "post": _op(
                f"createConversation{s}",
                "Create a conversation (with up to 20 items)",
                stateful.ConversationObject,
                CREATE,
                body=_body(stateful.ConversationCreateRequest, required=False),
                links=made,
                tag="conversations",
            ),
            "get": _op(
                f"listConversations{s}",
                "List the tenant's conversations, newest first (extension)",
                stateful.ListPage,
                PAGE,
                parameters=_page_query("desc"),
                tag="conversations",
            ),
        },
        f"{prefix}/conversations/{{id}}": {
            "get": _op(
                f"getConversation{s}",
                "Retrieve a conversation",
                stateful.ConversationObject,
                LOOKUP,
                parameters=conversation_id,
                tag="conversations",
            ),
            "post": _op(
                f"updateConversation{s}",
                "Update a conversation's metadata (or its context policy)",
                stateful.ConversationObject,
                WRITE,
                parameters=conversation_id,
                body=_body(stateful.ConversationUpdateRequest),
                tag="conversations",
            ),
            "delete": _op(
                f"deleteConversation{s}",
                "Delete a conversation",
                stateful.DeletedObject,
                LOOKUP,
                parameters=conversation_id,
                tag="conversations",
            ),
        },
        f"{prefix}/conversations/{{id}}/fork": {
            "post": _op(
                f"forkConversation{s}",
                "Fork a conversation at an item, by default its head (extension)",
                stateful.ConversationObject,
                WRITE,
                parameters=conversation_id,
                body=_body(stateful.ForkRequest, required=False),
                links=made,
                tag="conversations",
            )
        },
        f"{prefix}/conversations/{{id}}/items": {
            "get": _op(
                f"listItems{s}",
                "List the items of the current branch",
                stateful.ListPage,
                PAGE,
                parameters=[*conversation_id, *_page_query("desc")],
                links=item_links,
                tag="conversations",
            ),
            "post": _op(
                f"createItems{s}",
                "Add up to 20 items at the head",
                stateful.ListPage,
                WRITE,
                parameters=conversation_id,
                body=_body(stateful.ItemsCreateRequest),
                links=item_links,
                tag="conversations",
            ),
        },
        f"{prefix}/conversations/{{id}}/items/{{item_id}}": {
            "get": _op(
                f"getItem{s}",
                "Retrieve an item",
                stateful.ItemObject,
                LOOKUP,
                parameters=item_id,
                tag="conversations",
            ),
            "delete": _op(
                f"deleteItem{s}",
                "Delete an item and its subtree",
                stateful.ConversationObject,
                LOOKUP,
                parameters=item_id,
                tag="conversations",
            ),
        },
    }


INSPECTOR = "/v1/inspector/conversations"


def _inspector_paths() -> dict[str, Any]:
    """The web inspector's endpoints (``server/inspector_routes.py``, docs/web.md)."""
    conversation_id = [_path("id", "a conversation id")]
    item_id = [*conversation_id, _path("item_id", "an answer (assistant item) of that conversation")]
    query = [
        {"name": "q", "in": "query", "required": False, "schema": {"type": "string"}, "description": "search text"},
        {
            "name": "limit",
            "in": "query",
            "required": False,
            "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": 50},
        },
    ]
    retry = _op(
        "retryTurn",
        "Answer a user message again: a sibling answer, streamed as Responses events",
        inspector.HeadObject,
        GENERATE,
        parameters=conversation_id,
        body=_body(inspector.RetryRequest),
        tag="inspector",
    )
    data = _json_data({"type": "object", "required": ["type", "sequence_number"]})
    retry["responses"]["200"]["content"] = _sse(
        data, "`event: <type>` and `data: <event JSON>`", event={"type": "string"}
    )
    return {
        INSPECTOR: {
            "get": _op(
                "listInspectorConversations",
                "The tenant's conversations, newest activity first, optionally matching a text",
                inspector.ConversationList,
                (400, 401, 429, 500),
                parameters=query,
                tag="inspector",
            )
        },
        f"{INSPECTOR}/{{id}}": {
            "get": _op(
                "getConversationTree",
                "A conversation and every item of its tree",
                inspector.TreeObject,
                LOOKUP,
                parameters=conversation_id,
                tag="inspector",
            )
        },
        f"{INSPECTOR}/{{id}}/head": {
            "post": _op(
                "moveHead",
                "Switch branches: make an item (or none) the head",
                inspector.HeadObject,
                WRITE,
                parameters=conversation_id,
                body=_body(inspector.HeadRequest),
                tag="inspector",
            )
        },
        f"{INSPECTOR}/{{id}}/undo": {
            "post": _op(
                "undoTurn",
                "Move the head back to before the last user message",
                inspector.HeadObject,
                WRITE,
                parameters=conversation_id,
                body=_body(inspector.UndoRequest, required=False),
                tag="inspector",
            )
        },
        f"{INSPECTOR}/{{id}}/retry": {"post": retry},
        f"{INSPECTOR}/{{id}}/items/{{item_id}}/context": {
            "get": _op(
                "getTurnContext",
                "An answer's context: each item's fate, the budget split, the cached prefix, the prompt diff",
                inspector.TurnContextObject,
                (400, *LOOKUP),
                parameters=item_id,
                tag="inspector",
            )
        },
        f"{INSPECTOR}/{{id}}/items/{{item_id}}/whatif": {
            "post": _op(
                "whatIf",
                "Re-plan an answer's turn under another policy or budget (no model call)",
                inspector.WhatIfObject,
                (*WRITE, 503),
                parameters=item_id,
                body=_body(inspector.WhatIfRequest, required=False),
                tag="inspector",
            )
        },
    }


def _healthz() -> dict[str, Any]:
    status = {
        "type": "object",
        "properties": {"status": {"type": "string"}, "turns": {"type": "object"}},
        "required": ["status"],
    }
    return {
        "get": {
            "operationId": "healthz",
            "tags": ["health"],
            "summary": "Liveness, and this process's turn counters",
            "security": [],
            "responses": {
                "200": _ok("Alive", {"application/json": {"schema": status}}),
                **_errors(compat.ErrorResponse, (500,)),
            },
        }
    }


UPLOAD_POLICY = "/api/v1/uploads"
UPLOAD_FILE = "/api/v1/uploads/oss"


def _uploads() -> dict[str, Any]:
    """DashScope's upload flow (``server/uploads.py``): a certificate, then the file's form post,
    authorized by the certificate's policy rather than a key."""
    text = {"type": "string"}
    certificate = {
        "type": "object",
        "properties": {
            "request_id": text,
            "data": {
                "type": "object",
                "properties": {
                    "policy": text,
                    "signature": text,
                    "upload_dir": text,
                    "upload_host": text,
                    "expire_in_seconds": {"type": "integer"},
                    "max_file_size_mb": {"type": "integer"},
                    "capacity_limit_mb": {"type": "integer"},
                    "oss_access_key_id": text,
                    "x_oss_object_acl": text,
                    "x_oss_forbid_overwrite": text,
                },
                "required": ["policy", "upload_dir", "upload_host"],
            },
        },
        "required": ["request_id", "data"],
    }
    action = {
        "name": "action",
        "in": "query",
        "required": True,
        "schema": {"type": "string", "enum": ["getPolicy"]},
    }
    model = {"name": "model", "in": "query", "required": False, "schema": text}
    form = {
        "type": "object",
        "properties": {
            "key": {**text, "description": "`<upload_dir>/<file name>`"},
            "policy": {**text, "description": "the certificate's policy"},
            "file": {"type": "string", "format": "binary"},
            "x-oss-content-type": text,
        },
        "required": ["key", "policy", "file"],
    }
    return {
        UPLOAD_POLICY: {
            "get": {
                "operationId": "getUploadPolicy",
                "tags": ["dashscope"],
                "summary": "An upload certificate for a local file (the DashScope SDK asks before sending one)",
                "parameters": [action, model],
                "responses": {
                    "200": _ok("The certificate", {"application/json": {"schema": certificate}}),
                    **_errors(native.ErrorBody, (400, 401, 429, 500)),
                },
            }
        },
        UPLOAD_FILE: {
            "post": {
                "operationId": "uploadFile",
                "tags": ["dashscope"],
                "summary": "Upload one file under a certificate's directory (OSS's form post); a request "
                "names it `oss://<key>` afterwards",
                "security": [],
                "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": form}}},
                "responses": {
                    "200": {"description": "Stored", "headers": _request_id_header()},
                    **_errors(native.ErrorBody, (400, 413, 500)),
                },
            }
        },
    }


def _components() -> dict[str, Any]:
    models: list[type[BaseModel]] = [
        compat.ChatCompletionRequest,
        compat.ChatCompletionResponse,
        compat.ChatCompletionChunk,
        compat.StreamError,
        compat.ErrorResponse,
        compat.ModelList,
        native.GenerationRequest,
        native.GenerationResponse,
        native.StreamChunk,
        native.ErrorBody,
        stateful.ResponseCreateRequest,
        stateful.ConversationCreateRequest,
        stateful.ConversationUpdateRequest,
        stateful.ItemsCreateRequest,
        stateful.ForkRequest,
        stateful.ResponseObject,
        stateful.ConversationObject,
        stateful.OutputMessage,
        stateful.ItemObject,
        stateful.ListPage,
        stateful.DeletedObject,
        *inspector.MODELS,
    ]
    _, definitions = models_json_schema(
        [(m, "validation" if m.__name__.endswith("Request") else "serialization") for m in models],
        ref_template=REF,
    )
    schemas = definitions.get("$defs", {})
    # Read by the router, not the wire model (``server/stateful.py``): a stored conversation to continue.
    schemas["ChatCompletionRequest"]["properties"]["conversation"] = {
        "type": "string",
        "description": "multiturn extension: continue this stored conversation (send only the new messages)",
    }
    return {
        "schemas": schemas,
        "headers": {
            "X-Request-Id": {
                "description": "this request's id (also in every error body and in the server's log)",
                "required": True,
                "schema": {"type": "string"},
            },
            "Retry-After": {"description": "seconds to wait before retrying", "schema": {"type": "string"}},
        },
        "securitySchemes": {
            "bearer": {
                "type": "http",
                "scheme": "bearer",
                "description": "an API key, required when the gateway has any (`--api-key`, `multiturn keys`)",
            }
        },
    }


def openapi_schema() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for prefix, suffix in PREFIXES.items():
        paths[f"{prefix}/chat/completions"] = _chat_completions(suffix)
        paths[f"{prefix}/models"] = _models(suffix)
        paths.update(_responses_paths(prefix, suffix))
        paths.update(_conversations_paths(prefix, suffix))
    paths[NATIVE_TEXT] = _generation("textGeneration", "Text generation (DashScope-native)")
    paths[NATIVE_MULTIMODAL] = _generation("multimodalGeneration", "Multimodal generation (DashScope-native)")
    paths.update(_uploads())
    paths.update(_inspector_paths())
    paths["/healthz"] = _healthz()
    return {
        "openapi": "3.1.0",
        "info": {"title": "multiturn gateway", "version": __version__},
        "security": [{"bearer": []}, {}],
        "paths": paths,
        "components": _components(),
    }
