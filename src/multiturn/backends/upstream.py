"""The upstream backend: any OpenAI-compatible chat-completions server.

Model Studio's compatible mode, vLLM, SGLang, Ollama and llama.cpp's server all answer
``POST {base_url}/chat/completions``. This backend always asks for a stream with usage
(``stream: true``, ``stream_options.include_usage``) and relays it: every upstream chunk becomes a
``Delta`` as soon as it is parsed, nothing is buffered.

- One ``aiohttp.ClientSession`` per backend, created on first use inside the running loop and
  closed by ``aclose``; a backend serves one event loop. aiohttp, not httpx: the client library is
  the main cost of a Python relay (``reference/gateway-anchors.md`` §0).
- This module holds HTTP, retries and timeouts; what the upstream's chunks, bodies, usage and
  error answers mean is read by ``protocols/openai_chat/client.py`` (context overflow →
  ``ContextTooLong``, 429 → ``RateLimited``, others ``UpstreamError``; an error event mid-stream →
  ``UpstreamError``), and the request written by ``translate.encode_request``.
- Transport errors are mapped here, once: unreachable → ``UpstreamError(status=None)``; a failure
  after the stream started (reset, read timeout) → ``UpstreamError``, raised after the deltas
  already yielded.
- Thinking: reasoning the upstream sends apart (``reasoning_content`` or ``reasoning``) is relayed
  as ``Delta.reasoning``; a ``<think>...</think>`` block opening the content (Qwen3 behind
  llama.cpp or Ollama without a reasoning parser) is moved there too (``thinking.InlineThink``).
  Stored reasoning goes back upstream as ``reasoning_content`` only as the alias's
  ``reasoning_replay`` says (``drop`` by default: none; ``tool_chain``; ``keep``), for stored and
  stateless requests alike.
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
from collections.abc import AsyncGenerator, Sequence
from contextlib import aclosing, suppress
from dataclasses import replace

import aiohttp

from ..errors import BackendError, UpstreamError
from ..protocols.openai_chat.client import ChunkReader, parse_completion, parse_error, retry_after
from ..protocols.openai_chat.translate import encode_request
from ..protocols.sse import SSEParser
from ..settings import ReasoningReplay
from ..tokens import ImageEstimate
from ..types import ChatRequest, Completion, Delta, GenerationParams, Message
from .base import BackendInfo
from .thinking import PASSING, InlineThink, split_thinking

DEFAULT_CONTEXT_WINDOW = 131072
DEFAULT_MAX_OUTPUT_TOKENS = 8192
BACKOFF = 0.2
MAX_RETRY_AFTER = 5.0
POOL_LIMIT = 256
KEEPALIVE_TIMEOUT = 30.0
DRAIN_SECONDS = 0.5
"""How long to wait, after ``[DONE]``, for the end of the body so the connection can be reused."""


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
        reasoning_replay: ReasoningReplay = "drop",
        image_tokens: ImageEstimate = "qwen-vl",
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
        self.reasoning_replay: ReasoningReplay = reasoning_replay
        self._image_tokens: ImageEstimate = image_tokens
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def info(self) -> BackendInfo:
        return BackendInfo(
            name=self.name,
            context_window=self._context_window,
            max_output_tokens=self._max_output_tokens,
            capabilities=self._capabilities,
            description=f"upstream {self.base_url}",
            image_tokens=self._image_tokens,
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
        return self._generate(encode_request(request, stream=True, include_usage=True, reasoning=self.reasoning_replay))

    async def complete(self, messages: Sequence[Message], params: GenerationParams) -> Completion:
        """One non-streamed call: cheaper than a stream when the caller wants the whole answer."""
        request = ChatRequest(self.upstream_model, tuple(messages), params)
        body = encode_request(request, stream=False, include_usage=False, reasoning=self.reasoning_replay)
        response, _ = await self._post(body, accept="application/json")
        try:
            raw = await response.read()
        except TimeoutError as exc:
            raise UpstreamError(f"upstream stalled: no data for {self._read_timeout:g} s", code="timeout") from exc
        except aiohttp.ClientError as exc:
            raise UpstreamError(f"upstream connection broke: {exc or type(exc).__name__}") from exc
        finally:
            response.release()
        completion = parse_completion(raw)
        if completion.reasoning or not completion.content.lstrip().startswith("<think>"):
            return completion
        content, reasoning = split_thinking(completion.content.lstrip())
        return replace(completion, content=content, reasoning=reasoning)

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
        error = parse_error(response.status, raw, response.headers)
        if response.status in (408, 429) or response.status >= 500:
            raise _Retry(error, retry_after(response.headers))
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
    body's first byte is due by the loop time ``first_by``. A ``<think>`` block opening the
    content is moved into reasoning (``thinking.InlineThink``)."""
    parser = SSEParser()
    state = ChunkReader()
    think = InlineThink()
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
                            out = delta if think.state == PASSING else think.feed(delta)
                            if out is not None:
                                yield out
                break
            for event in parser.feed(chunk):
                if event.data.strip() == "[DONE]":
                    done = True
                    break
                for delta in state.feed(event.event or "", event.data):
                    out = delta if think.state == PASSING else think.feed(delta)
                    if out is not None:
                        yield out
            if done:
                break
            chunk = None
    except TimeoutError as exc:  # aiohttp's SocketTimeoutError is one
        raise UpstreamError(f"upstream stalled: no data for {read_timeout:g} s", code="timeout") from exc
    except aiohttp.ClientError as exc:
        raise UpstreamError(f"upstream connection broke mid-stream: {exc or type(exc).__name__}") from exc
    final = state.final(done)
    if final is not None and think.state != PASSING:
        final = think.feed(final)
    if final is not None:
        yield final
    if done:  # the chunked body's end may still be on its way: read it, and the connection is reusable
        with suppress(TimeoutError, aiohttp.ClientError):
            async with asyncio.timeout(DRAIN_SECONDS):
                await response.content.read()
