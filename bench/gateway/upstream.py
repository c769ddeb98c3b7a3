"""U, the fake OpenAI-compatible upstream: a raw ASGI app (no framework) for uvicorn.

``POST /v1/chat/completions`` answers a fixed ``chat.completion`` (about 360 bytes) or, with
``"stream": true``, 20 ``chat.completion.chunk`` events (role, 18 words, finish) with no sleeps,
one ASGI ``send`` each, then ``data: [DONE]``. With ``stream_options.include_usage`` one usage
chunk (``choices: []``) comes before ``[DONE]``, as real servers do. All bytes are rendered at
import; only the id changes per request. ``GET /v1/models`` (LiteLLM probes it), ``GET /health``
and ``GET /stats`` (request counters, to check what a relay asked for) are answered too.

    uvicorn upstream:app --app-dir bench/gateway --loop uvloop --http httptools --no-access-log
"""

from __future__ import annotations

import itertools
from typing import Any

import orjson
from common import MODEL, SENTENCE, WORDS

ID = "chatcmpl-XXXXXXXXXXXXXXXXXXXXXXXX"  # replaced by a fresh id of the same length per request
CREATED = 1764000000
USAGE = {"prompt_tokens": 14, "completion_tokens": len(WORDS), "total_tokens": 14 + len(WORDS)}
JSON_HEADERS = [(b"content-type", b"application/json")]
SSE_HEADERS = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]


def _split(payload: dict[str, Any], prefix: bytes = b"", suffix: bytes = b"") -> tuple[bytes, bytes]:
    head, tail = (prefix + orjson.dumps(payload) + suffix).split(ID.encode())
    return head, tail


def _chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": ID,
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": MODEL,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


COMPLETION = _split(
    {
        "id": ID,
        "object": "chat.completion",
        "created": CREATED,
        "model": MODEL,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": SENTENCE},
                "finish_reason": "stop",
            }
        ],
        "usage": USAGE,
    }
)
EVENTS = [
    _split(chunk, b"data: ", b"\n\n")
    for chunk in (
        _chunk({"role": "assistant", "content": ""}),
        *(_chunk({"content": word}) for word in WORDS),
        _chunk({"content": ""}, "stop"),
    )
]
USAGE_EVENT = _split(
    {"id": ID, "object": "chat.completion.chunk", "created": CREATED, "model": MODEL, "choices": [], "usage": USAGE},
    b"data: ",
    b"\n\n",
)
DONE = b"data: [DONE]\n\n"
MODELS = orjson.dumps({"object": "list", "data": [{"id": MODEL, "object": "model", "owned_by": "bench"}]})

_ids = itertools.count(1)
stats = {"requests": 0, "stream": 0, "include_usage": 0}


async def _body(receive: Any) -> bytes:
    body, more = b"", True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    return body


async def _json(send: Any, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": JSON_HEADERS})
    await send({"type": "http.response.body", "body": body})


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    path, method = scope["path"], scope["method"]
    if method == "GET":
        if path == "/health":
            return await _json(send, 200, b'{"status":"ok"}')
        if path.endswith("/models"):
            return await _json(send, 200, MODELS)
        if path == "/stats":
            return await _json(send, 200, orjson.dumps(stats))
        return await _json(send, 404, b'{"error":{"message":"not found"}}')
    if method != "POST" or not path.endswith("/chat/completions"):
        return await _json(send, 404, b'{"error":{"message":"not found"}}')
    request = orjson.loads(await _body(receive))
    rid = b"chatcmpl-%024x" % next(_ids)
    stats["requests"] += 1
    if not request.get("stream"):
        return await _json(send, 200, rid.join(COMPLETION))
    stats["stream"] += 1
    await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
    for event in EVENTS:
        await send({"type": "http.response.body", "body": rid.join(event), "more_body": True})
    if (request.get("stream_options") or {}).get("include_usage"):
        stats["include_usage"] += 1
        await send({"type": "http.response.body", "body": rid.join(USAGE_EVENT), "more_body": True})
    await send({"type": "http.response.body", "body": DONE, "more_body": False})
