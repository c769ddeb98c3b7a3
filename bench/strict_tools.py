"""``strict`` tools with ``tool_choice: auto`` on the embedded model: grammar or no grammar.

With ``auto`` the model may answer in text or call a tool. For a ``strict`` tool the arguments
must match its schema. Two ways to keep that promise: constrain the output by a grammar that
allows text or a matching call (``tool_calls.constraint``), or parse what the model writes and
check it afterwards. This script measures, on the real embedded model, what the grammar changes:
calls made and valid against the schema, text answers kept as text, decode speed.

    .venv/bin/python bench/strict_tools.py [--seeds 3] [--max-tokens 96] [--threads 1]

Each prompt runs under both modes with the same seeds; "free" is the same request without the
grammar (what multiturn did before: the call parsed, its arguments not checked). Decode cost is
CPU time per token after the first text arrives, on one thread by default: on a shared machine
wall time varies several-fold from run to run, CPU time of one thread by a few per cent.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from dataclasses import replace
from typing import Any

import jsonschema

from multiturn import catalog
from multiturn.backends.llamacpp import LlamaCppBackend, LlamaOptions
from multiturn.settings import DEFAULT_MODEL, Settings
from multiturn.types import GenerationParams, Message, ToolSpec

WEATHER = ToolSpec(
    name="get_weather",
    description="The current weather of a city",
    parameters={
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        },
        "required": ["city", "unit"],
        "additionalProperties": False,
    },
    strict=True,
)
CALLS = [
    "What's the weather in Paris?",
    "Is it cold in Oslo right now? Answer in fahrenheit.",
    "Tell me the temperature in Tokyo.",
    "Check the weather for Berlin please.",
    "What's the weather in Paris in kelvin?",
    "Weather for Rome, metric units please.",
]
TEXT = [
    "Write a haiku about autumn.",
    "What is 12 times 7?",
    "Explain what a linked list is in two sentences.",
    "Say hello in French.",
]


async def run(backend: LlamaCppBackend, prompt: str, params: GenerationParams, grammar: bool) -> dict[str, Any]:
    if not grammar:  # the same tool, not strict: no grammar, the call parsed as written
        params = replace(params, tools=tuple(replace(t, strict=False) for t in params.tools))
    content, calls, usage = "", [], None
    first: tuple[float, int] | None = None  # when the first text came, and the tokens by then
    async for delta in backend.generate([Message.of("user", prompt)], params):
        if delta.content and first is None and delta.usage is not None:
            first = (time.process_time(), delta.usage.completion_tokens)
        content += delta.content
        calls += [(c.name, c.arguments) for c in delta.tool_calls]
        usage = delta.usage or usage
    ended = time.process_time()
    valid = []
    for _, arguments in calls:
        try:
            jsonschema.validate(json.loads(arguments), WEATHER.parameters or {})
            valid.append(True)
        except (ValueError, jsonschema.ValidationError):
            valid.append(False)
    assert usage is not None
    decoded = (usage.completion_tokens - first[1], ended - first[0]) if first else (0, 0.0)
    return {"content": content, "calls": calls, "valid": valid, "decoded": decoded}


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=96)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    settings = Settings()
    spec = catalog.find(DEFAULT_MODEL)
    options = LlamaOptions(n_ctx=4096, n_threads=args.threads)
    backend = LlamaCppBackend.for_catalog(spec, settings.models_dir, options, name="qwen-plus")
    await backend.prepare()
    totals: dict[tuple[str, bool], dict[str, float]] = {}
    for kind, prompts in (("call", CALLS), ("text", TEXT)):
        for prompt in prompts:
            for seed in range(args.seeds):
                params = GenerationParams(
                    max_tokens=args.max_tokens, temperature=0.7, seed=seed, tools=(WEATHER,), tool_choice="auto"
                )
                for grammar in (False, True):
                    # a throw-away call first: both modes start from the same KV cache state
                    await run(backend, "Hi", replace(params, max_tokens=1, tools=()), False)
                    r = await run(backend, prompt, params, grammar)
                    t = totals.setdefault((kind, grammar), dict.fromkeys(("n", "calls", "valid", "tok", "s"), 0.0))
                    t["n"] += 1
                    t["calls"] += bool(r["calls"])
                    t["valid"] += bool(r["calls"]) and all(r["valid"])
                    t["tok"] += r["decoded"][0]
                    t["s"] += r["decoded"][1]
                    mode = "grammar" if grammar else "free"
                    shown = json.dumps(r["content"][:70])
                    print(f"{kind} {mode:7} seed={seed} {prompt[:28]:28} calls={r['calls']} valid={r['valid']} {shown}")
    print()
    print("| prompts | mode | answers | with a call | call valid | CPU ms per decoded token (streamed text) |")
    print("|---|---|---|---|---|---|")
    for (kind, grammar), t in totals.items():
        mode = "grammar" if grammar else "free"
        speed = f"{1000 * t['s'] / t['tok']:.1f}" if t["tok"] else "-"
        print(f"| {kind} | {mode} | {t['n']:.0f} | {t['calls']:.0f} | {t['valid']:.0f} | {speed} |")


if __name__ == "__main__":
    asyncio.run(main())
