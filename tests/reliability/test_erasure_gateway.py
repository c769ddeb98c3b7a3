"""Deleting through the gateway erases, on every route that deletes: ``DELETE /v1/responses/{id}``
(inside a chain and at its end), ``DELETE /v1/conversations/{id}`` and ``DELETE
/v1/conversations/{id}/items/{item_id}``. While the gateway still runs, no deleted word is in
any table of its store nor — SQLite — in the bytes of the database file or its WAL; what was
not deleted is still there, and the conversation goes on without the deleted words (the next
request the upstream receives does not hold them)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from support.fake_upstream import FakeUpstream
from support.scan import in_files, rows_naming

from .conftest import INSTANT, Gateways, connected

SECRET = "xylophonequirk"
KEPT = "keepsake"

Http = httpx.AsyncClient


def _rows(database: str, needle: str) -> list[Any]:
    with connected(database) as conn:
        return rows_naming(conn, {needle})


def _in_files(database: str, needle: str) -> list[str]:
    return [] if database.startswith("postgresql") else in_files(Path(database), needle)


async def _respond(http: Http, text: str, **more: Any) -> dict[str, Any]:
    response = await http.post("/responses", json={"model": INSTANT, "input": text, **more})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _chain(http: Http, words: list[str], **more: Any) -> list[dict[str, Any]]:
    made: list[dict[str, Any]] = []
    for word in words:
        previous = {"previous_response_id": made[-1]["id"]} if made and not more else {}
        made.append(await _respond(http, f"{word} question", **previous, **more))
    return made


async def _middle_response(http: Http) -> str | None:
    _first, doomed, last = await _chain(http, [KEPT, SECRET, KEPT])
    assert (await http.delete(f"/responses/{doomed['id']}")).json()["deleted"] is True
    items = (await http.get(f"/responses/{last['id']}/input_items")).json()["data"]
    assert SECRET not in str(items) and KEPT in str(items)
    return str(last["id"])


async def _last_response(http: Http) -> str | None:
    first, doomed = await _chain(http, [KEPT, SECRET])
    assert (await http.delete(f"/responses/{doomed['id']}")).json()["deleted"] is True
    assert (await http.get(f"/responses/{doomed['id']}")).status_code == 404
    return str(first["id"])


async def _conversation(http: Http) -> str | None:
    conv = (await http.post("/conversations", json={"items": [{"role": "user", "content": f"{SECRET} note"}]})).json()
    await _chain(http, [SECRET, SECRET], conversation=conv["id"])
    assert (await http.delete(f"/conversations/{conv['id']}")).json()["deleted"] is True
    await _respond(http, f"{KEPT} elsewhere")
    return None


async def _item(http: Http) -> str | None:
    conv = (await http.post("/conversations", json={"items": [{"role": "user", "content": f"{KEPT} note"}]})).json()
    await _chain(http, [KEPT, SECRET, SECRET], conversation=conv["id"])
    items = (await http.get(f"/conversations/{conv['id']}/items", params={"order": "asc"})).json()["data"]
    first_secret = next(item for item in items if SECRET in str(item["content"]))
    deleted = await http.delete(f"/conversations/{conv['id']}/items/{first_secret['id']}")
    assert deleted.status_code == 200, deleted.text
    left = (await http.get(f"/conversations/{conv['id']}/items")).json()["data"]
    assert SECRET not in str(left) and KEPT in str(left)
    going_on = await _respond(http, f"{KEPT} again", conversation=conv["id"])
    assert going_on["status"] == "completed"
    return None


ROUTES: dict[str, Callable[[Http], Awaitable[str | None]]] = {
    "DELETE /v1/responses/{id} inside a chain": _middle_response,
    "DELETE /v1/responses/{id} at a chain's end": _last_response,
    "DELETE /v1/conversations/{id}": _conversation,
    "DELETE /v1/conversations/{id}/items/{item_id}": _item,
}


@pytest.mark.parametrize("route", list(ROUTES))
async def test_a_deletion_leaves_no_word_behind(gateways: Gateways, fake: FakeUpstream, route: str) -> None:
    server = gateways.start()
    async with httpx.AsyncClient(base_url=f"{server.base}/v1", timeout=60) as http:
        goes_on = await ROUTES[route](http)
        assert _rows(gateways.database, SECRET) == []
        assert _in_files(gateways.database, SECRET) == []
        assert _rows(gateways.database, KEPT)  # what was not deleted is there, and seen
        if not gateways.database.startswith("postgresql"):
            assert _in_files(gateways.database, KEPT)
        if goes_on is not None:  # the chain continues without the deleted words
            seen = len(fake.requests)
            await _respond(http, f"{KEPT} next", previous_response_id=goes_on)
            [sent] = [r.body for r in fake.requests[seen:] if r.path.endswith("/chat/completions")]
            assert SECRET not in str(sent["messages"]) and KEPT in str(sent["messages"])
