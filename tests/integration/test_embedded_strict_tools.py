"""``strict`` tools with ``tool_choice: auto`` on the embedded model (backends/grammar.py).

The model chooses between text and a call; a call of a strict tool must match its schema. On
the real model, through the gateway with the official SDK: every call that comes back
validates against the schema (several prompts and seeds, streamed and whole, at least one
call among them), and prose stays prose. In process, on the same model: the grammar that holds
a call opened after text (``after_tag``) is parsed by llama.cpp with the model's vocabulary
and gives a call that validates.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import jsonschema
import openai
import pytest

from multiturn import catalog
from multiturn.backends.grammar import request_constraint
from multiturn.backends.llamacpp import LlamaCppBackend, LlamaOptions, _grammar, _State
from multiturn.backends.tool_calls import CLOSE, OPEN
from multiturn.settings import DEFAULT_MODEL
from multiturn.types import GenerationParams, Message, ToolSpec
from support.serve import Server, default_cache_dir, serving

pytestmark = pytest.mark.model

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
    "required": ["city", "unit"],
    "additionalProperties": False,
}
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The current weather of a city",
        "parameters": SCHEMA,
        "strict": True,
    },
}
ASKS = [
    "What's the weather in Paris?",
    "Tell me the temperature in Tokyo.",
    "Weather for Rome, metric units please.",
    "Say hello in French.",  # the model opens with a made-up call: held to the tool's schema
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serving("strict-tools", tmp_path_factory.mktemp("strict-tools")) as started:
        yield started


@pytest.fixture(scope="module")
def client(server: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.base}/v1", api_key="any", max_retries=0)


def ask(client: openai.OpenAI, text: str, seed: int, stream: bool) -> tuple[str, list[tuple[str, str]], str | None]:
    """(content, calls as (name, arguments), finish) of one request, streamed or whole."""
    request: dict[str, Any] = {
        "model": "qwen-plus",
        "messages": [{"role": "user", "content": text}],
        "tools": [WEATHER],
        "tool_choice": "auto",
        "max_tokens": 64,
        "temperature": 0.7,
        "seed": seed,
    }
    if not stream:
        done = client.chat.completions.create(**request)
        message = done.choices[0].message
        calls = [(c.function.name, c.function.arguments) for c in message.tool_calls or []]
        return message.content or "", calls, done.choices[0].finish_reason
    content, finish = "", None
    pieces: dict[int, list[str]] = {}
    for chunk in client.chat.completions.create(**request, stream=True):
        for choice in chunk.choices:
            content += choice.delta.content or ""
            finish = choice.finish_reason or finish
            for call in choice.delta.tool_calls or []:
                piece = pieces.setdefault(call.index, ["", ""])
                piece[0] += (call.function.name or "") if call.function else ""
                piece[1] += (call.function.arguments or "") if call.function else ""
    return content, [(name, arguments) for name, arguments in pieces.values()], finish


def test_every_call_of_a_strict_tool_matches_its_schema(client: openai.OpenAI) -> None:
    calls = []
    for n, text in enumerate(ASKS):
        for seed, stream in ((n, False), (n + 10, True)):
            content, made, finish = ask(client, text, seed, stream)
            if made:
                assert finish == "tool_calls" and content == "", (text, content)
            calls += made
    assert calls, "no call at all: nothing was shown"
    for name, arguments in calls:
        assert name == "get_weather"
        jsonschema.validate(json.loads(arguments), SCHEMA)


def test_prose_under_a_strict_tool_stays_prose(client: openai.OpenAI) -> None:
    content, calls, finish = ask(client, "Write a haiku about autumn.", seed=1, stream=True)
    assert calls == [] and finish in ("stop", "length")
    assert len(content.split()) >= 5 and not content.lstrip().startswith(("{", "<"))


def test_a_call_opened_after_text_is_held_to_the_schema() -> None:
    spec = catalog.find(DEFAULT_MODEL)
    backend = LlamaCppBackend.for_catalog(spec, default_cache_dir() / "models", LlamaOptions(n_ctx=2048))
    tool = ToolSpec(name="get_weather", description="The current weather of a city", parameters=SCHEMA, strict=True)
    params = GenerationParams(tools=(tool,), tool_choice="auto")
    constraint = request_constraint(params)
    assert constraint is not None and constraint.after_tag is not None
    after_tag = constraint.after_tag

    def write_after_the_tag(state: _State) -> str:
        # The answer so far: some text, then the tag (the model's own token for it).
        prompt = state.prompt_tokens([Message.of("user", "Weather in Oslo, in kelvin.")], params)
        prompt += state.llm.tokenize(f"Let me look that up.\n{OPEN}".encode(), add_bos=False, special=True)
        out = b""
        for token in state.llm.generate(prompt, temp=0.0, grammar=_grammar(state, after_tag)):
            if state.is_eog(token):
                break
            out += state.llm.detokenize([token])
            if len(out) > 400:
                break
        return out.decode()

    async def run() -> str:
        await backend.prepare()
        assert backend._runner is not None
        return str(await asyncio.wrap_future(backend._runner.submit(write_after_the_tag)))

    written = asyncio.run(run())
    assert written.startswith("\n") and written.rstrip().endswith(CLOSE), written
    call = json.loads(written.strip()[: -len(CLOSE)])
    assert call["name"] == "get_weather"
    jsonschema.validate(call["arguments"], SCHEMA)  # "kelvin" is no unit of the schema
