"""A process killed mid-turn leaves no turn open: SIGKILL during 16 streamed stored turns, restart,
and every response is terminal (``incomplete``, holding the part of its answer saved before the
kill, which the client had seen) and every chain continues from its last id; three rounds, on
SQLite and PostgreSQL. Then (PostgreSQL, and SQLite between two processes on one machine) a turn
queued in one gateway behind a turn of another gateway that is killed goes on at once, without
a restart."""

from __future__ import annotations

import asyncio
import signal
import time
from typing import Any

import httpx
import orjson

from .conftest import INSTANT, SLOW, Gateways, query

CHAINS, ROUNDS = 16, 3


async def _stream_until_killed(
    http: httpx.AsyncClient, body: dict[str, Any], started: asyncio.Queue[str]
) -> tuple[str | None, str]:
    """Stream one turn until the gateway dies: the response id and the text received."""
    response_id: str | None = None
    text = ""
    try:
        async with http.stream("POST", "/responses", json=body) as response:
            assert response.status_code == 200, await response.aread()
            async for line in response.aiter_lines():
                if not line.startswith("data: "):
                    continue
                event = orjson.loads(line[6:])
                if event["type"] == "response.created":
                    response_id = event["response"]["id"]
                elif event["type"] == "response.output_text.delta":
                    if not text:
                        await started.put(response_id or "")
                    text += event["delta"]
    except (httpx.HTTPError, OSError):
        pass  # the gateway was killed under it
    return response_id, text


async def test_sigkill_during_16_streamed_turns_leaves_every_response_terminal_and_every_chain_alive(
    gateways: Gateways,
) -> None:
    last: list[str | None] = [None] * CHAINS
    server = gateways.start()
    for round_ in range(ROUNDS):
        started: asyncio.Queue[str] = asyncio.Queue()
        async with httpx.AsyncClient(base_url=f"{server.base}/v1", timeout=60) as http:
            streams = [
                asyncio.create_task(
                    _stream_until_killed(
                        http,
                        {
                            "model": SLOW,
                            "input": f"chain {c} round {round_} says alpha beta gamma delta epsilon zeta",
                            "stream": True,
                            **({"previous_response_id": last[c]} if last[c] else {}),
                        },
                        started,
                    )
                )
                for c in range(CHAINS)
            ]
            for _ in range(CHAINS):  # every stream has begun its answer
                await asyncio.wait_for(started.get(), 30)
            await asyncio.sleep(2.6)  # past the 2 s after which a long answer's draft is saved
            server.proc.send_signal(signal.SIGKILL)
            server.proc.wait(timeout=10)
            results = await asyncio.gather(*streams)
        assert all(response_id for response_id, _ in results)
        open_turns = query(gateways.database, "SELECT id, status FROM turns")
        assert len(open_turns) == CHAINS, open_turns  # the killed process left them open...

        server = gateways.start()  # ...and the next one to open the store closes them
        assert query(gateways.database, "SELECT id FROM turns") == []
        async with httpx.AsyncClient(base_url=f"{server.base}/v1", timeout=60) as http:
            for c, (response_id, seen) in enumerate(results):
                stored = (await http.get(f"/responses/{response_id}")).json()
                assert stored["status"] == "incomplete", stored
                assert stored["error"]["code"] == "server_error"
                kept = "".join(part["text"] for part in stored["output"][0]["content"])
                assert seen.startswith(kept)  # what was saved is what the client had seen
                last[c] = response_id
        kept_some = [
            row
            for row in query(gateways.database, "SELECT content FROM items WHERE status = 'incomplete'")
            if "You" in str(row["content"])
        ]
        assert kept_some, "no draft was saved: every killed answer came back empty"

    # Every chain goes on from its last (incomplete) response, with its whole history.
    async with httpx.AsyncClient(base_url=f"{server.base}/v1", timeout=60) as http:
        for c in range(CHAINS):
            done = (
                await http.post(
                    "/responses", json={"model": INSTANT, "input": "and now?", "previous_response_id": last[c]}
                )
            ).json()
            assert done["status"] == "completed", done
            items = (
                await http.get(f"/responses/{done['id']}/input_items", params={"order": "asc", "limit": 100})
            ).json()["data"]
            users = [item["content"][0]["text"] for item in items if item["role"] == "user"]
            assert users == [f"chain {c} round {r} says alpha beta gamma delta epsilon zeta" for r in range(ROUNDS)] + [
                "and now?"
            ]
            assert [item["status"] for item in items if item["role"] == "assistant"] == ["incomplete"] * ROUNDS


async def test_a_turn_queued_behind_a_killed_gateways_turn_goes_on(gateways: Gateways) -> None:
    first, second = gateways.start("first"), gateways.start("second")
    async with (
        httpx.AsyncClient(base_url=f"{first.base}/v1", timeout=60) as one,
        httpx.AsyncClient(base_url=f"{second.base}/v1", timeout=60) as two,
    ):
        conversation = (await one.post("/conversations", json={})).json()["id"]
        started: asyncio.Queue[str] = asyncio.Queue()
        body = {"model": SLOW, "input": "a long one", "stream": True, "conversation": conversation}
        slow = asyncio.create_task(_stream_until_killed(one, body, started))
        await asyncio.wait_for(started.get(), 30)
        queued = asyncio.create_task(
            two.post("/responses", json={"model": INSTANT, "input": "after it", "conversation": conversation})
        )
        deadline = time.monotonic() + 10
        while len(query(gateways.database, "SELECT id FROM turns")) < 2:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait(timeout=10)
        killed = time.monotonic()
        answer = (await asyncio.wait_for(queued, 30)).json()
        waited = time.monotonic() - killed
        await slow
        assert answer["status"] == "completed" and answer["output"][0]["content"][0]["text"] == "You said: after it"
        assert waited < 5, waited  # found dead on its next check, not after a lease expired
        items = (await two.get(f"/conversations/{conversation}/items", params={"order": "asc"})).json()["data"]
        assert [(i["role"], i["status"]) for i in items] == [
            ("user", "completed"),
            ("assistant", "incomplete"),
            ("user", "completed"),
            ("assistant", "completed"),
        ]
