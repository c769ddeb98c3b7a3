"""Canned calls for the conformance tests: the request bodies, the fake upstream's deterministic
answers to them, and the small helpers that send them (an SDK client, a raw stream of either
protocol, read to its end)."""

from __future__ import annotations

from typing import Any

from openai import OpenAI

from support.serve import Server

from . import wire

TEXT_PATH = "/services/aigc/text-generation/generation"
MULTIMODAL_PATH = "/services/aigc/multimodal-generation/generation"
SSE = {"X-DashScope-SSE": "enable"}
HI = [{"role": "user", "content": "hi there"}]
HI_NATIVE = {"messages": [{"role": "user", "content": "hi there"}]}
ANSWER = "You said: hi there"  # the fake upstream's answer to HI
REASONING = "The user said: hi there. I will answer."
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"text": {"type": "string"}}},
    },
}


_clients: list[OpenAI] = []


def openai_client(base_url: str, api_key: str, **options: Any) -> OpenAI:
    """An ``OpenAI`` client, closed after the test (``close_clients``, by an autouse fixture)."""
    made = OpenAI(api_key=api_key, base_url=base_url, **options)
    _clients.append(made)
    return made


def sdk(server: Server, **options: Any) -> OpenAI:
    """An ``OpenAI`` client for ``server``'s compatible-mode base URL and key."""
    return openai_client(server.compat, server.api_key, **options)


def close_clients() -> None:
    while _clients:
        _clients.pop().close()


def compat_stream(
    server: Server, body: dict[str, Any], **headers: str
) -> tuple[wire.Stream, list[dict[str, Any]], bool]:
    stream = wire.open_stream(f"{server.compat}/chat/completions", {"stream": True, **body}, headers, server.api_key)
    with stream:
        assert stream.status == 200, stream.response.read()
        chunks, done = wire.openai_chunks(stream.read_all())
    return stream, chunks, done


def native_stream(
    server: Server, body: dict[str, Any], path: str = TEXT_PATH
) -> tuple[wire.Stream, list[tuple[wire.Event, dict[str, Any]]]]:
    stream = wire.open_stream(f"{server.native}{path}", body, SSE, server.api_key)
    with stream:
        assert stream.status == 200, stream.response.read()
        return stream, wire.native_events(stream.read_all())
