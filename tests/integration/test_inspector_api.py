"""The inspector's endpoints on a real ``multiturn serve`` whose model is an alias of the fake
upstream (a 700-token window, so a short conversation overflows it), with two stored keys of two
tenants: the same authentication as the API (no key: 401; another tenant's ids: 404, and its
conversations never listed or found), the search, switching branches, undo, a retry streamed as
Responses events, an answer's fates as its stored report says them, and the what-if re-plan."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from multiturn.types import parse_spans
from support.fake_upstream import FakeUpstream
from support.serve import Server, start_serve, tenant_keys

MODEL = "qwen-plus"
FATES = ("kept", "recalled", "summarized", "dropped")


@dataclass(frozen=True)
class Client:
    base: str
    key: str | None

    def raw(self, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        headers = {"Content-Type": "application/json"}
        if self.key:
            headers["Authorization"] = f"Bearer {self.key}"
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def call(self, method: str, path: str, body: Any = None) -> Any:
        status, raw = self.raw(method, path, body)
        assert status == 200, (method, path, status, raw[:500])
        return json.loads(raw)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Client, Client]]:
    home = tmp_path_factory.mktemp("inspector-api")
    alice, bob = asyncio.run(tenant_keys(home / "gateway.db"))
    with FakeUpstream() as fake:
        alias = {"backend": "upstream", "base_url": fake.base_url, "context_window": 700, "max_output_tokens": 64}
        server = start_serve(
            "inspector-api", home, models={MODEL: alias}, env={"MULTITURN_MODEL": MODEL, "MULTITURN_EMBEDDER": "none"}
        )
        try:
            yield server, Client(server.base, alice), Client(server.base, bob)
        finally:
            server.stop()


ANIMALS = ["otter", "heron", "badger", "falcon", "lynx", "marten", "osprey", "stoat", "ibex", "egret", "bison", "gecko"]
PLACES = ["mill", "quarry", "orchard", "chapel", "bridge", "market", "harbour", "forge", "vineyard", "granary"]


def _history(rounds: int) -> list[dict[str, str]]:
    items = []
    for n in range(rounds):
        animal, place = ANIMALS[n % 12], PLACES[(n * 3) % 10]
        items.append({"role": "user", "content": f"Note {n}: a {animal} was seen near the old {place} in spring."})
        items.append({"role": "assistant", "content": f"Noted: the {animal} by the {place}."})
    return items


def _conversation(client: Client, items: list[dict[str, str]]) -> str:
    made = client.call("POST", "/v1/conversations", {"items": items[:20]})
    for start in range(20, len(items), 20):
        client.call("POST", f"/v1/conversations/{made['id']}/items", {"items": items[start : start + 20]})
    return str(made["id"])


def _turn(client: Client, conversation_id: str, text: str, policy: str) -> dict[str, Any]:
    body = {"model": MODEL, "conversation": conversation_id, "input": text, "context_policy": policy}
    return dict(client.call("POST", "/v1/responses", body))


def _events(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for block in raw.decode().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "data" in lines:
            out.append((lines.get("event", ""), json.loads(lines["data"])))
    return out


def test_another_tenant_sees_nothing_and_a_missing_key_nothing_at_all(
    gateway: tuple[Server, Client, Client],
) -> None:
    server, alice, bob = gateway
    cid = _conversation(alice, [{"role": "user", "content": "The albatross secret is 41."}])
    answer = _turn(alice, cid, "And the next secret?", "window")["output"][0]["id"]
    listed = alice.call("GET", "/v1/inspector/conversations?q=albatross")["data"]
    assert [c["id"] for c in listed] == [cid]

    assert bob.call("GET", "/v1/inspector/conversations?q=albatross")["data"] == []
    assert cid not in {c["id"] for c in bob.call("GET", "/v1/inspector/conversations")["data"]}
    prefix = f"/v1/inspector/conversations/{cid}"
    attempts: list[tuple[str, str, Any]] = [
        ("GET", prefix, None),
        ("POST", f"{prefix}/head", {"item_id": None}),
        ("POST", f"{prefix}/undo", {}),
        ("POST", f"{prefix}/retry", {"item_id": answer}),
        ("GET", f"{prefix}/items/{answer}/context", None),
        ("POST", f"{prefix}/items/{answer}/whatif", {"policy": "full"}),
    ]
    nobody = Client(server.base, None)
    for method, path, body in attempts:
        status, raw = bob.raw(method, path, body)
        assert status == 404, (method, path, status, raw)
        assert json.loads(raw)["error"]["message"]
        status, _ = nobody.raw(method, path, body)
        assert status == 401, (method, path, status)
    assert nobody.raw("GET", "/v1/inspector/conversations")[0] == 401

    # nothing changed for the owner
    tree = alice.call("GET", prefix)
    assert tree["head_item_id"] == answer and len(tree["items"]) == 3


def test_branches_undo_and_a_retry_streamed_as_responses_events(gateway: tuple[Server, Client, Client]) -> None:
    _, alice, _ = gateway
    cid = _conversation(alice, [])
    first = _turn(alice, cid, "Red or blue?", "window")
    answer = first["output"][0]["id"]
    prefix = f"/v1/inspector/conversations/{cid}"
    user = alice.call("GET", prefix)["items"][0]["id"]

    status, raw = alice.raw("POST", f"{prefix}/retry", {"item_id": answer, "max_output_tokens": 32})
    assert status == 200
    events = _events(raw)
    kinds = [kind for kind, _ in events]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    text = "".join(data["delta"] for kind, data in events if kind == "response.output_text.delta")
    assert text == "You said: Red or blue?"
    retried = events[-1][1]["response"]["output"][0]["id"]

    tree = alice.call("GET", prefix)
    answers = [item for item in tree["items"] if item["parent_id"] == user]
    assert [item["id"] for item in answers] == [answer, retried] and tree["head_item_id"] == retried
    assert all(item["usage"]["prompt_tokens"] > 0 and item["policy"] == "window" for item in answers)

    # switch back to the first answer; then undo the whole turn; then an unknown item is a 404
    assert alice.call("POST", f"{prefix}/head", {"item_id": answer})["head_item_id"] == answer
    assert alice.call("POST", f"{prefix}/undo", {})["head_item_id"] is None
    status, _ = alice.raw("POST", f"{prefix}/head", {"item_id": "item_nope"})
    assert status == 404
    status, raw = alice.raw("POST", f"{prefix}/undo", {})
    assert status == 400 and b"nothing to undo" in raw
    status, raw = alice.raw("POST", f"{prefix}/head", {"item": answer})
    assert status == 400 and b"item" in raw  # an unknown field is refused, not ignored


def test_context_fates_are_the_stored_reports_and_what_if_replans(gateway: tuple[Server, Client, Client]) -> None:
    _, alice, _ = gateway
    cid = _conversation(alice, _history(16))
    _turn(alice, cid, "Where was the heron?", "window")
    second = _turn(alice, cid, "Where was the ibex seen?", "auto")
    answer = second["output"][0]["id"]
    report = second["context_report"]
    path = alice.call("GET", f"/v1/responses/{second['id']}/input_items?order=asc&limit=100")["data"]
    spans = {fate: parse_spans(report[fate]) for fate in FATES}
    expected = [next(f for f in FATES if any(a <= n <= b for a, b in spans[f])) for n in range(len(path))]

    context = alice.call("GET", f"/v1/inspector/conversations/{cid}/items/{answer}/context")
    shown = [(i["id"], i["fate"]) for i in context["items"]]
    assert shown == [(item["id"], fate) for item, fate in zip(path, expected, strict=True)]
    assert set(expected) == set(FATES), report
    assert context["tokens_by_part"] == report["tokens_by_part"] and context["tokens"] == report["tokens"]
    assert context["counts"] == {fate: expected.count(fate) for fate in FATES}
    assert context["summary"] and context["summary"]["text"]
    recalled = [i for i in context["items"] if i["fate"] == "recalled"]
    assert all(i["score"] > 0 and i["why"] for i in recalled)
    assert any("ibex" in i["why"] for i in recalled)
    diff = context["diff"]
    assert diff["cause"] != "none" and diff["policy_change"] == ["window", "auto"]
    assert diff["common_tokens"] < diff["previous_tokens"]

    planned = alice.call(
        "POST", f"/v1/inspector/conversations/{cid}/items/{answer}/whatif", {"policy": "window", "budget": 150}
    )
    assert planned["policy"] == "window" and planned["tokens"] <= 150
    assert {i["fate"] for i in planned["items"]} <= {"kept", "dropped"}
    assert [i["stored_fate"] for i in planned["items"]] == expected
    assert planned["stored_tokens"] == report["tokens"]
    status, raw = alice.raw("POST", f"/v1/inspector/conversations/{cid}/items/{answer}/whatif", {"policy": "best"})
    assert status == 400 and b"best" in raw
    status, raw = alice.raw("GET", f"/v1/inspector/conversations/{cid}/items/{path[-1]['id']}/context")
    assert status == 400 and b"only answers" in raw


def test_a_turns_own_instructions_are_its_system_prompt_in_the_diff_and_the_what_if(
    gateway: tuple[Server, Client, Client],
) -> None:
    _, alice, _ = gateway
    cid = _conversation(alice, [])
    _turn(alice, cid, "Red or blue?", "window")
    body = {
        "model": MODEL,
        "conversation": cid,
        "input": "Green or yellow?",
        "context_policy": "window",
        "instructions": "Answer with one colour only.",
    }
    second = alice.call("POST", "/v1/responses", body)
    answer = second["output"][0]["id"]

    context = alice.call("GET", f"/v1/inspector/conversations/{cid}/items/{answer}/context")
    diff = context["diff"]
    assert diff["cause"] == "system_edit", diff
    assert "one colour only" in diff["current_excerpt"] and diff["common_tokens"] <= 4, diff

    same = alice.call("POST", f"/v1/inspector/conversations/{cid}/items/{answer}/whatif", {"policy": "window"})
    assert same["tokens"] == second["context_report"]["tokens"], same  # planned with the instructions, as it was
