"""The guide's Node.js examples, with the ``openai`` npm package (pinned in node/package-lock.json),
against the gateway: ``node script.mjs`` with the base URL and scripted input from the
environment. ``npm ci`` installs the package when node_modules is missing.

The thinking and multimodal scripts also run straight against the fake upstream: the gateway's
run must print exactly what the direct run prints.
"""

from __future__ import annotations

import json

import pytest

from support.fake_upstream import FakeUpstream
from support.serve import GATEWAY_KEY, Server

from .node_runner import NODE_DIR, run_node


def test_openai_npm_package_is_the_pinned_one(node: str) -> None:
    lock = json.loads((NODE_DIR / "package-lock.json").read_text())
    installed = json.loads((NODE_DIR / "node_modules" / "openai" / "package.json").read_text())
    assert lock["packages"]["node_modules/openai"]["version"] == installed["version"] == "6.49.0"


@pytest.mark.model
def test_node_phone_store_on_embedded_model(node: str, embedded: Server) -> None:
    out = run_node(node, "phone_store.mjs", embedded.compat, embedded.api_key, ["6.5-inch", "4K"])

    assert out.startswith("Welcome to the Bailian phone store. What screen size are you looking for?\n")
    assert "Please enter: 6.5-inch" in out
    messages = json.loads(out.rsplit("MESSAGES ", 1)[1])
    assert messages[0]["role"] == "system"
    turns = messages[1:]
    assert [m["role"] for m in turns] == ["user", "assistant"] * (len(turns) // 2) and turns
    assert [m["content"] for m in turns[::2]] == ["6.5-inch", "4K"][: len(turns) // 2]
    assert all(isinstance(m["content"], str) and m["content"].strip() for m in turns[1::2])
    if len(turns) < 4:  # only the guide's own end condition may stop the loop early
        assert "I have understood your purchase intention" in turns[-1]["content"]


def test_node_thinking_stream_through_gateway_equals_direct(node: str, gateway: Server, fake: FakeUpstream) -> None:
    inputs = ["Hello", "Who are you?"]
    direct = run_node(node, "thinking.mjs", fake.base_url, "sk-direct", inputs)
    via_gateway = run_node(node, "thinking.mjs", gateway.compat, GATEWAY_KEY, inputs)

    assert via_gateway == direct
    rounds = [json.loads(line[len("ROUND ") :]) for line in via_gateway.splitlines() if line.startswith("ROUND ")]
    assert rounds == [
        ["The user said: Hello. I will answer.", "You said: Hello"],
        ["The user said: Who are you?. I will answer.", "You said: Who are you?"],
    ]
    assert via_gateway.count("=" * 20 + "Thinking Process" + "=" * 20) == 2
    assert via_gateway.count("=" * 20 + "Complete Response" + "=" * 20) == 2
    assert "Usage:" not in via_gateway  # include_usage is commented out in the guide: no usage chunk


def test_node_multimodal_through_gateway_equals_direct(node: str, gateway: Server, fake: FakeUpstream) -> None:
    direct = run_node(node, "multimodal.mjs", fake.base_url, "sk-direct")
    via_gateway = run_node(node, "multimodal.mjs", gateway.compat, GATEWAY_KEY)

    assert (
        via_gateway
        == direct
        == (
            "First round output: I see 1 image. You said: What products are shown in the image?\n"
            "Second round output: You said: Write a poem describing this scene\n"
        )
    )
