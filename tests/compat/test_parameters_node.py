"""The parameter table (docs/parameters.md) with Node's official ``openai`` package against the
embedded model: what is honoured comes back (tool calls whole and streamed, a strict JSON schema),
what cannot be is a 400 naming the parameter, and a label passes."""

from __future__ import annotations

import json
from typing import Any

from support.serve import Server

from .node_runner import NODE_DIR, run_node


def test_openai_npm_package_is_the_pinned_one(node: str) -> None:
    lock = json.loads((NODE_DIR / "package-lock.json").read_text())
    installed = json.loads((NODE_DIR / "node_modules" / "openai" / "package.json").read_text())
    assert lock["packages"]["node_modules/openai"]["version"] == installed["version"] == "6.49.0"


def test_every_row_of_the_parameter_table_from_node(node: str, embedded: Server) -> None:
    out = run_node(node, "parameters.mjs", f"{embedded.base}/v1", embedded.api_key)
    answers: dict[str, dict[str, Any]] = {line["name"]: line for line in map(json.loads, out.splitlines())}

    for name in ("tools_required", "tools_named_stream"):
        answer = answers[name]
        assert answer["status"] == 200 and answer["finish"] == "tool_calls", answer
        [call] = answer["calls"]
        assert call["name"] == "get_weather" and "city" in json.loads(call["arguments"])

    person = answers["json_schema"]
    assert person["status"] == 200, person
    if person["finish"] == "stop":  # whole: it parses and has the schema's fields
        assert set(json.loads(person["content"])) == {"name", "age"}

    for name, param in (("n_2", "n"), ("logprobs", "logprobs"), ("enable_thinking", "enable_thinking")):
        assert answers[name]["status"] == 400 and answers[name]["param"] == param, answers[name]
    assert answers["unknown_field"]["status"] == 400 and answers["unknown_field"]["param"] == "enable_search"
    assert answers["labels"]["status"] == 200
