"""Schemathesis against the running gateway: every operation of ``/openapi.json``, then stateful
scenarios that follow the document's links (create a conversation, then read, change, fork and
delete it and its items; create a response, then read it, list its input items, delete it).

Checks: no 5xx (``not_a_server_error``), every answer as the document declares it
(``response_schema_conformance``) and only with the statuses it declares
(``status_code_conformance``: the document has no ``default`` responses). Any finding fails the
test, with a curl reproduction in its report.

Bounded and reproducible: a fixed number of examples per operation and of stateful scenarios,
derandomized (Hypothesis derives its seed from the test), no example database.
"""

from __future__ import annotations

import json
import urllib.request
import zlib
from collections import Counter
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis import Case
from schemathesis.checks import not_a_server_error, response_schema_conformance, status_code_conformance
from schemathesis.config import SchemathesisConfig
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi import stateful as stateful_links

from multiturn.server.openapi import openapi_schema
from support.serve import Server

from .conftest import KEY, MODEL

SEED = 17
"""Schemathesis' seed: each operation's Hypothesis seed is derived from it and the operation."""
EXAMPLES_PER_OPERATION = 60
SCENARIOS = 200
STEPS_PER_SCENARIO = 10
CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance]
AUTH = {"Authorization": f"Bearer {KEY}"}
BOUNDED = settings(
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)

# The document the gateway serves at /openapi.json (``test_served_document`` checks they are equal),
# loaded at collection: schemathesis' lazy ``from_fixture`` does not run under pytest 9.
schema = schemathesis.openapi.from_dict(openapi_schema(), config=SchemathesisConfig(seed=SEED))


def realistic(case: Case) -> None:
    """Bring a generated valid body closer to what the server answers with a model, so that
    positive cases reach generation and storage rather than stopping at a 404 or a 400 the JSON
    schema cannot express: seven bodies in eight name the served model, and a message history
    ends with a user message (DashScope: ``input`` has a prompt when it has no messages). The
    choice is made from the generated model name alone, never from a value a link put in the body
    (a stored id differs from run to run): a scenario must send the same requests and get the same
    statuses on every run, or Hypothesis stops it as flaky. Negative cases are left as generated."""
    body = case.body
    if not isinstance(body, dict) or case.meta is None or case.meta.generation.mode is GenerationMode.NEGATIVE:
        return
    if _serve_model(body):
        body["model"] = MODEL
    for field in ("messages", "input"):
        history = body.get(field)
        if isinstance(history, list) and (not history or not _said_by_user(history[-1])):
            history.append({"role": "user", "content": "What did I say?"})
    native = body.get("input")
    if isinstance(native, dict) and native.get("prompt") is None and native.get("messages") is None:
        native["prompt"] = "What did I say?"


def _serve_model(body: dict[str, Any]) -> bool:
    """Whether ``realistic`` names the served model in this body: seven in eight generated names."""
    return isinstance(body.get("model"), str) and zlib.crc32(body["model"].encode()) % 8 != 0


def test_served_model_chosen_from_generated_values_only() -> None:
    """The same generated body with different linked ids gets the same choice (else the stateful
    scenarios differ from run to run), and the choice goes both ways."""
    names = [f"model-{n}" for n in range(64)]
    for name in names:
        chosen = {_serve_model({"model": name, "conversation": linked}) for linked in ("conv_a", "conv_b")}
        assert len(chosen) == 1, name
    assert {_serve_model({"model": name}) for name in names} == {True, False}


def _said_by_user(message: Any) -> bool:
    return isinstance(message, dict) and message.get("role") == "user"


@schema.parametrize()
@settings(BOUNDED, max_examples=EXAMPLES_PER_OPERATION)
def test_operation(case: Case, fuzz_gateway: Server, cases_run: Counter[tuple[str, str]]) -> None:
    realistic(case)
    response = case.call(base_url=fuzz_gateway.base, headers=AUTH)
    cases_run[case.operation.label, f"{response.status_code // 100}xx"] += 1
    validate(case, response)


def validate(case: Case, response: Any, **kwargs: Any) -> None:
    """Run ``CHECKS``. A 5xx's traceback is in the gateway's log, ``<basetemp>/fuzz-serve0/stderr.log``,
    under the request id the failure report shows."""
    case.validate_response(response, checks=CHECKS, transport_kwargs=kwargs or None)


def test_stateful(fuzz_gateway: Server, cases_run: Counter[tuple[str, str]], monkeypatch: pytest.MonkeyPatch) -> None:
    # Schemathesis 4.32 decides whether a step uses a link's value with a truly random coin
    # (``st.randoms(use_true_random=True)``): draw it from Hypothesis instead, so that the
    # scenarios are the same on every run.
    randoms = st.randoms
    monkeypatch.setattr(stateful_links.st, "randoms", lambda **_: randoms(use_true_random=False))

    class Scenarios(schema.as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case: Case) -> dict[str, Any]:
            realistic(case)
            return {"base_url": fuzz_gateway.base, "headers": AUTH}

        def validate_response(self, response: Any, case: Case, additional_checks: Any = None, **kwargs: Any) -> None:
            cases_run[f"{case.operation.label} (stateful)", f"{response.status_code // 100}xx"] += 1
            validate(case, response, **kwargs)

    Scenarios.run(settings=settings(BOUNDED, max_examples=SCENARIOS, stateful_step_count=STEPS_PER_SCENARIO))


def test_served_document(fuzz_gateway: Server) -> None:
    """The gateway serves the document fuzzed here."""
    with urllib.request.urlopen(f"{fuzz_gateway.base}/openapi.json", timeout=10) as reply:
        assert json.loads(reply.read()) == json.loads(json.dumps(openapi_schema()))


def test_every_operation_was_fuzzed(cases_run: Counter[tuple[str, str]]) -> None:
    """Runs after the tests above (file order): the bound this suite promises was reached."""
    fuzzed = {label for label, _ in cases_run if not label.endswith("(stateful)")}
    if not fuzzed:
        pytest.skip("test_operation did not run in this session")
    operations = {f"{m.upper()} {p}" for p, item in openapi_schema()["paths"].items() for m in item}
    assert fuzzed == operations
    assert sum(cases_run.values()) >= 2000
