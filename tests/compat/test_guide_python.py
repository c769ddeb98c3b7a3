"""The guide's Python examples, OpenAI SDK and DashScope SDK, run unchanged but for the base URL,
the key and scripted input.

Text examples run on the embedded model (``qwen-plus`` on the ``embedded`` server). Thinking and
vision examples run through the ``gateway`` server, whose ``qwen-plus``/``qwen3-vl-plus`` go to
the fake upstream; the OpenAI-SDK ones also run straight against the fake, and the two runs must
assemble the same reasoning and content: the gateway changes nothing it should not.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from support.fake_upstream import FakeUpstream, Recorded
from support.serve import GATEWAY_KEY, Server

from . import guide_dashscope, guide_openai
from .guide_openai import IMAGE_URL

PHONE_ANSWERS = ["6.5-inch", "4K"]
THINKING_INPUTS = ["Hello", "Who are you?"]
# What the fake upstream answers (tests/support/fake_upstream.py): deterministic, from the last user text.
THINKING_EXPECTED = [
    ("The user said: Hello. I will answer.", "You said: Hello"),
    ("The user said: Who are you?. I will answer.", "You said: Who are you?"),
]
MULTIMODAL_EXPECTED = (
    "I see 1 image. You said: What products are shown in the image?",
    "You said: What style are they?",
)


def _check_phone_store(messages: list[dict[str, object]]) -> None:
    assert messages[0]["role"] == "system"
    turns = messages[1:]
    assert 2 <= len(turns) <= 2 * len(PHONE_ANSWERS) and len(turns) % 2 == 0, turns
    for i, (user, assistant) in enumerate(zip(turns[::2], turns[1::2], strict=True)):
        assert user == {"role": "user", "content": PHONE_ANSWERS[i]}
        assert assistant["role"] == "assistant"
        assert isinstance(assistant["content"], str) and assistant["content"].strip(), assistant
    if len(turns) < 2 * len(PHONE_ANSWERS):  # the loop may only end early on the guide's own condition
        assert "I have understood your purchase intention" in str(turns[-1]["content"])


# --- text examples on the embedded model ---------------------------------------------------------


@pytest.mark.model
def test_openai_phone_store_on_embedded_model(embedded: Server) -> None:
    _check_phone_store(guide_openai.phone_store(embedded.compat, embedded.api_key, PHONE_ANSWERS))


@pytest.mark.model
def test_dashscope_phone_store_on_embedded_model(embedded: Server) -> None:
    _check_phone_store(guide_dashscope.phone_store(embedded.native, embedded.api_key, PHONE_ANSWERS))


@pytest.mark.model
def test_openai_plain_multi_turn_on_embedded_model(embedded: Server) -> None:
    completion = guide_openai.plain_multi_turn(embedded.compat, embedded.api_key)

    assert completion.object == "chat.completion" and completion.id.startswith("chatcmpl-")
    assert completion.model == "qwen-plus"
    (choice,) = completion.choices
    assert choice.index == 0 and choice.finish_reason in ("stop", "length")
    assert choice.message.role == "assistant"
    assert isinstance(choice.message.content, str) and choice.message.content.strip()
    assert completion.usage.prompt_tokens > 0 and completion.usage.completion_tokens > 0
    assert isinstance(completion.usage.prompt_tokens_details.cached_tokens, int)


@pytest.mark.model
def test_dashscope_plain_multi_turn_on_embedded_model(embedded: Server) -> None:
    response = guide_dashscope.plain_multi_turn(embedded.native, embedded.api_key)

    assert response.status_code == 200, response
    assert response.request_id
    (choice,) = response.output.choices
    assert choice.finish_reason in ("stop", "length")
    assert choice.message.role == "assistant"
    assert isinstance(choice.message.content, str) and choice.message.content.strip()
    assert response.usage.input_tokens > 0 and response.usage.output_tokens > 0


# --- thinking and vision through the upstream-configured gateway ----------------------------------


def _user_texts(request: Recorded) -> list[str]:
    """The text of every user message of a recorded upstream request, strings and parts alike."""
    out = []
    for m in request.body["messages"]:
        content = m["content"]
        if m["role"] == "user":
            if isinstance(content, str):
                out.append(content)
            else:
                out.append("".join(p.get("text", "") for p in content if p.get("type") == "text"))
    return out


def test_openai_thinking_loop_through_gateway_equals_direct(
    fake: FakeUpstream, gateway: Server, fake_since: Callable[[], list[Recorded]]
) -> None:
    direct = guide_openai.thinking_loop(fake.base_url, "sk-direct", THINKING_INPUTS)
    direct_requests = fake_since()
    via_gateway = guide_openai.thinking_loop(gateway.compat, GATEWAY_KEY, THINKING_INPUTS)
    gateway_requests = fake_since()[len(direct_requests) :]

    assert direct == THINKING_EXPECTED
    assert via_gateway == direct
    assert len(gateway_requests) == len(direct_requests) == 2
    for d, g in zip(direct_requests, gateway_requests, strict=True):
        assert g.body["model"] == d.body["model"] == "qwen-plus"
        assert g.body["enable_thinking"] is d.body["enable_thinking"] is True
        assert g.body["messages"] == d.body["messages"]  # history as the client sent it, reasoning not replayed


def test_openai_multimodal_through_gateway_equals_direct(
    fake: FakeUpstream, gateway: Server, fake_since: Callable[[], list[Recorded]]
) -> None:
    d_first, d_second, _d_messages = guide_openai.multimodal(fake.base_url, "sk-direct")
    direct_requests = fake_since()
    g_first, g_second, g_messages = guide_openai.multimodal(gateway.compat, GATEWAY_KEY)
    gateway_requests = fake_since()[len(direct_requests) :]

    assert (d_first, d_second) == MULTIMODAL_EXPECTED
    assert (g_first, g_second) == (d_first, d_second)
    # The second round sent model_dump()'s nulls back (trap 1) and the gateway accepted them.
    dumped = g_messages[1]
    assert dumped["role"] == "assistant" and dumped["content"] == d_first
    assert {"tool_calls", "function_call", "refusal", "audio", "annotations"} <= dumped.keys()
    assert len(gateway_requests) == len(direct_requests) == 2
    for d, g in zip(direct_requests, gateway_requests, strict=True):
        assert g.body["model"] == d.body["model"] == "qwen3-vl-plus"
        assert _user_texts(g) == _user_texts(d)
        first_user = g.body["messages"][0]["content"]
        assert first_user[0] == {"type": "image_url", "image_url": {"url": IMAGE_URL}}  # forwarded untouched


def test_dashscope_thinking_loop_through_gateway(gateway: Server, fake_since: Callable[[], list[Recorded]]) -> None:
    rounds = guide_dashscope.thinking_loop(gateway.native, GATEWAY_KEY, THINKING_INPUTS)

    assert rounds == THINKING_EXPECTED  # the same as the OpenAI SDK straight against the fake
    requests = fake_since()
    assert [r.body["enable_thinking"] for r in requests] == [True, True]
    assert requests[1].body["messages"] == [
        {"role": "user", "content": "Hello"},
        {"role": "assistant", "content": "You said: Hello"},
        {"role": "user", "content": "Who are you?"},
    ]


def test_dashscope_multimodal_through_gateway(gateway: Server, fake_since: Callable[[], list[Recorded]]) -> None:
    first, second, messages = guide_dashscope.multimodal(gateway.native, GATEWAY_KEY)

    assert (first, second) == MULTIMODAL_EXPECTED
    assert messages[1]["role"] == "assistant" and messages[1]["content"] == [{"text": first}]  # appended as it came
    requests = fake_since()
    assert [r.body["model"] for r in requests] == ["qwen3-vl-plus", "qwen3-vl-plus"]
    image = requests[0].body["messages"][0]["content"][0]
    assert image == {"type": "image_url", "image_url": {"url": IMAGE_URL}}  # native {"image"} -> image_url part
