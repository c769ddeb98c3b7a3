"""The upstream backend: any OpenAI-compatible chat-completions server.

Model Studio's compatible mode, vLLM, SGLang, Ollama and llama.cpp's server all answer
``POST {base_url}/chat/completions``. This backend always asks for a stream with usage
(``stream: true``, ``stream_options.include_usage``) and relays it: every upstream chunk becomes a
``Delta`` as soon as it is parsed, nothing is buffered.

- One ``aiohttp.ClientSession`` per backend, created on first use inside the running loop and
  closed by ``aclose``; a backend serves one event loop. aiohttp, not httpx: the client library is
  the main cost of a Python relay (``reference/gateway-anchors.md`` §0).
- Errors are mapped here, once: unreachable → ``UpstreamError(status=None)``; an HTTP error by its
  status (context overflow → ``ContextTooLong``, 429 → ``RateLimited``, others ``UpstreamError``);
  a failure after the stream started (error event, reset, read timeout) → ``UpstreamError``,
  raised after the deltas already yielded.
- Retries only before the body started: connect errors, 408, 429 and 5xx, ``retries`` times,
  backoff 0.2 s·2ⁿ, ``retry-after`` honoured up to ``MAX_RETRY_AFTER`` (longer: give up now).
- First byte: a stream whose upstream sends no byte within ``first_byte_timeout`` seconds (no
  response headers, or no first body chunk) fails with ``UpstreamError(code="timeout")`` and its
  connection is dropped; it is not retried (the upstream may be busy with it). Capped by
  ``read_timeout`` (the wait for every later chunk). A non-streamed call (``complete``) is not
  bounded by it: its first byte comes with the whole answer, and a long answer is not a silent
  upstream; ``read_timeout`` bounds it.
- Messages name the URL and the HTTP library's words: they are for the log and the terminal; the
  gateway shows its clients a generic message instead (``server/errors.py``).
- Closing the generator (``aclose`` or cancellation) closes the upstream connection at once, so
  the upstream sees the disconnect and stops generating.
- Only choice 0 is relayed: ``n > 1`` and log probabilities are refused before a request gets
  here (``capabilities.check_params``).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncGenerator, Mapping, Sequence
from contextlib import aclosing, suppress
from typing import Any

import aiohttp
import orjson

from ..errors import BackendError, ContextTooLong, RateLimited, UpstreamError
from ..protocols.openai_chat.translate import request_to_body
from ..protocols.sse import SSEParser
from ..types import (
    ChatRequest,
    Completion,
    Delta,
    FinishReason,
    GenerationParams,
    Message,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from .base import BackendInfo

DEFAULT_CONTEXT_WINDOW = 131072
DEFAULT_MAX_OUTPUT_TOKENS = 8192
BACKOFF = 0.2
MAX_RETRY_AFTER = 5.0
POOL_LIMIT = 256
KEEPALIVE_TIMEOUT = 30.0
DRAIN_SECONDS = 0.5
"""How long to wait, after ``[DONE]``, for the end of the body so the connection can be reused."""

# Model Studio: "Range of input length should be [1, 129024]"; vLLM: "This model's maximum context
# length is 4096 tokens. However, you requested 5000 tokens ...".
_MS_RANGE = re.compile(r"Range of input length should be \[\d+,\s*(\d+)\]")
_VLLM_RANGE = re.compile(r"maximum context length is (\d+) tokens\. However, you requested (\d+) tokens")
_FINISH: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}
_SAMPLING_PARAMS = ("max_tokens", "temperature", "top_p", "top_k", "seed", "presence_penalty", "frequency_penalty")
_OTHER_PARAMS = ("repetition_penalty", "enable_thinking", "thinking_budget", "n", "tool_choice", "parallel_tool_calls")
_SCALAR_PARAMS = (*_SAMPLING_PARAMS, *_OTHER_PARAMS, "response_format")


class UpstreamBackend:
    """One model name relayed to an OpenAI-compatible server."""

    def __init__(
        self,
        *,
        name: str,
        upstream_model: str,
        base_url: str,
        api_key: str | None,
        capabilities: frozenset[str],
        context_window: int | None,
        max_output_tokens: int | None,
        connect_timeout: float,
        read_timeout: float,
        retries: int,
        first_byte_timeout: float | None = None,
    ) -> None:
        self.name = name
        self.upstream_model = upstream_model
        self.base_url = base_url.rstrip("/")
        self._url = f"{self.base_url}/chat/completions"
        self._api_key = api_key
        self._capabilities = capabilities
        self._context_window = context_window or DEFAULT_CONTEXT_WINDOW
        self._max_output_tokens = max_output_tokens or DEFAULT_MAX_OUTPUT_TOKENS
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._first_byte_timeout = min(first_byte_timeout or read_timeout, read_timeout)
        self._retries = max(0, retries)
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def info(self) -> BackendInfo:
        return BackendInfo(
            name=self.name,
            context_window=self._context_window,
            max_output_tokens=self._max_output_tokens,
            capabilities=self._capabilities,
            description=f"upstream {self.base_url}",
        )

    async def prepare(self) -> None:
        """Nothing to load: the upstream is first reached by ``generate`` (no network here)."""

    async def count_tokens(self, text: str) -> int:
        # An estimate, not a count: about 3 UTF-8 bytes per token, rounded up, which errs on the
        # high side for English and CJK alike. It is only the count stored with an item; context
        # plans count with the engine's tokenizer (tokens.py: exact for Qwen models).
        return len(text.encode()) // 3 + 1

    @property
    def connected(self) -> bool:
        """Whether an HTTP session (a connection pool) is open; ``aclose`` closes it."""
        return self._session is not None and not self._session.closed

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None and not session.closed:
            await session.close()

    def generate(self, messages: Sequence[Message], params: GenerationParams) -> AsyncGenerator[Delta, None]:
        request = ChatRequest(self.upstream_model, tuple(messages), params)
        return self._generate(orjson.dumps(request_to_body(request, stream=True, include_usage=True)))

    async def complete(self, messages: Sequence[Message], params: GenerationParams) -> Completion:
        """One non-streamed call: cheaper than a stream when the caller wants the whole answer."""
        request = ChatRequest(self.upstream_model, tuple(messages), params)
        body = orjson.dumps(request_to_body(request, stream=False, include_usage=False))
        response, _ = await self._post(body, accept="application/json")
        try:
            raw = await response.read()
        except TimeoutError as exc:
            raise UpstreamError(f"upstream stalled: no data for {self._read_timeout:g} s", code="timeout") from exc
        except aiohttp.ClientError as exc:
            raise UpstreamError(f"upstream connection broke: {exc or type(exc).__name__}") from exc
        finally:
            response.release()
        return _completion(raw)

    async def _generate(self, data: bytes) -> AsyncGenerator[Delta, None]:
        response, first_by = await self._post(data)
        try:
            async with aclosing(_relay(response, self._read_timeout, first_by, self._first_byte_timeout)) as deltas:
                async for delta in deltas:
                    yield delta
        finally:
            # After a complete body the connection is already back in the pool and this is a
            # no-op; otherwise (early close, cancellation, error) it drops the connection now.
            response.close()

    def _client(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is not None and not self._session.closed:
            if loop is not self._loop:
                raise BackendError(f"the upstream backend {self.name!r} is already in use on another event loop")
            return self._session
        headers = {"Content-Type": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=POOL_LIMIT, keepalive_timeout=KEEPALIVE_TIMEOUT),
            # sock_connect covers TCP and TLS set-up of a new connection; sock_read the wait for
            # the headers and then for every chunk. No total timeout: a stream may run for long.
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=self._connect_timeout, sock_read=self._read_timeout),
            headers=headers,
        )
        self._loop = loop
        return self._session

    async def _post(self, data: bytes, *, accept: str = "text/event-stream") -> tuple[aiohttp.ClientResponse, float]:
        """The response (status < 400) and the loop time by which its first body byte is due."""
        session = self._client()
        attempt = 0
        while True:
            try:
                return await self._attempt(session, data, accept)
            except _Retry as retry:
                after = retry.after or 0.0
                if attempt >= self._retries or after > MAX_RETRY_AFTER:
                    raise retry.error from retry.error.__cause__
                await asyncio.sleep(max(BACKOFF * 2**attempt, after))
                attempt += 1

    async def _attempt(
        self, session: aiohttp.ClientSession, data: bytes, accept: str
    ) -> tuple[aiohttp.ClientResponse, float]:
        """One request; raises ``_Retry`` for what another attempt may fix."""
        first_by = asyncio.get_running_loop().time() + self._first_byte_timeout
        try:
            async with asyncio.timeout_at(first_by if accept == "text/event-stream" else None):
                response = await session.post(self._url, data=data, headers={"Accept": accept})
        except TimeoutError as exc:
            if isinstance(exc, aiohttp.ConnectionTimeoutError):
                unreachable = UpstreamError(f"upstream unreachable: {self._url}: connection timed out")
                unreachable.__cause__ = exc
                raise _Retry(unreachable) from exc
            raise UpstreamError(
                f"upstream sent no byte within {self._first_byte_timeout:g} s: {self._url}", code="timeout"
            ) from exc
        except aiohttp.ClientSSLError as exc:
            raise UpstreamError(f"upstream unreachable: {self._url}: {exc}") from exc
        except (
            aiohttp.ClientConnectorError,
            aiohttp.ConnectionTimeoutError,
            aiohttp.ServerDisconnectedError,
            aiohttp.ClientOSError,
        ) as exc:
            # Refused, unresolvable, connect timeout, or a pooled connection the server had closed
            # or reset (ECONNRESET) before any byte of the response: safe to send again.
            unreachable = UpstreamError(f"upstream unreachable: {self._url}: {exc or type(exc).__name__}")
            unreachable.__cause__ = exc
            raise _Retry(unreachable) from exc
        except aiohttp.ClientError as exc:
            raise UpstreamError(f"upstream request failed: {self._url}: {exc}") from exc
        if response.status < 400:
            return response, first_by
        try:
            raw = await response.read()
        except (TimeoutError, aiohttp.ClientError):
            raw = b""
        finally:
            response.release()
        error = _status_error(response.status, raw, response.headers)
        if response.status in (408, 429) or response.status >= 500:
            raise _Retry(error, _retry_after(response.headers))
        raise error


class _Retry(Exception):
    def __init__(self, error: Exception, after: float | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.after = after


# --- the stream ---------------------------------------------------------------------------------


async def _relay(
    response: aiohttp.ClientResponse, read_timeout: float, first_by: float | None = None, first_byte_timeout: float = 0
) -> AsyncGenerator[Delta, None]:
    """Deltas from an upstream SSE body, the last one with ``finish_reason`` and ``usage``; the
    body's first byte is due by the loop time ``first_by``."""
    parser = SSEParser()
    state = _StreamState()
    done = False
    try:
        chunk: bytes | None = None
        if first_by is not None:
            try:
                async with asyncio.timeout_at(first_by):
                    chunk = await response.content.readany()
            except TimeoutError as exc:
                raise UpstreamError(f"upstream sent no byte within {first_byte_timeout:g} s", code="timeout") from exc
        chunks = response.content.iter_any()
        while True:
            if chunk is None:
                chunk = await anext(chunks, b"")
            if not chunk:  # the end of the body
                for event in parser.flush():
                    if event.data.strip() != "[DONE]":
                        for delta in state.feed(event.event or "", event.data):
                            yield delta
                break
            for event in parser.feed(chunk):
                if event.data.strip() == "[DONE]":
                    done = True
                    break
                for delta in state.feed(event.event or "", event.data):
                    yield delta
            if done:
                break
            chunk = None
    except TimeoutError as exc:  # aiohttp's SocketTimeoutError is one
        raise UpstreamError(f"upstream stalled: no data for {read_timeout:g} s", code="timeout") from exc
    except aiohttp.ClientError as exc:
        raise UpstreamError(f"upstream connection broke mid-stream: {exc or type(exc).__name__}") from exc
    final = state.final(done)
    if final is not None:
        yield final
    if done:  # the chunked body's end may still be on its way: read it, and the connection is reusable
        with suppress(TimeoutError, aiohttp.ClientError):
            async with asyncio.timeout(DRAIN_SECONDS):
                await response.content.read()


class _StreamState:
    """Maps chunk JSON to deltas; holds the finish until the usage that follows it is known."""

    def __init__(self) -> None:
        self.finish: FinishReason | None = None
        self.usage: Usage | None = None
        self.sent = False

    def feed(self, event: str, data: str) -> list[Delta]:
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise UpstreamError(f"upstream sent a malformed stream event: {data[:200]!r}") from exc
        if not isinstance(chunk, dict):
            return []
        fast = self._content_only(chunk, event)
        if fast is not None:
            return fast
        error = chunk.get("error")
        if error or event == "error":
            message, code = _error_fields(error if isinstance(error, dict | str) else chunk)
            raise UpstreamError(f"upstream error mid-stream: {message or 'unknown error'}", code=code)
        deltas: list[Delta] = []
        choices = chunk.get("choices") or ()
        choice = next((c for c in choices if isinstance(c, dict) and c.get("index", 0) == 0), None)
        if choice is not None:
            delta = choice.get("delta") or choice.get("message") or {}
            content = _text(delta.get("content"))
            reasoning = _text(delta.get("reasoning_content")) or _text(delta.get("reasoning"))
            calls = tuple(_tool_call_delta(c) for c in delta.get("tool_calls") or () if isinstance(c, dict))
            if content or reasoning or calls:
                deltas.append(Delta(content=content, reasoning=reasoning, tool_calls=calls))
            reason = choice.get("finish_reason")
            if reason and self.finish is None:
                self.finish = _FINISH.get(reason, "stop")
        if isinstance(chunk.get("usage"), dict):
            self.usage = _usage(chunk["usage"])
        if self.finish is not None and self.usage is not None and not self.sent:
            self.sent = True
            deltas.append(Delta(finish_reason=self.finish, usage=self.usage))
        return deltas

    @staticmethod
    def _content_only(chunk: dict[str, Any], event: str) -> list[Delta] | None:
        """The common chunk (one choice, a text piece, nothing else) without the general walk."""
        choices = chunk.get("choices")
        if event or chunk.get("usage") or "error" in chunk or type(choices) is not list or len(choices) != 1:
            return None
        choice = choices[0]
        if type(choice) is not dict or choice.get("finish_reason") or choice.get("index", 0) != 0:
            return None
        delta = choice.get("delta")
        if (
            type(delta) is not dict
            or delta.get("reasoning_content")
            or delta.get("reasoning")
            or delta.get("tool_calls")
        ):
            return None
        content = delta.get("content")
        if content is None or content == "":
            return []
        return [Delta(content=content)] if type(content) is str else None

    def final(self, done: bool) -> Delta | None:
        """The finish delta at the end of the body, if not sent yet; a body cut short is an error."""
        if self.sent:
            return None
        if self.finish is None and not done:
            raise UpstreamError("upstream stream ended before it finished")
        self.sent = True
        return Delta(finish_reason=self.finish or "stop", usage=self.usage)


def _completion(raw: bytes) -> Completion:
    """A non-streamed OpenAI-compatible response body as a ``Completion``."""
    body = _json_body(raw)
    choices = body.get("choices") if isinstance(body, dict) else None
    if not choices or not isinstance(choices[0], dict):
        raise UpstreamError(f"upstream sent a response without choices: {raw[:200]!r}")
    choice = choices[0]
    message = choice.get("message") or {}
    calls = tuple(
        ToolCall(id=c.get("id") or f"call_{i}", name=(c.get("function") or {}).get("name") or "",
                 arguments=(c.get("function") or {}).get("arguments") or "")
        for i, c in enumerate(message.get("tool_calls") or ())
        if isinstance(c, dict)
    )  # fmt: skip
    usage = body.get("usage")
    return Completion(
        content=_text(message.get("content")),
        reasoning=_text(message.get("reasoning_content")) or _text(message.get("reasoning")),
        tool_calls=calls,
        finish_reason=_FINISH.get(choice.get("finish_reason") or "stop", "stop"),
        usage=_usage(usage) if isinstance(usage, dict) else Usage(),
    )


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):  # content as parts: [{"text": ...}]
        return "".join(p.get("text") or "" for p in value if isinstance(p, dict))
    return ""


def _tool_call_delta(call: dict[str, Any]) -> ToolCallDelta:
    function = call.get("function") or {}
    return ToolCallDelta(
        index=int(call.get("index") or 0),
        id=call.get("id") or None,
        name=function.get("name") or None,
        arguments=function.get("arguments") or "",
    )


def _usage(usage: dict[str, Any]) -> Usage:
    prompt_details = usage.get("prompt_tokens_details") or {}
    completion_details = usage.get("completion_tokens_details") or {}
    return Usage(
        prompt_tokens=int(usage.get("prompt_tokens") or 0),
        completion_tokens=int(usage.get("completion_tokens") or 0),
        cached_tokens=int(prompt_details.get("cached_tokens") or 0),
        reasoning_tokens=int(completion_details.get("reasoning_tokens") or 0),
    )


# --- errors -------------------------------------------------------------------------------------


def _status_error(status: int, raw: bytes, headers: Mapping[str, str]) -> Exception:
    message, code = _error_fields(_json_body(raw))
    message = message or raw[:300].decode(errors="replace").strip() or f"HTTP {status}"
    if status in (400, 413) and (match := _MS_RANGE.search(message)):
        limit = int(match.group(1))
        # The upstream does not say how long the prompt was, only that it is over the limit.
        return ContextTooLong(message, prompt_tokens=limit + 1, limit=limit)
    if status in (400, 413) and (match := _VLLM_RANGE.search(message)):
        return ContextTooLong(message, prompt_tokens=int(match.group(2)), limit=int(match.group(1)))
    if status == 429:
        return RateLimited(f"upstream rate limit: {message}", retry_after=_retry_after(headers))
    return UpstreamError(f"upstream error {status}: {message}", status=status, code=code)


def _json_body(raw: bytes) -> Any:
    """An error body as JSON: plain, or SSE-framed (Model Studio sends ``data: {...}`` for streams)."""
    text = raw.strip()
    if text.startswith(b"data:"):
        text = text[5:].split(b"\n", 1)[0].strip()
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return None


def _error_fields(body: Any) -> tuple[str, str | None]:
    """``(message, code)`` of ``{"error": {...}}``, ``{"error": "..."}`` or a flat ``{"code", "message"}``."""
    if isinstance(body, dict) and "error" in body:
        body = body["error"]
    if isinstance(body, str):
        return body, None
    if not isinstance(body, dict):
        return "", None
    code = body.get("code") or body.get("type")
    return str(body.get("message") or ""), None if code is None else str(code)


def _retry_after(headers: Mapping[str, str]) -> float | None:
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is not None:
            try:
                return max(0.0, float(value) * scale)
            except ValueError:  # an HTTP date: not honoured
                return None
    return None


# --- the request --------------------------------------------------------------------------------
