"""A real OpenAI-compatible HTTP server for tests, speaking like Model Studio, that can misbehave.

The project's rule is real parts in tests; this server exists only for faults that a real model
server cannot be made to produce on demand (a reset mid-stream, a 429, a stall). It is a raw ASGI
app run by uvicorn on ``127.0.0.1:<ephemeral>`` in a background thread, so clients talk real
HTTP/1.1 to it.

Answers are deterministic, from the last user (or tool) message:

- text: ``"You said: <text>"``; with images in that message ``"I see 2 images. You said: ..."``
  (image URLs, ``data:`` or ``https:``, are counted, never fetched);
- ``enable_thinking: true``: ``reasoning_content`` deltas first (``"The user said: <text>"``),
  then the answer, in Model Studio's exact chunk shapes;
- ``tools`` given (and ``tool_choice`` not ``"none"``): a call of the first tool with arguments
  ``{"text": <text>}`` streamed in pieces, ``finish_reason: "tool_calls"``; after a tool
  message: ``"Tool said: <content>"``;
- usage: ``prompt_tokens`` = serialized messages bytes // 4, ``cached_tokens`` = the bytes of
  the leading messages shared with an earlier request // 4 (a resent history hits the "cache").

Thinking models, chosen by the model name (the answers above, with reasoning):

==========================  ==============================================================
``thinker``                 always thinks, ``enable_thinking`` or not (vLLM with a reasoning
                            parser): ``delta.reasoning_content`` then ``delta.content``;
                            ``message.reasoning_content`` unstreamed; ``reasoning_tokens``
``think-inline``            writes ``<think>\n<reasoning>\n</think>\n\n`` at the start of
                            ``content``, the tags cut across chunks (Qwen3 on llama.cpp or
                            Ollama without a reasoning parser); no ``reasoning_tokens``
==========================  ==============================================================

Faults, chosen by the model name (or ``FakeUpstream.fault``, which overrides it):

==========================  ==============================================================
``rate-limit-N``            429 with ``retry-after: 0`` for the first N requests of that name
``error-500``               500 every time
``context-too-long``        400 ``Range of input length should be [1, 1024]``
``reset-after-N``           N stream chunks (role chunk included), then the connection is cut
``stream-error``            2 chunks, then ``data: {"error": {...}}`` and the end of the body
``stall-S``                 2 chunks, then S seconds of silence before each further chunk
``mute-S``                  the stream's headers at once, then S seconds before its first chunk
``late-end-S``              the whole stream, then S seconds before the body ends
``hang``                    no answer at all, streamed or not, until the client leaves
``delay-S``                 the answer, streamed or not, S seconds late (or the client leaves)
==========================  ==============================================================

With ``embeddings=True`` it also answers ``POST /v1/embeddings`` (each text's words hashed into
32 dimensions: an upstream embedder alias that works); without, that path is a 404.

``requests`` records every request (method, path, headers, JSON body, client address: equal
addresses mean a reused keep-alive connection, and ``received_at``: ``time.monotonic()`` when its
body was read); ``disconnects`` the indexes (into ``requests``) of requests the client left
before their end, and ``left_at`` when it left (``time.monotonic()``, by index).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import threading
import time
import uuid
import zlib
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import orjson
import uvicorn

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

CONTEXT_LIMIT = 1024


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    client: tuple[str, int] | None = None
    received_at: float = 0.0


@dataclass
class _Answer:
    reasoning: list[str]
    content: list[str]
    tool: tuple[str, list[str]] | None
    finish: str
    usage: dict[str, Any]


class FakeUpstream:
    def __init__(
        self,
        *,
        api_key: str | None = None,
        models: tuple[str, ...] = ("qwen-plus", "qwen3-vl-plus"),
        keep_alive: int = 5,
        embeddings: bool = False,
    ) -> None:
        self.api_key = api_key
        self.embeddings = embeddings  # answer POST /v1/embeddings (else it is a 404, as no route)
        self.keep_alive = keep_alive  # seconds an idle connection stays open (uvicorn's default: 5)
        self.models = models
        self.fault: str | None = None
        self.requests: list[Recorded] = []
        self.disconnects: list[int] = []
        self.left_at: dict[int, float] = {}
        self._counts: dict[str, int] = {}
        self._histories: list[list[Any]] = []
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def bodies(self) -> list[Any]:
        return [r.body for r in self.requests if r.path.endswith("/chat/completions")]

    # --- life cycle ---

    def start(self) -> FakeUpstream:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self,
            lifespan="off",
            log_config=None,
            log_level="critical",
            access_log=False,
            loop="asyncio",
            timeout_graceful_shutdown=1,
            timeout_keep_alive=self.keep_alive,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the fake upstream did not start")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)
        self._server = self._thread = None

    def __enter__(self) -> FakeUpstream:
        return self.start()

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()

    # --- ASGI ---

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        raw = b""
        while True:
            message = await receive()
            raw += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            body = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            body = raw
        client = tuple(scope["client"]) if scope.get("client") else None
        self.requests.append(Recorded(scope["method"], scope["path"], headers, body, client, time.monotonic()))
        index = len(self.requests) - 1
        path = scope["path"]
        if self.api_key is not None and headers.get("authorization") != f"Bearer {self.api_key}":
            await _json(send, 401, _error("Incorrect API key provided.", "invalid_api_key", "invalid_request_error"))
        elif scope["method"] == "GET" and path == "/v1/models":
            data = [{"id": m, "object": "model", "created": 1700000000, "owned_by": "fake"} for m in self.models]
            await _json(send, 200, {"object": "list", "data": data})
        elif scope["method"] == "POST" and path == "/v1/chat/completions":
            await self._chat(body, index, receive, send)
        elif scope["method"] == "POST" and path == "/v1/embeddings" and self.embeddings:
            await _json(send, 200, _embeddings(body))
        else:
            await _json(send, 404, _error(f"no route {path}", "not_found", "invalid_request_error"))

    async def _chat(self, body: Any, index: int, receive: Receive, send: Send) -> None:
        if not isinstance(body, dict) or not body.get("messages"):
            await _json(send, 400, _error("messages is required", "invalid_parameter_error", "invalid_request_error"))
            return
        fault = self.fault or str(body.get("model", ""))
        count = self._counts[fault] = self._counts.get(fault, 0) + 1
        if (m := re.fullmatch(r"rate-limit-(\d+)", fault)) and count <= int(m.group(1)):
            limit = _error("You have exceeded your current request limit.", "limit_requests", "limit_requests")
            await _json(send, 429, limit, [(b"retry-after", b"0")])
            return
        if fault == "error-500":
            text = "An internal error has occured, please try again later or contact service support."
            await _json(send, 500, _error(text, "internal_error", "internal_error"))
            return
        if fault == "hang" or (delay := re.fullmatch(r"delay-([\d.]+)", fault)):
            waited = asyncio.ensure_future(receive())
            seconds = float(delay.group(1)) if fault != "hang" and delay else None
            done, _ = await asyncio.wait({waited}, timeout=seconds)
            if done:  # the client left (http.disconnect) before the answer was due
                self.left_at[index] = time.monotonic()
                self.disconnects.append(index)
                return
            waited.cancel()
        if fault == "context-too-long":
            text = f"<400> InternalError.Algo.InvalidParameter: Range of input length should be [1, {CONTEXT_LIMIT}]"
            await _json(send, 400, _error(text, "invalid_parameter_error", "invalid_request_error"))
            return
        answer = self._answer(body)
        if body.get("stream"):
            await self._stream(body, answer, fault, index, receive, send)
        else:
            await _json(send, 200, _completion(body, answer))

    def _answer(self, body: dict[str, Any]) -> _Answer:
        messages = body["messages"]
        last = next((m for m in reversed(messages) if m.get("role") in ("user", "tool")), messages[-1])
        text, images = _read(last.get("content"))
        reasoning: list[str] = []
        tool = None
        tools = body.get("tools") or []
        if last.get("role") == "tool":
            content = _pieces(f"Tool said: {text}")
        elif tools and body.get("tool_choice") != "none":
            arguments = orjson.dumps({"text": text}).decode()
            half = len(arguments) // 2
            tool = (tools[0]["function"]["name"], [arguments[:half], arguments[half:]])
            content = []
        else:
            seen = f"I see {images} image{'s' if images != 1 else ''}. " if images else ""
            content = _pieces(f"{seen}You said: {text}")
        model = str(body.get("model", ""))
        if body.get("enable_thinking") or model == "thinker":
            reasoning = _pieces(f"The user said: {text}. I will answer.")
        if model == "think-inline":
            inline = f"<think>\nThe user said: {text}. I will answer.\n</think>\n\n"
            content = [inline[i : i + 5] for i in range(0, len(inline), 5)] + content
        prompt = orjson.dumps(messages, option=orjson.OPT_SORT_KEYS)
        shared = max((_shared_messages(p, messages) for p in self._histories), default=0)
        cached = len(orjson.dumps(messages[:shared], option=orjson.OPT_SORT_KEYS)) if shared else 0
        self._histories.append(messages)
        prompt_tokens = max(1, len(prompt) // 4)
        completion = len(reasoning) + len(content) + (len(tool[1]) + 1 if tool else 0)
        usage: dict[str, Any] = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": prompt_tokens + completion,
            "prompt_tokens_details": {"cached_tokens": min(prompt_tokens, cached // 4)},
        }
        if reasoning:
            usage["completion_tokens_details"] = {"reasoning_tokens": len(reasoning)}
        return _Answer(reasoning, content, tool, "tool_calls" if tool else "stop", usage)

    async def _stream(
        self, body: dict[str, Any], answer: _Answer, fault: str, index: int, receive: Receive, send: Send
    ) -> None:
        rid = str(uuid.uuid4())
        base = {"id": f"chatcmpl-{rid}", "object": "chat.completion.chunk", "created": int(time.time())}
        base |= {"model": body["model"], "system_fingerprint": None, "usage": None}
        thinking = bool(body.get("enable_thinking")) or bool(answer.reasoning)

        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            choice = {"delta": delta, "index": 0, "logprobs": None, "finish_reason": finish}
            return b"data: " + orjson.dumps({"choices": [choice], **base}) + b"\n\n"

        events: list[bytes] = []
        if thinking:
            events.append(chunk({"content": None, "role": "assistant", "reasoning_content": ""}))
            events += [chunk({"content": None, "reasoning_content": p}) for p in answer.reasoning]
            events += [chunk({"content": p, "reasoning_content": None}) for p in answer.content]
        else:
            events.append(chunk({"content": "", "role": "assistant"}))
            events += [chunk({"content": p}) for p in answer.content]
        if answer.tool is not None:
            name, pieces = answer.tool
            call = {"index": 0, "id": f"call_{rid[:8]}", "type": "function"}
            events.append(chunk({"content": "", "tool_calls": [call | {"function": {"name": name, "arguments": ""}}]}))
            more = [{"index": 0, "id": "", "type": "function", "function": {"arguments": p}} for p in pieces]
            events += [chunk({"content": "", "tool_calls": [call]}) for call in more]
        events.append(chunk({"content": ""} | ({"reasoning_content": None} if thinking else {}), answer.finish))
        if (body.get("stream_options") or {}).get("include_usage"):
            events.append(b"data: " + orjson.dumps({**base, "choices": [], "usage": answer.usage}) + b"\n\n")
        events.append(b"data: [DONE]\n\n")

        cut = int(m.group(1)) if (m := re.fullmatch(r"reset-after-(\d+)", fault)) else None
        stall = float(m.group(1)) if (m := re.fullmatch(r"stall-([\d.]+)", fault)) else 0.0
        late = float(m.group(1)) if (m := re.fullmatch(r"late-end-([\d.]+)", fault)) else 0.0
        mute = float(m.group(1)) if (m := re.fullmatch(r"mute-([\d.]+)", fault)) else 0.0
        if fault == "stream-error":
            text = "Output data may contain inappropriate content."
            error = {"message": text, "type": "data_inspection_failed", "param": None, "code": "data_inspection_failed"}
            events = [*events[:2], b"data: " + orjson.dumps({"error": error}) + b"\n\n"]

        gone = asyncio.Event()
        finished = False

        async def watch() -> None:
            if (await receive())["type"] == "http.disconnect" and not finished:
                self.left_at[index] = time.monotonic()
                self.disconnects.append(index)
                gone.set()

        watcher = asyncio.create_task(watch())
        try:
            headers = [(b"content-type", b"text/event-stream"), (b"x-request-id", rid.encode())]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            for n, event in enumerate(events):
                if cut is not None and n >= cut:
                    return  # returning without the end of the body: uvicorn closes the connection
                if (stall and n >= 2) or (mute and n == 0):
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(gone.wait(), stall or mute)
                if gone.is_set():
                    return
                await send({"type": "http.response.body", "body": event, "more_body": True})
            if late:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(gone.wait(), late)
                if gone.is_set():
                    return
            finished = True
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            watcher.cancel()


def _read(content: Any) -> tuple[str, int]:
    """(text, number of images) of a message's content, string or parts."""
    if isinstance(content, str):
        return content, 0
    text: list[str] = []
    images = 0
    for part in content or []:
        if part.get("type") == "text":
            text.append(part.get("text", ""))
        elif part.get("type") == "image_url":
            images += 1
    return "".join(text), images


def _shared_messages(a: list[Any], b: list[Any]) -> int:
    """How many leading messages two histories share."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def _pieces(text: str) -> list[str]:
    return re.findall(r"\S+\s*", text) or [text]


def _error(message: str, code: str, kind: str) -> dict[str, Any]:
    rid = str(uuid.uuid4())
    return {"error": {"code": code, "param": None, "message": message, "type": kind}, "request_id": rid}


def _completion(body: dict[str, Any], answer: _Answer) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": "".join(answer.content)}
    if answer.reasoning:
        message["reasoning_content"] = "".join(answer.reasoning)
    if answer.tool is not None:
        function = {"name": answer.tool[0], "arguments": "".join(answer.tool[1])}
        message["tool_calls"] = [{"id": f"call_{uuid.uuid4().hex[:8]}", "type": "function", "function": function}]
    choice = {"index": 0, "message": message, "finish_reason": answer.finish, "logprobs": None}
    return {
        "id": f"chatcmpl-{uuid.uuid4()}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body["model"],
        "system_fingerprint": None,
        "choices": [choice],
        "usage": answer.usage,
    }


def _embeddings(body: Any) -> dict[str, Any]:
    """An OpenAI embeddings answer: each text's words hashed into 32 dimensions (texts that share
    words are near), not normalized (the client normalizes)."""
    texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
    data = []
    for index, text in enumerate(texts):
        vector = [0.0] * 32
        for word in re.findall(r"\w+", text.lower()):
            vector[zlib.crc32(word.encode()) % 32] += 1.0
        data.append({"object": "embedding", "index": index, "embedding": vector})
    n = sum(len(text.split()) for text in texts)
    return {
        "object": "list",
        "data": data,
        "model": body.get("model"),
        "usage": {"prompt_tokens": n, "total_tokens": n},
    }


async def _json(send: Send, status: int, payload: Any, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    data = orjson.dumps(payload)
    head = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()), *(headers or [])]
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": data, "more_body": False})


async def eventually(check: Callable[[], bool], within: float = 5.0, interval: float = 0.01) -> None:
    """Wait until ``check()`` is true, polling, or fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within} s")
        await asyncio.sleep(interval)
