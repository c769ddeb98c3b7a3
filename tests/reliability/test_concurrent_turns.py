"""Concurrent turns on one conversation queue on its head, in arrival order: 64 writers x 5
turns through ``POST /v1/responses`` with ``conversation`` build one chain of 640 items, on
SQLite and PostgreSQL, in one gateway process and (PostgreSQL) across two. Every answer follows
its own question, every writer's turns keep their order, and nothing is left open."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from openai import AsyncOpenAI

from support.serve import Server

from .conftest import INSTANT, Gateways

WRITERS, TURNS = 64, 5


async def _items(client: httpx.AsyncClient, server: Server, conversation_id: str) -> list[dict[str, Any]]:
    """Every item of the conversation's current branch, oldest first (paged)."""
    found: list[dict[str, Any]] = []
    after: str | None = None
    while True:
        params: dict[str, Any] = {"order": "asc", "limit": 100, **({"after": after} if after else {})}
        page = (await client.get(f"{server.base}/v1/conversations/{conversation_id}/items", params=params)).json()
        found += page["data"]
        if not page["has_more"]:
            return found
        after = page["data"][-1]["id"]


def _text(item: dict[str, Any]) -> str:
    return "".join(part.get("text", "") for part in item["content"])


async def _write_concurrently(servers: list[Server]) -> tuple[str, list[dict[str, Any]]]:
    clients = [AsyncOpenAI(base_url=f"{s.base}/v1", api_key=s.api_key, max_retries=0, timeout=120) for s in servers]
    try:
        conversation = await clients[0].conversations.create()
        start = asyncio.Event()

        async def writer(n: int) -> None:
            client = clients[n % len(clients)]
            await start.wait()
            for t in range(TURNS):
                response = await client.responses.create(model=INSTANT, input=f"w{n}t{t}", conversation=conversation.id)
                assert response.status == "completed", response
                assert response.output_text == f"You said: w{n}t{t}"

        tasks = [asyncio.create_task(writer(n)) for n in range(WRITERS)]
        await asyncio.sleep(0)
        start.set()
        await asyncio.gather(*tasks)
    finally:
        for client in clients:
            await client.close()
    async with httpx.AsyncClient(timeout=30) as http:
        return conversation.id, await _items(http, servers[0], conversation.id)


def _check_one_chain(items: list[dict[str, Any]]) -> None:
    assert len(items) == 2 * WRITERS * TURNS, f"{len(items)} items on the head path, not {2 * WRITERS * TURNS}"
    questions = [_text(i) for i in items[0::2]]
    assert [i["role"] for i in items] == ["user", "assistant"] * (WRITERS * TURNS)
    # Each answer follows its own question: no turn saw another's answer in its place.
    assert [_text(i) for i in items[1::2]] == [f"You said: {q}" for q in questions]
    assert sorted(questions) == sorted(f"w{n}t{t}" for n in range(WRITERS) for t in range(TURNS))
    for n in range(WRITERS):  # arrival order: a writer's turns in the order it sent them
        mine = [q for q in questions if q.startswith(f"w{n}t")]
        assert mine == [f"w{n}t{t}" for t in range(TURNS)], mine
    assert all(i["status"] == "completed" for i in items)


async def test_64_writers_x_5_turns_on_one_conversation_build_one_chain(gateways: Gateways) -> None:
    server = gateways.start()
    _, items = await _write_concurrently([server])
    _check_one_chain(items)
    stats = (await _health(server))["turns"]
    assert stats["started"] >= WRITERS * TURNS
    assert stats["queued"] > 0, "the writers never overlapped: the test did not test the queue"


@pytest.mark.parametrize("database", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
async def test_two_gateways_on_postgres_queue_turns_on_one_conversation(gateways: Gateways) -> None:
    servers = [gateways.start("first"), gateways.start("second")]
    _, items = await _write_concurrently(servers)
    _check_one_chain(items)
    queued = [(await _health(s))["turns"]["queued"] for s in servers]
    assert all(q > 0 for q in queued), queued


async def _health(server: Server) -> dict[str, Any]:
    async with httpx.AsyncClient() as http:
        body: dict[str, Any] = (await http.get(f"{server.base}/healthz")).json()
        return body
