"""The OpenAPI document, built from the same pydantic wire models that parse and describe
every body, so the published schema is the contract the server keeps (fuzzers check it)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from .. import __version__
from ..protocols.dashscope import wire as native
from ..protocols.openai_chat import wire as compat
from ..protocols.responses import wire as stateful

REF = "#/components/schemas/{model}"


def _json(model: type[BaseModel]) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": REF.format(model=model.__name__)}}}


def _sse(description: str) -> dict[str, Any]:
    return {"text/event-stream": {"schema": {"type": "string", "description": description}}}


def _chat_completions() -> dict[str, Any]:
    return {
        "post": {
            "summary": "Create a chat completion (OpenAI-compatible)",
            "requestBody": {"required": True, "content": _json(compat.ChatCompletionRequest)},
            "responses": {
                "200": {
                    "description": "A completion, or with `stream: true` a stream of ChatCompletionChunk events "
                    "ending with `data: [DONE]`",
                    "content": {**_json(compat.ChatCompletionResponse), **_sse("data: <ChatCompletionChunk JSON>")},
                },
                "default": {"description": "An error", "content": _json(compat.ErrorResponse)},
            },
        }
    }


def _models() -> dict[str, Any]:
    return {
        "get": {
            "summary": "List the model names this gateway serves",
            "responses": {
                "200": {"description": "Models", "content": _json(compat.ModelList)},
                "default": {"description": "An error", "content": _json(compat.ErrorResponse)},
            },
        }
    }


def _generation(summary: str) -> dict[str, Any]:
    sse_header = {
        "name": "X-DashScope-SSE",
        "in": "header",
        "required": False,
        "schema": {"type": "string", "enum": ["enable", "disable"]},
        "description": "`enable` streams the answer as server-sent events",
    }
    return {
        "post": {
            "summary": summary,
            "parameters": [sse_header],
            "requestBody": {"required": True, "content": _json(native.GenerationRequest)},
            "responses": {
                "200": {
                    "description": "A generation, or when streaming `id:/event:result/data:` events",
                    "content": {**_json(native.GenerationResponse), **_sse("data:<StreamChunk JSON>")},
                },
                "default": {"description": "An error", "content": _json(native.ErrorBody)},
            },
        }
    }


def _op(summary: str, answer: type[BaseModel], body: type[BaseModel] | None = None) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "responses": {
            "200": {"description": answer.__name__, "content": _json(answer)},
            "default": {
                "description": "An error (404 for an unknown id or another tenant's)",
                "content": _json(compat.ErrorResponse),
            },
        },
    }
    if body is not None:
        op["requestBody"] = {"required": True, "content": _json(body)}
    return op


def _stateful_paths(prefix: str) -> dict[str, Any]:
    """The Responses and Conversations APIs (``server/responses_routes.py``,
    ``conversations_routes.py``)."""
    create = _op("Create a response (a stored turn)", stateful.ResponseObject, stateful.ResponseCreateRequest)
    create["responses"]["200"]["content"].update(_sse("event: <type> / data: <ResponseStreamEvent JSON>"))
    return {
        f"{prefix}/responses": {"post": create},
        f"{prefix}/responses/{{id}}": {
            "get": _op("Retrieve a response", stateful.ResponseObject),
            "delete": _op("Delete a response", stateful.DeletedObject),
        },
        f"{prefix}/responses/{{id}}/input_items": {"get": _op("The items a response answered", stateful.ListPage)},
        f"{prefix}/conversations": {
            "post": _op("Create a conversation", stateful.ConversationObject, stateful.ConversationCreateRequest),
            "get": _op("List the tenant's conversations (extension)", stateful.ListPage),
        },
        f"{prefix}/conversations/{{id}}": {
            "get": _op("Retrieve a conversation", stateful.ConversationObject),
            "post": _op("Update a conversation", stateful.ConversationObject, stateful.ConversationUpdateRequest),
            "delete": _op("Delete a conversation", stateful.DeletedObject),
        },
        f"{prefix}/conversations/{{id}}/fork": {
            "post": _op("Fork a conversation at an item (extension)", stateful.ConversationObject, stateful.ForkRequest)
        },
        f"{prefix}/conversations/{{id}}/items": {
            "get": _op("List the items of the current branch", stateful.ListPage),
            "post": _op("Add items at the head", stateful.ListPage, stateful.ItemsCreateRequest),
        },
        f"{prefix}/conversations/{{id}}/items/{{item_id}}": {
            "get": _op("Retrieve an item", stateful.OutputMessage),
            "delete": _op("Delete an item and its subtree", stateful.ConversationObject),
        },
    }


def openapi_schema() -> dict[str, Any]:
    models: list[type[BaseModel]] = [
        compat.ChatCompletionRequest,
        compat.ChatCompletionResponse,
        compat.ChatCompletionChunk,
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
        stateful.ListPage,
        stateful.DeletedObject,
    ]
    _, definitions = models_json_schema(
        [(m, "validation" if m.__name__.endswith("Request") else "serialization") for m in models],
        ref_template=REF,
    )
    paths: dict[str, Any] = {}
    for prefix in ("/v1", "/compatible-mode/v1"):
        paths[f"{prefix}/chat/completions"] = _chat_completions()
        paths[f"{prefix}/models"] = _models()
        paths.update(_stateful_paths(prefix))
    paths["/api/v1/services/aigc/text-generation/generation"] = _generation("Text generation (DashScope-native)")
    paths["/api/v1/services/aigc/multimodal-generation/generation"] = _generation(
        "Multimodal generation (DashScope-native)"
    )
    paths["/healthz"] = {
        "get": {
            "summary": "Liveness",
            "responses": {
                "200": {
                    "description": "Alive",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {"status": {"type": "string"}},
                                "required": ["status"],
                            }
                        }
                    },
                }
            },
        }
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "multiturn gateway", "version": __version__},
        "paths": paths,
        "components": {"schemas": definitions.get("$defs", {})},
    }
