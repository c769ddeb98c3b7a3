"""Tenant isolation of the stateful API: a real ``multiturn serve`` with two stored keys of two
tenants. Every endpoint that takes a response, conversation or item id answers another
tenant's id with 404 in the OpenAI error shape (never 403: no existence leak), and changes
nothing; the owner still sees everything afterwards."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import openai
import pytest
from openai import OpenAI

from compat.calls import close_clients, openai_client
from support.serve import Server, start_serve, tenant_keys

pytestmark = pytest.mark.model
MODEL = "qwen-plus"


@pytest.fixture(scope="module")
def tenants(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str, str]]:
    home = tmp_path_factory.mktemp("tenants")
    alice, bob = asyncio.run(tenant_keys(home / "gateway.db"))
    server = start_serve("tenants", home)
    try:
        yield server, alice, bob
    finally:
        server.stop()
        close_clients()


def test_another_tenants_ids_are_not_found_anywhere(tenants: tuple[Server, str, str]) -> None:
    server, alice_key, bob_key = tenants
    alice = openai_client(server.compat, alice_key, max_retries=0)
    bob = openai_client(server.compat, bob_key, max_retries=0)
    anonymous = openai_client(server.compat, "sk-wrong", max_retries=0)

    conversation = alice.conversations.create(
        items=[{"role": "user", "content": "The secret is 7."}], metadata={"owner": "alice"}
    )
    response = alice.responses.create(
        model=MODEL, input="Reply with OK.", conversation=conversation.id, max_output_tokens=4, temperature=0
    )
    item = alice.conversations.items.list(conversation.id).data[0].id
    cid, rid = conversation.id, response.id

    attempts: list[tuple[str, Callable[[OpenAI], Any]]] = [
        ("responses.retrieve", lambda c: c.responses.retrieve(rid)),
        ("responses.delete", lambda c: c.responses.delete(rid)),
        ("responses.input_items", lambda c: c.responses.input_items.list(rid)),
        (
            "responses.create previous_response_id",
            lambda c: c.responses.create(model=MODEL, input="hi", previous_response_id=rid, max_output_tokens=4),
        ),
        (
            "responses.create conversation",
            lambda c: c.responses.create(model=MODEL, input="hi", conversation=cid, max_output_tokens=4),
        ),
        (
            "responses.create store=false",
            lambda c: c.responses.create(
                model=MODEL, input="hi", previous_response_id=rid, store=False, max_output_tokens=4
            ),
        ),
        ("conversations.retrieve", lambda c: c.conversations.retrieve(cid)),
        ("conversations.update", lambda c: c.conversations.update(cid, metadata={"owner": "bob"})),
        ("conversations.delete", lambda c: c.conversations.delete(cid)),
        ("conversations.fork", lambda c: c.post(f"/conversations/{cid}/fork", body={}, cast_to=object)),
        ("items.list", lambda c: c.conversations.items.list(cid)),
        ("items.create", lambda c: c.conversations.items.create(cid, items=[{"role": "user", "content": "x"}])),
        ("items.retrieve", lambda c: c.conversations.items.retrieve(item, conversation_id=cid)),
        ("items.delete", lambda c: c.conversations.items.delete(item, conversation_id=cid)),
        (
            "chat.completions conversation",
            lambda c: c.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "hi"}], extra_body={"conversation": cid}
            ),
        ),
    ]
    for name, call in attempts:
        with pytest.raises(openai.NotFoundError) as raised:
            call(bob)
        body = raised.value.body
        assert isinstance(body, dict) and body.get("code") == "not_found", (name, body)
        with pytest.raises(openai.AuthenticationError):
            call(anonymous)

    # Bob's own listing does not show Alice's conversation; Bob's own objects work.
    assert cid not in [c["id"] for c in bob.get("/conversations", cast_to=object)["data"]]
    assert cid in [c["id"] for c in alice.get("/conversations", cast_to=object)["data"]]
    assert bob.conversations.create().id != cid

    # Nothing Bob tried changed Alice's objects.
    assert alice.conversations.retrieve(cid).metadata == {"owner": "alice"}
    assert alice.responses.retrieve(rid).status == "completed"
    assert [i.role for i in alice.conversations.items.list(cid, order="asc")] == ["user", "user", "assistant"]
