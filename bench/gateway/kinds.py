"""The request kinds of the stored-turns benchmark: what each sends and how its answer is validated.

Every kind is one HTTP request to a gateway base URL, with the model ``qwen-plus`` and no token
limit, and the answer is checked in full (status 200, the upstream's sentence, a stream that ends
properly); a failed check raises ``Invalid``. Stateful kinds continue the worker's own state:

- ``responses`` / ``responses_stream``: ``POST /v1/responses`` with ``store: true`` and, after the
  worker's first turn, ``previous_response_id`` = the worker's previous response; both kinds
  continue the same chain. A failed turn leaves the chain where it was.
- ``stateful_chat``: ``POST /v1/chat/completions`` with ``"conversation": <id>``; the worker's
  conversation is made by ``POST /v1/conversations {}`` before the first request (``prepare``).

Stateless kinds: ``stateless`` and ``stateless_stream`` (``/v1/chat/completions``) and
``dashscope`` (the native text-generation route, non-stream); ``stateless_history``: a chat
completion carrying the worker's own growing ``messages`` array (each answer appended), i.e. the
stored kinds' payload kept by the client, as an application does without a store. ``chat`` sends a stateless chat
completion with any ``messages`` (the chain's baseline at a late turn's payload, ``baseline.py``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from .common import DASHSCOPE_PATH, MODEL, OPENAI_PATH, PROMPT, SENTENCE, dashscope_body, openai_body

KINDS = (
    "stateless",
    "stateless_stream",
    "stateless_history",
    "dashscope",
    "responses",
    "responses_stream",
    "stateful_chat",
)
STORED = ("responses", "responses_stream", "stateful_chat")
CHAINED = ("responses", "responses_stream")
JSON_HEADERS = {"Content-Type": "application/json"}


class Invalid(Exception):
    """An answer that is not what the kind expects (status, shape, text, stream order)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Chain:
    """One worker's stored state: its responses chain and its conversation."""

    last_id: str | None = None
    turns: int = 0  # successful turns on the chain
    first_id: str | None = None
    conversation: str | None = None
    conversation_turns: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    """``stateless_history``'s own messages array, kept by the client as one would by hand."""

    def to_json(self) -> dict[str, Any]:
        return {
            "first_id": self.first_id,
            "last_id": self.last_id,
            "turns": self.turns,
            "conversation": self.conversation,
            "conversation_turns": self.conversation_turns,
        }


@dataclass
class Outcome:
    seconds: float
    ttft: float | None = None
    header_bytes: int = 0  # the response's header block
    longest_header: tuple[int, str] = (0, "")  # its longest field (name: value), and the name


def header_size(resp: aiohttp.ClientResponse) -> tuple[int, tuple[int, str]]:
    """The size of a response's header block and of its longest field (bytes, as on the wire)."""
    sizes = [(len(name) + len(value) + 2, name.decode("latin-1")) for name, value in resp.raw_headers]
    return sum(n + 2 for n, _ in sizes), max(sizes, default=(0, ""))


def _headers(key: str | None) -> dict[str, str]:
    return {**JSON_HEADERS, "Authorization": f"Bearer {key}"} if key else dict(JSON_HEADERS)


async def _fail(resp: aiohttp.ClientResponse) -> Invalid:
    return Invalid(f"HTTP {resp.status}: {(await resp.read())[:300]!r}", resp.status)


def output_text(response: dict[str, Any]) -> str:
    """The text of a Responses API object's message items (``output_text`` parts)."""
    return "".join(
        part.get("text", "")
        for item in response.get("output") or ()
        if item.get("type") == "message"
        for part in item.get("content") or ()
        if part.get("type") == "output_text"
    )


def _check_response(response: dict[str, Any]) -> str:
    if response.get("status") != "completed":
        raise Invalid(f"response status {response.get('status')!r}: {str(response.get('error'))[:200]}")
    text = output_text(response)
    if text != SENTENCE:
        raise Invalid(f"wrong output text: {text[:200]!r}")
    rid = response.get("id")
    if not isinstance(rid, str) or not rid.startswith("resp"):
        raise Invalid(f"bad response id {rid!r}")
    return rid


async def _sse(resp: aiohttp.ClientResponse) -> Any:
    """The events of a server-sent stream as (event name or None, data bytes), in order."""
    if not resp.headers.get("content-type", "").startswith("text/event-stream"):
        raise Invalid(f"not an event stream: {resp.headers.get('content-type')}")
    buffer = b""
    async for chunk in resp.content.iter_any():
        buffer += chunk
        if b"\r" in buffer:
            buffer = buffer.replace(b"\r\n", b"\n")
        *complete, buffer = buffer.split(b"\n\n")
        for raw in complete:
            name, data = None, []
            for line in raw.split(b"\n"):
                if line.startswith(b"event:"):
                    name = line[6:].strip().decode()
                elif line.startswith(b"data:"):
                    data.append(line[5:].lstrip(b" "))
            if data or name:
                yield name, b"\n".join(data)
    if buffer.strip():
        raise Invalid(f"a partial event at the end: {buffer[:200]!r}")


async def create_conversation(session: aiohttp.ClientSession, base: str, key: str | None = None) -> str:
    async with session.post(f"{base}/v1/conversations", data=b"{}", headers=_headers(key)) as resp:
        if resp.status != 200:
            raise await _fail(resp)
        cid = orjson.loads(await resp.read()).get("id")
    if not isinstance(cid, str) or not cid.startswith("conv_"):
        raise Invalid(f"bad conversation id {cid!r}")
    return cid


async def send(kind: str, session: aiohttp.ClientSession, base: str, chain: Chain, key: str | None = None) -> Outcome:
    """Send one request of ``kind`` to the gateway at ``base``, validate it, advance ``chain``."""
    if kind in ("stateless", "stateless_stream"):
        return await _chat(session, base, openai_body(kind == "stateless_stream"), key, kind == "stateless_stream")
    if kind == "stateless_history":  # the stored turn's payload, kept by the client instead
        user = {"role": "user", "content": PROMPT}
        outcome = await chat(session, base, [*chain.history, user], key)
        chain.history += [user, {"role": "assistant", "content": SENTENCE}]
        return outcome
    if kind == "dashscope":
        return await _dashscope(session, base, key)
    if kind in CHAINED:
        return await _responses(session, base, chain, key, kind == "responses_stream")
    if kind == "stateful_chat":
        if chain.conversation is None:
            raise Invalid("no conversation: call prepare() first")
        body = {"model": MODEL, "messages": [{"role": "user", "content": PROMPT}], "conversation": chain.conversation}
        outcome = await _chat(session, base, orjson.dumps(body), key, False)
        chain.conversation_turns += 1
        return outcome
    raise ValueError(f"unknown kind {kind!r}")


async def chat(
    session: aiohttp.ClientSession, base: str, messages: list[dict[str, Any]], key: str | None = None
) -> Outcome:
    """One stateless, non-streamed ``/v1/chat/completions`` with the given ``messages``, validated."""
    body = orjson.dumps({"model": MODEL, "messages": messages, "stream": False})
    return await _chat(session, base, body, key, False)


async def _chat(session: aiohttp.ClientSession, base: str, body: bytes, key: str | None, stream: bool) -> Outcome:
    t0 = time.perf_counter()
    async with session.post(f"{base}{OPENAI_PATH}", data=body, headers=_headers(key)) as resp:
        if resp.status != 200:
            raise await _fail(resp)
        size, longest = header_size(resp)
        if not stream:
            data = orjson.loads(await resp.read())
            content = data["choices"][0]["message"]["content"]
            if content != SENTENCE:
                raise Invalid(f"wrong content: {content!r}")
            return Outcome(time.perf_counter() - t0, None, size, longest)
        pieces: list[str] = []
        ttft = None
        done = finished = False
        async for name, data in _sse(resp):
            if name == "error":
                raise Invalid(f"error event: {data[:300]!r}")
            if data == b"[DONE]":
                done = True
                continue
            if done:
                raise Invalid("an event after [DONE]")
            choices = orjson.loads(data).get("choices") or ()
            if not choices:
                continue
            content = (choices[0].get("delta") or {}).get("content") or ""
            if content:
                ttft = ttft if ttft is not None else time.perf_counter() - t0
                pieces.append(content)
            finish = choices[0].get("finish_reason")
            if finish == "stop":
                finished = True
            elif finish:
                raise Invalid(f"finish_reason {finish!r}")
    if "".join(pieces) != SENTENCE:
        raise Invalid(f"wrong text: {''.join(pieces)[:200]!r}")
    if not (finished and done):
        raise Invalid(f"stream did not end properly (finish={finished}, [DONE]={done})")
    return Outcome(time.perf_counter() - t0, ttft, size, longest)


async def _dashscope(session: aiohttp.ClientSession, base: str, key: str | None) -> Outcome:
    t0 = time.perf_counter()
    async with session.post(f"{base}{DASHSCOPE_PATH}", data=dashscope_body(), headers=_headers(key)) as resp:
        if resp.status != 200:
            raise await _fail(resp)
        size, longest = header_size(resp)
        data = orjson.loads(await resp.read())
    content = data["output"]["choices"][0]["message"]["content"]
    if content != SENTENCE:
        raise Invalid(f"wrong content: {content!r}")
    return Outcome(time.perf_counter() - t0, None, size, longest)


async def _responses(session: aiohttp.ClientSession, base: str, chain: Chain, key: str | None, stream: bool) -> Outcome:
    body: dict[str, Any] = {"model": MODEL, "input": PROMPT, "store": True}
    if chain.last_id is not None:
        body["previous_response_id"] = chain.last_id
    if stream:
        body["stream"] = True
    t0 = time.perf_counter()
    ttft = None
    async with session.post(f"{base}/v1/responses", data=orjson.dumps(body), headers=_headers(key)) as resp:
        if resp.status != 200:
            raise await _fail(resp)
        size, longest = header_size(resp)
        if not stream:
            rid = _check_response(orjson.loads(await resp.read()))
        else:
            names: list[str] = []
            pieces: list[str] = []
            final: dict[str, Any] | None = None
            async for name, data in _sse(resp):
                event = orjson.loads(data)
                kind = event.get("type")
                if name != kind:
                    raise Invalid(f"event line {name!r} but type {kind!r}")
                if event.get("sequence_number") != len(names):
                    raise Invalid(f"sequence_number {event.get('sequence_number')} at event {len(names)}")
                if names and names[-1] in ("response.completed", "response.failed", "response.incomplete"):
                    raise Invalid(f"{kind} after {names[-1]}")
                names.append(kind)
                if kind in ("error", "response.failed"):
                    raise Invalid(f"{kind}: {data[:300]!r}")
                if kind == "response.output_text.delta":
                    ttft = ttft if ttft is not None else time.perf_counter() - t0
                    pieces.append(event["delta"])
                elif kind == "response.completed":
                    final = event["response"]
            if not names or names[0] != "response.created" or final is None:
                raise Invalid(f"stream did not end with response.completed: {names[:2]}…{names[-2:]}")
            if "".join(pieces) != SENTENCE:
                raise Invalid(f"wrong streamed text: {''.join(pieces)[:200]!r}")
            rid = _check_response(final)
    chain.first_id = chain.first_id or rid
    chain.last_id = rid
    chain.turns += 1
    return Outcome(time.perf_counter() - t0, ttft, size, longest)


async def verify_chain(session: aiohttp.ClientSession, base: str, chain: Chain, key: str | None = None) -> str | None:
    """Check that ``chain`` is whole in the store: its last response is retrievable and completed,
    and its input items (every page of ``input_items?limit=100``) are the path of ``2 * turns - 1``
    items alternating user/assistant. None when it is, else what is wrong."""
    if chain.last_id is None:
        return None if chain.turns == 0 else "no last id"
    headers = _headers(key)
    async with session.get(f"{base}/v1/responses/{chain.last_id}", headers=headers) as resp:
        if resp.status != 200:
            return f"GET last response: {(await _fail(resp))}"
        try:
            _check_response(orjson.loads(await resp.read()))
        except Invalid as exc:
            return f"last response: {exc}"
    roles = await _roles(session, f"{base}/v1/responses/{chain.last_id}/input_items", headers)
    if isinstance(roles, str):
        return roles
    return _alternating(roles, 2 * chain.turns - 1, f"input items after {chain.turns} turns")


async def verify_conversation(
    session: aiohttp.ClientSession, base: str, chain: Chain, key: str | None = None
) -> str | None:
    """Check that the worker's conversation holds ``2 * turns`` items, user/assistant in turn."""
    if chain.conversation is None:
        return None
    roles = await _roles(session, f"{base}/v1/conversations/{chain.conversation}/items", _headers(key))
    if isinstance(roles, str):
        return roles
    return _alternating(roles, 2 * chain.conversation_turns, f"items after {chain.conversation_turns} turns")


async def _roles(session: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> list[str] | str:
    """The roles of every item of a paged list (oldest first, pages of 100), or the error."""
    roles: list[str] = []
    after = ""
    while True:
        async with session.get(f"{url}?limit=100&order=asc{after}", headers=headers) as resp:
            if resp.status != 200:
                return f"{url.rsplit('/', 1)[-1]}: {(await _fail(resp))}"
            page = orjson.loads(await resp.read())
        roles += [item.get("role") for item in page["data"]]
        if not page.get("has_more"):
            return roles
        after = f"&after={page['last_id']}"


def _alternating(roles: list[str], want: int, what: str) -> str | None:
    if len(roles) != want:
        return f"{len(roles)} {what} (want {want})"
    if any(role != ("user" if i % 2 == 0 else "assistant") for i, role in enumerate(roles)):
        return f"roles do not alternate user/assistant: {roles[:6]}"
    return None
