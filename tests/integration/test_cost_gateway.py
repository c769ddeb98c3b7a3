"""Cost per turn and per conversation (issue 20, item 4), on a real ``multiturn serve`` in front of
the fake upstream, read with the official ``openai`` and ``dashscope`` SDKs; the library's
``Reply.cost`` and the CLI's footer against the same upstream.

Every figure is checked against the price table: the usage the upstream reported (prompt tokens
are the request's bytes // 4 there, cached tokens what it shares with an earlier request) times
the alias's configured price, per million tokens.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dashscope
import orjson
import pytest
from dashscope import Generation
from dashscope.api_entities.http_request import close_shared_sync_session
from openai import OpenAI

from multiturn import AsyncClient, Settings
from multiturn.settings import ModelAlias, PriceConfig
from support.fake_upstream import FakeUpstream
from support.serve import Server, start_serve

PRICE = {"currency": "USD", "input": 2.0, "output": 8.0, "cached_input": 0.5}
TIERED = {"currency": "EUR", "tiers": [{"up_to": 60, "input": 1.0, "output": 3.0}, {"input": 100.0, "output": 300.0}]}
THINKING = {"input": 1.0, "output": 2.0, "output_thinking": 10.0}


def expected(usage: Any, price: dict[str, float]) -> float:
    """The cost of an SDK usage object (chat shape) under ``price`` (one tier)."""
    cached = usage.prompt_tokens_details.cached_tokens
    uncached = usage.prompt_tokens - cached
    cached_rate = price.get("cached_input", price["input"] * 0.2)
    return (uncached * price["input"] + cached * cached_rate + usage.completion_tokens * price["output"]) / 1e6


def prompt_tokens(fake: FakeUpstream) -> int:
    """What the fake upstream counted for the last request it received."""
    messages = fake.bodies()[-1]["messages"]
    return max(1, len(orjson.dumps(messages, option=orjson.OPT_SORT_KEYS)) // 4)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeUpstream]:
    with FakeUpstream(keep_alive=120) as server:
        yield server


@pytest.fixture(scope="module")
def gateway(fake: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    def alias(model: str, **more: Any) -> dict[str, Any]:
        return {"backend": "upstream", "base_url": fake.base_url, "model": model, "capabilities": ["text"], **more}

    models = {
        "priced": alias("plain", price=PRICE),
        "tiered": alias("plain", price=TIERED),
        "thinker-priced": alias("thinker", price=THINKING),
        "unpriced": alias("plain"),
    }
    server = start_serve("cost", tmp_path_factory.mktemp("cost"), models=models)
    try:
        yield server
    finally:
        server.stop()
        close_shared_sync_session()


@pytest.fixture
def client(gateway: Server) -> Iterator[OpenAI]:
    with OpenAI(base_url=gateway.compat, api_key=gateway.api_key, max_retries=0) as c:
        yield c


def test_a_stateless_chat_completion_carries_its_cost(client: OpenAI, fake: FakeUpstream) -> None:
    done = client.chat.completions.create(model="priced", messages=[{"role": "user", "content": "what costs?"}])
    usage = done.usage
    assert usage is not None and usage.prompt_tokens == prompt_tokens(fake)
    extra = usage.model_extra or {}
    assert extra["cost"] == pytest.approx(expected(usage, PRICE), rel=1e-9)
    details = extra["cost_details"]
    assert details["currency"] == "USD" and details["conversation"] is None  # no conversation: no total
    assert details["output"] == pytest.approx(usage.completion_tokens * 8.0 / 1e6, rel=1e-9)
    assert details["input"] + details["cached_input"] + details["output"] == pytest.approx(extra["cost"], rel=1e-9)

    stream = client.chat.completions.create(
        model="priced",
        messages=[
            {"role": "user", "content": "what costs?"},
            {"role": "assistant", "content": "x"},
            {"role": "user", "content": "and streamed?"},
        ],
        stream=True,
        stream_options={"include_usage": True},
    )
    last = [chunk for chunk in stream][-1]
    assert last.usage is not None and not last.choices
    assert last.usage.prompt_tokens_details is not None and last.usage.prompt_tokens_details.cached_tokens > 0
    assert (last.usage.model_extra or {})["cost"] == pytest.approx(expected(last.usage, PRICE), rel=1e-9)


def test_a_model_without_a_price_reports_no_cost(client: OpenAI) -> None:
    done = client.chat.completions.create(model="unpriced", messages=[{"role": "user", "content": "free?"}])
    assert done.usage is not None and done.usage.prompt_tokens > 0
    assert "cost" not in (done.usage.model_extra or {}) and "cost_details" not in (done.usage.model_extra or {})


def test_tiers_by_prompt_length_and_the_thinking_output_rate(client: OpenAI) -> None:
    short = client.chat.completions.create(model="tiered", messages=[{"role": "user", "content": "hi"}])
    assert short.usage is not None and short.usage.prompt_tokens <= 60
    cost = (short.usage.model_extra or {})["cost_details"]
    assert cost["currency"] == "EUR"
    assert cost["input"] == pytest.approx(short.usage.prompt_tokens * 1.0 / 1e6, rel=1e-9)
    long = client.chat.completions.create(model="tiered", messages=[{"role": "user", "content": "word " * 100}])
    assert long.usage is not None and long.usage.prompt_tokens > 60
    cost = (long.usage.model_extra or {})["cost_details"]
    assert cost["output"] == pytest.approx(long.usage.completion_tokens * 300.0 / 1e6, rel=1e-9)

    thought = client.chat.completions.create(model="thinker-priced", messages=[{"role": "user", "content": "think"}])
    usage = thought.usage
    assert usage is not None and usage.completion_tokens_details is not None
    assert usage.completion_tokens_details.reasoning_tokens > 0
    details = (usage.model_extra or {})["cost_details"]
    assert details["output"] == pytest.approx(usage.completion_tokens * 10.0 / 1e6, rel=1e-9)  # the thinking rate


def test_stateful_chat_turns_carry_their_cost_and_the_conversations_total(client: OpenAI) -> None:
    conversation = client.conversations.create()
    header = {"X-Multiturn-Conversation": conversation.id}
    costs: list[float] = []
    totals: list[float] = []
    for text in ("first question", "second question", "third question"):
        done = client.chat.completions.create(
            model="priced", messages=[{"role": "user", "content": text}], extra_headers=header
        )
        assert done.usage is not None
        extra = done.usage.model_extra or {}
        assert extra["cost"] == pytest.approx(expected(done.usage, PRICE), rel=1e-9)
        costs.append(extra["cost"])
        totals.append(extra["cost_details"]["conversation"])
    assert totals == pytest.approx([costs[0], costs[0] + costs[1], sum(costs)], rel=1e-9)

    stream = client.chat.completions.create(
        model="priced",
        messages=[{"role": "user", "content": "a streamed fourth"}],
        extra_headers=header,
        stream=True,
        stream_options={"include_usage": True},
    )
    last = [chunk for chunk in stream][-1]
    assert last.usage is not None
    assert last.usage.prompt_tokens_details is not None and last.usage.prompt_tokens_details.cached_tokens > 0
    extra = last.usage.model_extra or {}
    assert extra["cost"] == pytest.approx(expected(last.usage, PRICE), rel=1e-9)
    assert extra["cost_details"]["conversation"] == pytest.approx(sum(costs) + extra["cost"], rel=1e-9)


def test_responses_carry_the_cost_and_keep_it_when_retrieved(client: OpenAI) -> None:
    first = client.responses.create(model="priced", input="hello there")
    second = client.responses.create(model="priced", input="and again", previous_response_id=first.id)
    for response in (first, second):
        assert response.usage is not None
        usage = response.usage
        cached = usage.input_tokens_details.cached_tokens
        price = (usage.input_tokens - cached) * 2.0 + cached * 0.5 + usage.output_tokens * 8.0
        assert (usage.model_extra or {})["cost"] == pytest.approx(price / 1e6, rel=1e-9)
    assert second.usage is not None and second.usage.input_tokens_details.cached_tokens > 0
    one, two = ((r.usage.model_extra or {}) for r in (first, second) if r.usage is not None)
    assert two["cost_details"]["conversation"] == pytest.approx(one["cost"] + two["cost"], rel=1e-9)
    again = client.responses.retrieve(second.id)
    assert again.usage is not None and again.usage.model_extra == second.usage.model_extra


def test_dashscope_native_carries_the_cost(gateway: Server, fake: FakeUpstream) -> None:
    dashscope.base_http_api_url = gateway.native
    messages = [{"role": "user", "content": "native cost"}]
    whole = Generation.call(api_key=gateway.api_key, model="priced", messages=messages, result_format="message")
    assert whole.status_code == 200, whole
    usage = whole.usage
    assert usage["input_tokens"] == prompt_tokens(fake)
    cached = usage["prompt_tokens_details"]["cached_tokens"]
    price = (usage["input_tokens"] - cached) * 2.0 + cached * 0.5 + usage["output_tokens"] * 8.0
    assert usage["cost"] == pytest.approx(price / 1e6, rel=1e-9)
    assert usage["cost_details"]["currency"] == "USD" and usage["cost_details"]["conversation"] is None

    last: Any = None
    for response in Generation.call(
        api_key=gateway.api_key,
        model="priced",
        messages=messages,
        result_format="message",
        stream=True,
        incremental_output=True,
    ):
        assert response.status_code == 200, response
        last = response
    usage = last.usage
    assert usage["prompt_tokens_details"]["cached_tokens"] > 0  # the same request again: the cache hit
    cached = usage["prompt_tokens_details"]["cached_tokens"]
    price = (usage["input_tokens"] - cached) * 2.0 + cached * 0.5 + usage["output_tokens"] * 8.0
    assert usage["cost"] == pytest.approx(price / 1e6, rel=1e-9)


async def test_the_library_reply_carries_the_cost(fake: FakeUpstream, tmp_path: Path) -> None:
    alias = ModelAlias(backend="upstream", base_url=fake.base_url, model="plain", price=PriceConfig(**PRICE))
    settings = Settings(data_dir=tmp_path, db=str(tmp_path / "lib.db"), models={"priced": alias}, model="priced")
    async with AsyncClient(settings) as client:
        conversation = await client.create()
        first = await conversation.send("library question")
        second = await conversation.send("library follow-up")
    for reply in (first, second):
        cost, usage = reply.cost, reply.usage
        assert cost is not None and cost is usage.cost and cost.currency == "USD"
        cached = usage.cached_tokens
        price = (usage.prompt_tokens - cached) * 2.0 + cached * 0.5 + usage.completion_tokens * 8.0
        assert cost.total == pytest.approx(price / 1e6, rel=1e-9)
    assert second.usage.cached_tokens > 0
    assert first.cost is not None and second.cost is not None
    assert second.cost.conversation == pytest.approx(first.cost.total + second.cost.total, rel=1e-9)
    assert second.context_report is not None and second.context_report.kept == ((0, 2),)  # the report rides along
