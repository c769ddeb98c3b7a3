"""The gateway in front of the embedded model: a real `multiturn serve` process, real HTTP."""

from __future__ import annotations

import asyncio
import os
import re
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
    assert health == {"status": "ok"}
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
    assert not (gateway[1] / "gateway.db").exists()  # no database was even created
    await client.close()
