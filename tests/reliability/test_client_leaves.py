"""A client that leaves ends its work at once: the upstream call is dropped within a second and a
stored turn ends in a terminal state (its input kept, its answer ``incomplete`` with finish
``cancelled``, its Responses object ``cancelled``), whether the request was streamed or not, and
whether the turn was generating or still queued. The fake upstream never answers (``hang``) and
records when the gateway let go of each request."""

from __future__ import annotations

import asyncio
import time

import httpx
import orjson

from support.fake_upstream import FakeUpstream
from support.serve import Server

from .conftest import HANG, INSTANT, Gateways, query

LEAVE_WITHIN = 1.0


async def _send_and_leave(server: Server, fake: FakeUpstream, path: str, body: dict[str, object]) -> float:
    """Send a request, wait until the upstream has it, then close the connection; the time the
    client left, and the index of the upstream request."""
    mark = len(fake.requests)
    _reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    payload = orjson.dumps(body)
    head = f"POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
    writer.write(head.encode() + f"content-length: {len(payload)}\r\n\r\n".encode() + payload)
    await writer.drain()
    deadline = time.monotonic() + 10
    while len(fake.requests) == mark:
        assert time.monotonic() < deadline, "the upstream never received the request"
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.2)  # the upstream call is under way
    left = time.monotonic()
    writer.close()
    await writer.wait_closed()
    index = mark
    while index not in fake.left_at:
        assert time.monotonic() < left + 5, "the gateway never dropped the upstream call"
        await asyncio.sleep(0.01)
    assert fake.left_at[index] - left < LEAVE_WITHIN, fake.left_at[index] - left
    return left


async def _until(check: object, within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "not reached in time"
        await asyncio.sleep(0.02)


async def test_a_client_leaving_a_stateless_request_drops_the_upstream_call(
    gateways: Gateways, fake: FakeUpstream
) -> None:
    server = gateways.start()
    body = {"model": HANG, "messages": [{"role": "user", "content": "hello?"}]}
    await _send_and_leave(server, fake, "/v1/chat/completions", body)
    await _send_and_leave(server, fake, "/v1/chat/completions", {**body, "stream": True})
    native = {"model": HANG, "input": {"messages": [{"role": "user", "content": "hello?"}]}}
    await _send_and_leave(server, fake, "/api/v1/services/aigc/text-generation/generation", native)


async def test_a_client_leaving_a_stored_turn_ends_it_as_cancelled(gateways: Gateways, fake: FakeUpstream) -> None:
    server = gateways.start()
    async with httpx.AsyncClient(base_url=f"{server.base}/v1", timeout=30) as http:
        for stream in (False, True):
            conversation = (await http.post("/conversations", json={})).json()["id"]
            body = {"model": HANG, "input": f"wait for me ({stream})", "conversation": conversation, "stream": stream}
            await _send_and_leave(server, fake, "/v1/responses", body)

            def ended() -> bool:
                return not query(gateways.database, "SELECT id FROM turns")

            await _until(ended)
            items = (await http.get(f"/conversations/{conversation}/items", params={"order": "asc"})).json()["data"]
            assert [(i["role"], i["status"]) for i in items] == [("user", "completed"), ("assistant", "incomplete")]
            assert items[0]["content"][0]["text"] == f"wait for me ({stream})"
            [row] = query(gateways.database, f"SELECT status FROM responses WHERE conversation_id = '{conversation}'")
            assert row["status"] == "cancelled"
            # The conversation goes on from there.
            answer = await http.post(
                "/responses", json={"model": INSTANT, "input": "again", "conversation": conversation}
            )
            assert answer.json()["status"] == "completed"

        chat_conversation = (await http.post("/conversations", json={})).json()["id"]
        chat = {"model": HANG, "messages": [{"role": "user", "content": "stateful"}], "conversation": chat_conversation}
        await _send_and_leave(server, fake, "/v1/chat/completions", chat)
        await _until(lambda: not query(gateways.database, "SELECT id FROM turns"))
        items = (await http.get(f"/conversations/{chat_conversation}/items", params={"order": "asc"})).json()["data"]
        assert [i["status"] for i in items] == ["completed", "incomplete"]


async def test_a_queued_turn_whose_client_leaves_leaves_the_queue(gateways: Gateways, fake: FakeUpstream) -> None:
    server = gateways.start()
    async with httpx.AsyncClient(base_url=f"{server.base}/v1", timeout=30) as http:
        conversation = (await http.post("/conversations", json={})).json()["id"]
        ahead = asyncio.create_task(
            http.post("/responses", json={"model": HANG, "input": "first", "conversation": conversation})
        )
        await _until(lambda: len(query(gateways.database, "SELECT id FROM turns")) == 1)
        # A second turn queues behind it; its client gives up while it waits.
        _reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        payload = orjson.dumps({"model": INSTANT, "input": "second", "conversation": conversation})
        writer.write(
            b"POST /v1/responses HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            + f"content-length: {len(payload)}\r\n\r\n".encode()
            + payload
        )
        await writer.drain()
        await _until(lambda: len(query(gateways.database, "SELECT id FROM turns")) == 2)
        writer.close()
        await writer.wait_closed()
        await _until(lambda: len(query(gateways.database, "SELECT id FROM turns")) == 1)
        [row] = query(gateways.database, "SELECT status FROM turns")
        assert row["status"] == "generating"  # the one that left was the queued one
        ahead.cancel()  # now the first one leaves too
        await _until(lambda: not query(gateways.database, "SELECT id FROM turns"))
        items = (await http.get(f"/conversations/{conversation}/items", params={"order": "asc"})).json()["data"]
        assert [i["content"][0]["text"] for i in items if i["role"] == "user"] == ["first"]  # "second" never started
