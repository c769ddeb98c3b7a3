"""How a turn meets the other writers of its conversation: a response continued before its
answer is stored waits for it (no 400, no branch), two responses on one previous response run at
once as branches, and a conversation or item deleted while a turn runs ends that turn without
storing its answer (no foreign-key failure, no open turn left)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from .conftest import HANG, INSTANT, LATE, Gateways, query


async def _open_turns(database: str, count: int, within: float = 10.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + within
    while True:
        rows = query(database, "SELECT id, status FROM turns")
        if len(rows) == count:
            return rows
        assert time.monotonic() < deadline, rows
        await asyncio.sleep(0.02)


async def test_continuing_a_response_still_in_progress_waits_for_its_answer(gateways: Gateways) -> None:
    server = gateways.start()
    async with httpx.AsyncClient(base_url=f"{server.base}/v1", timeout=60) as http:
        first = (await http.post("/responses", json={"model": INSTANT, "input": "one"})).json()
        slow = asyncio.create_task(
            http.post("/responses", json={"model": LATE, "input": "two", "previous_response_id": first["id"]})
        )
        # The slow turn's Responses object exists as soon as it starts: find its id.
        await _open_turns(gateways.database, 1)
        [row] = query(gateways.database, "SELECT id FROM responses WHERE status = 'in_progress'")
        third = asyncio.create_task(
            http.post("/responses", json={"model": INSTANT, "input": "three", "previous_response_id": row["id"]})
        )
        await _open_turns(gateways.database, 2)  # queued behind the turn it continues
        second = (await slow).json()
        done = (await third).json()
        assert second["status"] == "completed" and done["status"] == "completed", done
        items = (await http.get(f"/responses/{done['id']}/input_items", params={"order": "asc"})).json()["data"]
        assert [i["content"][0]["text"] for i in items if i["role"] == "user"] == ["one", "two", "three"]


async def test_two_responses_on_one_previous_response_run_at_once_as_branches(gateways: Gateways) -> None:
    server = gateways.start()
    async with httpx.AsyncClient(base_url=f"{server.base}/v1", timeout=60) as http:
        first = (await http.post("/responses", json={"model": INSTANT, "input": "root"})).json()
        branches = [
            asyncio.create_task(
                http.post(
                    "/responses", json={"model": LATE, "input": f"branch {n}", "previous_response_id": first["id"]}
                )
            )
            for n in (1, 2)
        ]
        rows = await _open_turns(gateways.database, 2)
        assert {row["status"] for row in rows} == {"generating"}  # neither waits for the other
        results = [(await branch).json() for branch in branches]
        assert all(result["status"] == "completed" for result in results)
        for n, result in enumerate(results, start=1):
            items = (await http.get(f"/responses/{result['id']}/input_items", params={"order": "asc"})).json()["data"]
            assert [i["content"][0]["text"] for i in items if i["role"] == "user"] == ["root", f"branch {n}"]


async def test_deleting_the_conversation_under_a_running_turn_ends_it_unstored(gateways: Gateways) -> None:
    server = gateways.start()
    async with httpx.AsyncClient(base_url=f"{server.base}/v1", timeout=60) as http:
        for stream in (False, True):
            conversation = (await http.post("/conversations", json={})).json()["id"]
            body = {"model": LATE, "input": "a long answer, please", "conversation": conversation, "stream": stream}
            running = asyncio.create_task(http.post("/responses", json=body))
            await _open_turns(gateways.database, 1)
            assert (await http.delete(f"/conversations/{conversation}")).json()["deleted"] is True
            answer = await running
            if stream:  # the stream had begun: it ends with the protocol's error event
                assert answer.status_code == 200 and "event: error" in answer.text and "deleted" in answer.text
            else:
                assert answer.status_code == 404 and "deleted" in answer.json()["error"]["message"]
            assert query(gateways.database, "SELECT id FROM turns") == []
            assert query(gateways.database, f"SELECT id FROM items WHERE conversation_id = '{conversation}'") == []


async def test_deleting_the_item_a_turn_answers_ends_it_unstored(gateways: Gateways) -> None:
    server = gateways.start()
    async with httpx.AsyncClient(base_url=f"{server.base}/v1", timeout=60) as http:
        conversation = (await http.post("/conversations", json={"items": [{"role": "user", "content": "hi"}]})).json()
        [item] = (await http.get(f"/conversations/{conversation['id']}/items")).json()["data"]
        previous = (
            await http.post("/responses", json={"model": INSTANT, "input": "go", "conversation": conversation["id"]})
        ).json()
        running = asyncio.create_task(
            http.post("/responses", json={"model": HANG, "input": "and then?", "previous_response_id": previous["id"]})
        )
        await _open_turns(gateways.database, 1)
        await http.delete(f"/conversations/{conversation['id']}/items/{item['id']}")  # the whole subtree
        await _open_turns(gateways.database, 1)  # still generating: the upstream has not answered
        running.cancel()
        await _open_turns(gateways.database, 0)
        left = query(gateways.database, f"SELECT id FROM items WHERE conversation_id = '{conversation['id']}'")
        assert left == []  # its parent was gone: nothing was written under it


@pytest.mark.parametrize("database", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
async def test_turns_go_on_when_the_database_drops_the_gateways_connections(gateways: Gateways) -> None:
    """PostgreSQL restarted, or a proxy cut idle connections: the next transactions find their
    pooled connection dead before they could commit, and run again on a fresh one."""
    [before] = query(gateways.database, "SELECT now()::text AS t")
    server = gateways.start()
    async with httpx.AsyncClient(base_url=f"{server.base}/v1", timeout=60) as http:
        previous = (await http.post("/responses", json={"model": INSTANT, "input": "one"})).json()
        cut = query(  # the gateway's pooled connections (not its liveness one, not the test's)
            gateways.database,
            "SELECT pg_terminate_backend(pid) AS cut FROM pg_stat_activity WHERE datname = current_database() "
            f"AND pid <> pg_backend_pid() AND state = 'idle' AND query NOT LIKE 'LISTEN%' "
            f"AND backend_start > '{before['t']}'",
        )
        assert cut, "no pooled connection to cut"
        for text in ("two", "three"):
            answer = await http.post(
                "/responses", json={"model": INSTANT, "input": text, "previous_response_id": previous["id"]}
            )
            assert answer.status_code == 200, answer.text
            previous = answer.json()
        assert previous["status"] == "completed"
