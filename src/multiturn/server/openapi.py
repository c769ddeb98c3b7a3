"""The OpenAPI document, built from the same pydantic wire models that parse and describe
every body, so the published schema is the contract the server keeps (fuzzers check it)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from .. import __version__
from ..protocols.dashscope import wire as native
from ..protocols.openai_chat import wire as compat

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
    ]
    _, definitions = models_json_schema(
        [(m, "validation" if m.__name__.endswith("Request") else "serialization") for m in models],
        ref_template=REF,
    )
    paths: dict[str, Any] = {}
    for prefix in ("/v1", "/compatible-mode/v1"):
        paths[f"{prefix}/chat/completions"] = _chat_completions()
        paths[f"{prefix}/models"] = _models()
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
