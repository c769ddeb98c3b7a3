"""The guide's 18 samples (guide.py reads them from the guide, by section, protocol and language),
each run against a running gateway, and the ones that need what the embedded model cannot do
shown refused offline.

- **text** samples run on the embedded model (``qwen-plus`` on the ``embedded`` server);
- **thinking** samples run through the ``gateway`` server, whose ``qwen-plus`` is the fake
  upstream: a thinking model that streams ``reasoning_content`` before the answer;
- **multimodal** samples run through the ``gateway`` too, whose ``qwen3-vl-plus`` is the fake
  as a vision model; each request it received is checked: the guide's image part arrived
  intact, URL and order, on both protocols and in both rounds.

OpenAI-SDK samples (Python, Node.js) that go upstream also run straight against the fake: the
gateway's run must print what the direct run prints. On the embedded model, every multimodal
and thinking sample gets the clear refusal: a 400 in its protocol's shape naming the model,
what serves it and (images) the ``[models.NAME]`` config that maps a vision upstream.

``test_the_guide_has_18_samples_and_each_is_run`` fails when the guide's samples and the runs
here part: a sample without a run, a run without a sample, or a count other than 18.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openai
import pytest

from support.fake_upstream import Recorded
from support.serve import GATEWAY_KEY, Server

from .guide import (
    EMBEDDED_MAX_TOKENS,
    IMAGE_URL,
    Edit,
    Sample,
    node_code,
    run_curl,
    run_python,
    samples,
    sse_data,
)
from .java_runner import HTTP_1_1_OK, JAVA_DIR, run_java, statuses
from .node_runner import guide_script, node_process, run_node

SAMPLES = samples()
PHONE_ANSWERS = ["6.5-inch", "4K"]
THINKING_INPUTS = ["Hello", "Who are you?"]
FIRST_QUESTION = "What products are shown in the image?"
GUIDE_IMAGE_MESSAGE = {
    "role": "user",
    "content": [{"type": "image_url", "image_url": {"url": IMAGE_URL}}, {"type": "text", "text": FIRST_QUESTION}],
}


def reasoning_of(text: str) -> str:
    """What the fake thinking upstream reasons about ``text`` (tests/support/fake_upstream.py)."""
    return f"The user said: {text}. I will answer."


def answer_of(text: str) -> str:
    return f"You said: {text}"


class Fixtures:
    """The session's servers and tools, started when a sample first needs them."""

    def __init__(self, request: pytest.FixtureRequest) -> None:
        self._request = request

    def __getattr__(self, name: str) -> Any:
        return self._request.getfixturevalue(name)


Run = Callable[[Sample, Fixtures], None]


# --- checks shared by several samples --------------------------------------------------------


def check_phone_store(messages: list[dict[str, Any]]) -> None:
    """The phone store loop's ``messages``: the system prompt, then a user answer and a
    non-empty reply per round; only the guide's own end condition may stop it early."""
    assert messages[0]["role"] == "system"
    turns = messages[1:]
    assert 2 <= len(turns) <= 2 * len(PHONE_ANSWERS) and len(turns) % 2 == 0, turns
    for i, (user, assistant) in enumerate(zip(turns[::2], turns[1::2], strict=True)):
        assert user == {"role": "user", "content": PHONE_ANSWERS[i]}
        assert assistant["role"] == "assistant"
        assert isinstance(assistant["content"], str) and assistant["content"].strip(), assistant
    if len(turns) < 2 * len(PHONE_ANSWERS):
        assert "I have understood your purchase intention" in str(turns[-1]["content"])


def check_images_arrived_intact(requests: list[Recorded], rounds: int) -> None:
    """What the vision upstream received: every request carries the guide's first message,
    image part then question, exactly as the guide wrote it (URL untouched, never fetched)."""
    assert len(requests) == rounds, [r.body for r in requests]
    for received in requests:
        assert received.body["model"] == "qwen3-vl-plus"
        assert received.body["messages"][0] == GUIDE_IMAGE_MESSAGE


def check_thinking_requests(requests: list[Recorded], last_inputs: list[str]) -> None:
    """What the thinking upstream received: thinking asked for, and the history as the client
    kept it (answers without their reasoning)."""
    assert [r.body["enable_thinking"] for r in requests] == [True] * len(requests)
    assert [r.body["messages"][-1] for r in requests] == [{"role": "user", "content": t} for t in last_inputs]
    for received in requests:
        assert all("reasoning_content" not in m for m in received.body["messages"])


def marked_messages(out: str) -> list[dict[str, Any]]:
    """The conversation a run printed on its ``MESSAGES`` line."""
    return list(json.loads(out.rsplit("MESSAGES ", 1)[1].splitlines()[0]))


# --- text: the embedded model ----------------------------------------------------------------

SHORT_OPENAI_PY = Edit(
    'completion = client.chat.completions.create(model="qwen-plus", messages=messages)',
    f'completion = client.chat.completions.create(model="qwen-plus", messages=messages, extra_body={{"max_tokens": {EMBEDDED_MAX_TOKENS}}})',  # noqa: E501
)
SHORT_DASHSCOPE_PY = Edit(
    'result_format="message",', f'result_format="message",\n        max_tokens={EMBEDDED_MAX_TOKENS},'
)
SHORT_NODE = Edit(
    "            messages: messages,\n        });",
    f"            messages: messages,\n            max_tokens: {EMBEDDED_MAX_TOKENS},\n        }});",
)
SHORT_CURL_OPENAI = Edit('"model": "qwen-plus",', f'"model": "qwen-plus",\n    "max_tokens": {EMBEDDED_MAX_TOKENS},')
SHORT_CURL_NATIVE = Edit(
    '"model": "qwen-plus",', f'"model": "qwen-plus",\n    "parameters": {{"max_tokens": {EMBEDDED_MAX_TOKENS}}},'
)


def text_openai_python(sample: Sample, f: Fixtures) -> None:
    run = run_python(sample, f.embedded.compat, f.embedded.api_key, PHONE_ANSWERS, (SHORT_OPENAI_PY,))
    assert run.error is None, run.error
    check_phone_store(run.namespace["messages"])
    assert run.stdout.startswith("Model output: Welcome to the Bailian phone store.")


def text_openai_node(sample: Sample, f: Fixtures) -> None:
    script = guide_script(node_code(sample, f.embedded.compat, (SHORT_NODE,)), f.tmp_path)
    out = run_node(f.node, script, f.embedded.compat, f.embedded.api_key, PHONE_ANSWERS)
    assert out.startswith("Welcome to the Bailian phone store. What screen size are you looking for?\n")
    assert "Please enter: 6.5-inch" in out
    check_phone_store(marked_messages(out))


def text_openai_curl(sample: Sample, f: Fixtures) -> None:
    body = json.loads(run_curl(sample, f.embedded.compat, f.embedded.api_key, (SHORT_CURL_OPENAI,)).stdout)
    assert body["object"] == "chat.completion" and body["id"].startswith("chatcmpl-") and body["model"] == "qwen-plus"
    (choice,) = body["choices"]
    assert choice["finish_reason"] in ("stop", "length")
    assert choice["message"]["role"] == "assistant" and choice["message"]["content"].strip()
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0
    assert isinstance(usage["prompt_tokens_details"]["cached_tokens"], int)


def text_dashscope_python(sample: Sample, f: Fixtures) -> None:
    run = run_python(sample, f.embedded.native, f.embedded.api_key, PHONE_ANSWERS, (SHORT_DASHSCOPE_PY,))
    assert run.error is None, run.error
    check_phone_store(run.namespace["messages"])


def text_dashscope_java(sample: Sample, f: Fixtures) -> None:
    run = run_java(f.jdk, "TextMultiTurn", f.embedded.native, f.embedded.api_key, "\n".join([*PHONE_ANSWERS, "exit"]))
    assert run.stderr == ""
    assert statuses(run.stdout) == [HTTP_1_1_OK] * len(PHONE_ANSWERS)
    messages = marked_messages(run.stdout)
    assert messages[0] == {"role": "system", "content": "You are a helpful assistant."}
    turns = messages[1:]
    assert [m["role"] for m in turns] == ["user", "assistant"] * len(PHONE_ANSWERS)
    assert [m["content"] for m in turns[::2]] == PHONE_ANSWERS
    assert all(isinstance(m["content"], str) and m["content"].strip() for m in turns[1::2])


def text_dashscope_curl(sample: Sample, f: Fixtures) -> None:
    body = json.loads(run_curl(sample, f.embedded.native, f.embedded.api_key, (SHORT_CURL_NATIVE,)).stdout)
    # No result_format: qwen-plus's documented default over raw HTTP is "text".
    assert isinstance(body["output"]["text"], str) and body["output"]["text"].strip()
    assert body["output"]["finish_reason"] in ("stop", "length")
    assert body["request_id"] and body["usage"]["input_tokens"] > 0


# --- multimodal: a vision upstream -----------------------------------------------------------

MULTIMODAL_FIRST = f"I see 1 image. {answer_of(FIRST_QUESTION)}"


def multimodal_openai_python(sample: Sample, f: Fixtures) -> None:
    direct = run_python(sample, f.fake.base_url, "sk-direct")
    mark = len(f.fake.requests)
    via = run_python(sample, f.gateway.compat, GATEWAY_KEY)
    assert direct.error is None and via.error is None, (direct.error, via.error)
    assert (
        via.stdout
        == direct.stdout
        == (f"First round output: {MULTIMODAL_FIRST}\nSecond round output: {answer_of('What style are they?')}\n")
    )
    # The first answer went back as model_dump(), nulls and all (trap 1), and was accepted.
    dumped = via.namespace["messages"][1]
    assert dumped["role"] == "assistant" and dumped["content"] == MULTIMODAL_FIRST
    assert {"tool_calls", "function_call", "refusal", "audio", "annotations"} <= dumped.keys()
    check_images_arrived_intact(_chat(f.fake.requests[mark:]), rounds=2)


def multimodal_openai_node(sample: Sample, f: Fixtures) -> None:
    direct = run_node(f.node, guide_script(node_code(sample, f.fake.base_url), f.tmp_path), "", "sk-direct")
    mark = len(f.fake.requests)
    script = guide_script(node_code(sample, f.gateway.compat), f.tmp_path)
    via = run_node(f.node, script, "", GATEWAY_KEY)
    second = "Write a poem describing this scene"  # the Node sample's own second question
    assert via == direct == f"First round output: {MULTIMODAL_FIRST}\nSecond round output: {answer_of(second)}\n"
    check_images_arrived_intact(_chat(f.fake.requests[mark:]), rounds=2)


def multimodal_openai_curl(sample: Sample, f: Fixtures) -> None:
    mark = len(f.fake.requests)
    body = json.loads(run_curl(sample, f.gateway.compat, GATEWAY_KEY).stdout)
    assert body["choices"][0]["message"]["content"] == answer_of("What style are they?")
    check_images_arrived_intact(_chat(f.fake.requests[mark:]), rounds=1)


def multimodal_dashscope_python(sample: Sample, f: Fixtures) -> None:
    mark = len(f.fake.requests)
    run = run_python(sample, f.gateway.native, GATEWAY_KEY)
    assert run.error is None, run.error
    assert run.stdout == (
        f"Model first round output {MULTIMODAL_FIRST}\nModel second round output {answer_of('What style are they?')}\n"
    )
    appended = run.namespace["messages"][1]  # the first answer's message, appended as it came
    assert appended["role"] == "assistant" and appended["content"] == [{"text": MULTIMODAL_FIRST}]
    check_images_arrived_intact(_chat(f.fake.requests[mark:]), rounds=2)


def multimodal_dashscope_java(sample: Sample, f: Fixtures) -> None:
    mark = len(f.fake.requests)
    run = run_java(f.jdk, "MultiModal", f.gateway.native, GATEWAY_KEY)
    assert run.stderr == ""
    assert run.stdout == (
        f"{HTTP_1_1_OK}\nFirst round output: {MULTIMODAL_FIRST}\n"
        f"{HTTP_1_1_OK}\nSecond round output: {answer_of('What style are they?')}\n"
    )
    check_images_arrived_intact(_chat(f.fake.requests[mark:]), rounds=2)


def multimodal_dashscope_curl(sample: Sample, f: Fixtures) -> None:
    mark = len(f.fake.requests)
    body = json.loads(run_curl(sample, f.gateway.native, GATEWAY_KEY).stdout)
    (choice,) = body["output"]["choices"]
    assert choice["message"]["content"] == [{"text": answer_of("What style are they?")}]
    assert choice["finish_reason"] == "stop"
    check_images_arrived_intact(_chat(f.fake.requests[mark:]), rounds=1)


# --- thinking: a thinking upstream -----------------------------------------------------------


def thinking_openai_python(sample: Sample, f: Fixtures) -> None:
    direct = run_python(sample, f.fake.base_url, "sk-direct", THINKING_INPUTS)
    mark = len(f.fake.requests)
    via = run_python(sample, f.gateway.compat, GATEWAY_KEY, THINKING_INPUTS)
    assert direct.error is None and via.error is None, (direct.error, via.error)
    assert via.stdout == direct.stdout
    assert via.namespace["messages"] == direct.namespace["messages"] == _thinking_history(THINKING_INPUTS)
    for text in THINKING_INPUTS:  # the reasoning streamed apart, before the answer
        assert f"{reasoning_of(text)}\n" in via.stdout and answer_of(text) in via.stdout
    check_thinking_requests(_chat(f.fake.requests[mark:]), THINKING_INPUTS)


def thinking_openai_node(sample: Sample, f: Fixtures) -> None:
    script = guide_script(node_code(sample, f.fake.base_url), f.tmp_path)
    direct = run_node(f.node, script, "", "sk-direct", THINKING_INPUTS)
    mark = len(f.fake.requests)
    script = guide_script(node_code(sample, f.gateway.compat), f.tmp_path)
    via = run_node(f.node, script, "", GATEWAY_KEY, THINKING_INPUTS)
    assert via == direct
    assert marked_messages(via) == _thinking_history(THINKING_INPUTS)
    assert via.count("=" * 20 + "Thinking Process" + "=" * 20) == 2
    assert via.count("=" * 20 + "Complete Response" + "=" * 20) == 2
    assert all(reasoning_of(text) in via for text in THINKING_INPUTS)
    assert "Usage:" not in via  # include_usage is commented out in the sample: no usage chunk
    check_thinking_requests(_chat(f.fake.requests[mark:]), THINKING_INPUTS)


def thinking_openai_curl(sample: Sample, f: Fixtures) -> None:
    mark = len(f.fake.requests)
    payloads = sse_data(run_curl(sample, f.gateway.compat, GATEWAY_KEY).stdout)
    assert payloads[-1] == "[DONE]" and payloads.count("[DONE]") == 1
    chunks: list[dict[str, Any]] = [json.loads(p) for p in payloads[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    *with_choices, usage = chunks
    assert usage["choices"] == [] and usage["usage"]["total_tokens"] > 0  # include_usage: one last chunk
    deltas = [c["choices"][0]["delta"] for c in with_choices]
    reasoning = "".join(d.get("reasoning_content") or "" for d in deltas)
    content = "".join(d.get("content") or "" for d in deltas)
    assert (reasoning, content) == (reasoning_of("Who are you?"), answer_of("Who are you?"))
    assert with_choices[-1]["choices"][0]["finish_reason"] == "stop"
    check_thinking_requests(_chat(f.fake.requests[mark:]), ["Who are you?"])


def thinking_dashscope_python(sample: Sample, f: Fixtures) -> None:
    mark = len(f.fake.requests)
    run = run_python(sample, f.gateway.native, GATEWAY_KEY, THINKING_INPUTS)
    assert run.error is None, run.error
    assert run.namespace["messages"] == _thinking_history(THINKING_INPUTS)
    for text in THINKING_INPUTS:
        assert f"{reasoning_of(text)}\n{'=' * 20}Complete Response{'=' * 20}\n{answer_of(text)}" in run.stdout
    check_thinking_requests(_chat(f.fake.requests[mark:]), THINKING_INPUTS)


def thinking_dashscope_java(sample: Sample, f: Fixtures) -> None:
    mark = len(f.fake.requests)
    run = run_java(f.jdk, "ThinkingStream", f.gateway.native, GATEWAY_KEY)
    assert run.stderr == ""
    assert statuses(run.stdout) == [HTTP_1_1_OK]
    reasoning, content = json.loads(run.stdout.rsplit("RESULT ", 1)[1])
    assert (reasoning, content) == (reasoning_of("Who are you"), answer_of("Who are you"))
    assert run.stdout.startswith(
        f"{HTTP_1_1_OK}\n====================Thinking Process====================\n{reasoning}"
        f"\n====================Complete Response====================\n{content}\n"
    )
    check_thinking_requests(_chat(f.fake.requests[mark:]), ["Who are you"])


def thinking_dashscope_curl(sample: Sample, f: Fixtures) -> None:
    mark = len(f.fake.requests)
    payloads = sse_data(run_curl(sample, f.gateway.native, GATEWAY_KEY).stdout)
    assert "[DONE]" not in payloads
    events = [json.loads(p) for p in payloads]
    messages = [e["output"]["choices"][0]["message"] for e in events]
    assert "".join(m["reasoning_content"] for m in messages) == reasoning_of("Who are you?")
    assert "".join(m["content"] for m in messages) == answer_of("Who are you?")
    reasons = [e["output"]["choices"][0]["finish_reason"] for e in events]
    assert reasons[:-1] == ["null"] * (len(reasons) - 1) and reasons[-1] == "stop"
    check_thinking_requests(_chat(f.fake.requests[mark:]), ["Who are you?"])


def _thinking_history(inputs: list[str]) -> list[dict[str, str]]:
    history = []
    for text in inputs:
        history += [{"role": "user", "content": text}, {"role": "assistant", "content": answer_of(text)}]
    return history


def _chat(requests: list[Recorded]) -> list[Recorded]:
    return [r for r in requests if r.path.endswith("/chat/completions")]


RUNS: dict[str, Run] = {
    "text/openai/python": text_openai_python,
    "text/openai/node": text_openai_node,
    "text/openai/curl": text_openai_curl,
    "text/dashscope/python": text_dashscope_python,
    "text/dashscope/java": text_dashscope_java,
    "text/dashscope/curl": text_dashscope_curl,
    "multimodal/openai/python": multimodal_openai_python,
    "multimodal/openai/node": multimodal_openai_node,
    "multimodal/openai/curl": multimodal_openai_curl,
    "multimodal/dashscope/python": multimodal_dashscope_python,
    "multimodal/dashscope/java": multimodal_dashscope_java,
    "multimodal/dashscope/curl": multimodal_dashscope_curl,
    "thinking/openai/python": thinking_openai_python,
    "thinking/openai/node": thinking_openai_node,
    "thinking/openai/curl": thinking_openai_curl,
    "thinking/dashscope/python": thinking_dashscope_python,
    "thinking/dashscope/java": thinking_dashscope_java,
    "thinking/dashscope/curl": thinking_dashscope_curl,
}

# The Java programs send the guide's Java samples' request bodies (java_runner.py says why):
# each names, in quotes, the literals its sample sends.
JAVA_PROGRAMS: dict[str, tuple[str, tuple[str, ...]]] = {
    "text/dashscope/java": ("TextMultiTurn", ("qwen-plus", "You are a helpful assistant.", "exit", "message")),
    "multimodal/dashscope/java": ("MultiModal", ("qwen3-vl-plus", IMAGE_URL, FIRST_QUESTION, "What style are they?")),
    "thinking/dashscope/java": (
        "ThinkingStream",
        ("qwen-plus", "Hello", "Hello! Nice to meet you. Is there anything I can help you with?", "Who are you"),
    ),
}


# --- the set ---------------------------------------------------------------------------------


def test_the_guide_has_18_samples_and_each_is_run() -> None:
    ids = [sample.id for sample in SAMPLES]
    assert len(ids) == len(set(ids)) == 18, ids  # 3 sections x (Python, Node.js, curl | Python, Java, curl)
    assert sorted(ids) == sorted(RUNS), set(ids) ^ set(RUNS)


@pytest.mark.parametrize("key", sorted(JAVA_PROGRAMS))
def test_each_java_program_sends_what_its_sample_sends(key: str) -> None:
    (sample,) = [s for s in SAMPLES if s.id == key]
    program, literals = JAVA_PROGRAMS[key]
    source = (JAVA_DIR / f"{program}.java").read_text()
    for literal in literals:
        assert f'"{literal}"' in sample.code or f"ResultFormat.{literal.upper()}" in sample.code, literal
        assert f'"{literal}"' in source, (program, literal)


@pytest.mark.parametrize(
    "sample",
    [pytest.param(s, id=s.id, marks=[pytest.mark.model] if s.section == "text" else []) for s in SAMPLES],
)
def test_sample(sample: Sample, request: pytest.FixtureRequest) -> None:
    assert sample.id in RUNS, f"no run for the guide's sample {sample.id} (line {sample.line})"
    _tool(sample, request)
    RUNS[sample.id](sample, Fixtures(request))


def _tool(sample: Sample, request: pytest.FixtureRequest) -> None:
    """The client a sample needs: skip without node or curl, fail without the JDK."""
    tool = {"node": "node", "curl": "curl", "java": "jdk"}.get(sample.language)
    if tool is not None:
        request.getfixturevalue(tool)


# --- offline: refused, clearly ---------------------------------------------------------------


def refusal(sample: Sample, f: Fixtures) -> tuple[int, str, str | None]:
    """Run ``sample`` against the embedded model; what its client got: status, message and
    (DashScope) code."""
    server: Server = f.embedded
    inputs = THINKING_INPUTS[:1]
    if sample.language == "python":
        base = server.compat if sample.protocol == "openai" else server.native
        run = run_python(sample, base, server.api_key, inputs)
        if sample.protocol == "openai":
            assert isinstance(run.error, openai.BadRequestError), run.error
            body = run.error.body
            assert isinstance(body, dict)
            return run.error.status_code, str(body["message"]), None
        # The SDK hands back the error as a response; the sample then fails reading its output.
        answer = run.namespace["response" if sample.section == "multimodal" else "chunk"]
        assert run.error is not None and answer.output is None
        return answer.status_code, answer.message, answer.code
    if sample.language == "node":
        script = guide_script(node_code(sample, server.compat), f.tmp_path)
        node_run = node_process(f.node, script, "", server.api_key, inputs)
        found = re.search(r"BadRequestError: (\d{3}) (.*)", node_run.stderr)
        assert found, node_run
        return int(found.group(1)), found.group(2), None
    if sample.language == "curl":
        base = server.compat if sample.protocol == "openai" else server.native
        body = json.loads(run_curl(sample, base, server.api_key).stdout)
        if sample.protocol == "openai":
            return 400 if "error" in body else 200, body["error"]["message"], None
        return 400 if "code" in body else 200, body["message"], body["code"]
    program = JAVA_PROGRAMS[sample.id][0]
    run_j = run_java(f.jdk, program, server.native, server.api_key)
    assert statuses(run_j.stdout) == ["HTTP HTTP_1_1 400"]
    found = re.search(r"HTTP (\d{3}): (\{.*\})", run_j.stdout + run_j.stderr)
    assert found, run_j
    error = json.loads(found.group(2))
    return int(found.group(1)), error["message"], error["code"]


@pytest.mark.model
@pytest.mark.parametrize("sample", [pytest.param(s, id=s.id) for s in SAMPLES if s.section != "text"])
def test_sample_on_the_embedded_model_is_refused_clearly(sample: Sample, request: pytest.FixtureRequest) -> None:
    _tool(sample, request)
    status, message, code = refusal(sample, Fixtures(request))

    assert status == 400, message
    assert code in (None, "InvalidParameter"), code
    if sample.section == "multimodal":
        # It names the model, what serves it offline, and the config that maps a vision upstream.
        assert message.startswith("the model 'qwen3-vl-plus' does not accept image input"), message
        assert "served by the embedded model" in message and "[models.qwen3-vl-plus]" in message, message
    else:
        assert message.startswith("enable_thinking: the model 'qwen-plus' runs on the embedded"), message
        assert "thinking model" in message, message


def test_the_guide_is_the_one_we_implement() -> None:
    """The copy the samples are read from is the reference page (when the reference is at hand)."""
    reference = Path(__file__).parents[3] / "shared" / "reference" / "model-studio-multi-turn-guide.md"
    if not reference.is_file():
        pytest.skip("the shared reference is not beside this checkout")
    assert (Path(__file__).with_name("guide") / "model-studio-multi-turn-guide.md").read_text() == reference.read_text()
