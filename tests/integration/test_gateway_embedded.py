"""The gateway in front of the embedded model: a real `multiturn serve` process, real HTTP."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from openai import AsyncOpenAI

pytestmark = pytest.mark.model

LISTENING = re.compile(r"listening on (http://[\d.]+:\d+)")


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    tmp = tmp_path_factory.mktemp("gateway")
    env = {
        **os.environ,
        "MULTITURN_DB": str(tmp / "gateway.db"),
        "MULTITURN_CONFIG": str(tmp / "absent.toml"),
        "MULTITURN_DATA_DIR": str(tmp),
    }
    exe = Path(sys.executable).with_name("multiturn")
    proc = subprocess.Popen([str(exe), "serve", "--port", "0"], env=env, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = LISTENING.search(line)
    assert match, line
    try:
        yield match.group(1), tmp
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        proc.stdout.close()


async def test_concurrent_streams_are_all_served_and_the_loop_stays_responsive(gateway: tuple[str, Path]) -> None:
    client = AsyncOpenAI(base_url=f"{gateway[0]}/v1", api_key="any")

    async def ask(n: int) -> tuple[str, str | None]:
        stream = await client.chat.completions.create(
            model="qwen-plus",
            messages=[{"role": "user", "content": f"Count from {n} to {n + 5}."}],
            max_tokens=24,
            temperature=0,
            stream=True,
        )
        text, finish = "", None
        async for chunk in stream:
            if chunk.choices:
                text += chunk.choices[0].delta.content or ""
                finish = chunk.choices[0].finish_reason or finish
        return text, finish

    streams = [asyncio.create_task(ask(n)) for n in (1, 10, 20)]
    await asyncio.sleep(0)  # let the three requests go out
    async with aiohttp.ClientSession() as session, session.get(f"{gateway[0]}/healthz") as response:
        health = await response.json()
    pending_when_healthy = sum(not task.done() for task in streams)
    results = await asyncio.gather(*streams)
    assert health["status"] == "ok"
    # The queue serves the model one request at a time; the event loop answered meanwhile.
    assert pending_when_healthy > 0
    for text, finish in results:
        assert text.strip(), results  # none was silently cut to 0 tokens
        assert finish in ("stop", "length")
    await client.close()


async def test_the_gateway_stores_nothing_for_stateless_requests(gateway: tuple[str, Path]) -> None:
    client = AsyncOpenAI(base_url=f"{gateway[0]}/v1", api_key="any")
    completion = await client.chat.completions.create(
        model="qwen-plus", messages=[{"role": "user", "content": "Hi"}], max_tokens=4
    )
    assert completion.choices[0].message.content
    assert completion.usage is not None and completion.usage.prompt_tokens_details is not None
    assert isinstance(completion.usage.prompt_tokens_details.cached_tokens, int)
    with sqlite3.connect(gateway[1] / "gateway.db") as db:  # migrated at start-up, and left empty
        assert [db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("conversations", "items")] == [0, 0]
    await client.close()


def _long_history(rounds: int) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": "You are a terse assistant."}]
    for n in range(rounds):
        messages.append(
            {"role": "user", "content": f"Note {n}: the warehouse in city {n} stocks {n * 7} crates of tea."}
        )
        messages.append({"role": "assistant", "content": f"Noted: city {n} has {n * 7} crates."})
    messages.append({"role": "user", "content": "Say OK."})
    return messages


async def test_without_opt_in_the_array_is_forwarded_as_is(gateway: tuple[str, Path]) -> None:
    client = AsyncOpenAI(base_url=f"{gateway[0]}/v1", api_key="any")
    raw = await client.chat.completions.with_raw_response.create(
        model="qwen-plus", messages=_long_history(3), max_tokens=4, temperature=0
    )
    assert "x-multiturn-context" not in raw.headers
    usage = raw.parse().usage
    assert usage is not None and usage.prompt_tokens > 100
    await client.close()


async def test_a_policy_header_fits_a_stateless_array_to_the_budget_and_reports_it(gateway: tuple[str, Path]) -> None:
    client = AsyncOpenAI(base_url=f"{gateway[0]}/v1", api_key="any")
    messages = _long_history(30)
    full = await client.chat.completions.create(model="qwen-plus", messages=messages, max_tokens=2, temperature=0)
    raw = await client.chat.completions.with_raw_response.create(
        model="qwen-plus",
        messages=messages,
        max_tokens=2,
        temperature=0,
        extra_headers={"X-Multiturn-Policy": "window", "X-Multiturn-Budget": "300"},
    )
    report = json.loads(raw.headers["x-multiturn-context"])
    completion = raw.parse()
    assert report["policy"] == "window" and report["budget"] == 300
    assert report["tokens"] <= 300
    last = len(messages) - 1
    assert report["kept"].startswith("0,") and report["kept"].endswith(f"-{last}")  # system first, newest last
    assert report["dropped"].startswith("1-")  # the oldest rounds went
    assert full.usage is not None and completion.usage is not None
    assert completion.usage.prompt_tokens < 300 < full.usage.prompt_tokens
    await client.close()


async def test_a_model_suffix_opts_in_for_streams_and_the_native_protocol(gateway: tuple[str, Path]) -> None:
    messages = _long_history(30)
    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"{gateway[0]}/v1/chat/completions",
            json={"model": "qwen-plus@window", "messages": messages, "max_tokens": 2, "stream": True},
            headers={"X-Multiturn-Budget": "250"},
        ) as response:
            body = await response.text()
            assert response.status == 200, body
            assert json.loads(response.headers["x-multiturn-context"])["tokens"] <= 250
            assert '"model":"qwen-plus"' in body and body.rstrip().endswith("data: [DONE]")
        async with session.post(
            f"{gateway[0]}/api/v1/services/aigc/text-generation/generation",
            json={"model": "qwen-plus", "input": {"messages": messages}, "parameters": {"max_tokens": 2}},
            headers={"X-Multiturn-Policy": "retrieval", "X-Multiturn-Budget": "400"},
        ) as response:
            payload = await response.json()
            assert response.status == 200, payload
            report = json.loads(response.headers["x-multiturn-context"])
            assert report["policy"] == "retrieval" and report["tokens"] <= 400
            assert payload["usage"]["input_tokens"] <= 400


async def test_bad_opt_ins_are_clear_errors_in_the_protocols_shape(gateway: tuple[str, Path]) -> None:
    async with aiohttp.ClientSession() as session:
        cases = [
            ({"X-Multiturn-Policy": "everything"}, "unknown context policy"),
            ({"X-Multiturn-Budget": "-5"}, "positive number of tokens"),
            ({"X-Multiturn-Budget": "3"}, "Range of input length"),
        ]
        for headers, expected in cases:
            async with session.post(
                f"{gateway[0]}/v1/chat/completions",
                json={"model": "qwen-plus", "messages": [{"role": "user", "content": "Hello there"}], "max_tokens": 2},
                headers=headers,
            ) as response:
                error = (await response.json())["error"]
                assert response.status == 400, error
                assert expected in error["message"], error
