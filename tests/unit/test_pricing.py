"""The price table and the cost of a turn (``multiturn.pricing``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from multiturn import pricing
from multiturn.settings import ModelAlias, PriceConfig, Settings
from multiturn.types import Cost, Usage

INTL = "https://dashscope-intl.aliyuncs.com/compatible-mode/v1"


def test_the_cost_of_a_usage_under_a_flat_price() -> None:
    price = pricing.flat("USD", 2.0, 8.0)  # cached input defaults to Model Studio's implicit 20 %
    cost = price.cost(Usage(prompt_tokens=1_000_000, cached_tokens=400_000, completion_tokens=500_000))
    assert (cost.input, cost.cached_input, cost.output) == (1.2, 0.16, 4.0)
    assert cost.total == 5.36 and cost.currency == "USD" and cost.conversation is None
    assert price.cost(Usage()).total == 0


def test_the_published_prices_pick_a_tier_by_the_prompt_and_a_thinking_rate() -> None:
    plus = pricing.MODEL_STUDIO["qwen-plus"]
    assert plus.tier(256_000).input == 0.4 and plus.tier(256_001).input == 1.2
    quiet = plus.cost(Usage(prompt_tokens=1000, completion_tokens=1000))
    thinking = plus.cost(Usage(prompt_tokens=1000, completion_tokens=1000, reasoning_tokens=10))
    assert quiet.output == 1000 * 1.2 / 1e6 and thinking.output == 1000 * 4.0 / 1e6  # reasoning bills the thinking rate
    assert plus.tier(10).cached_input == pytest.approx(0.4 * 0.2)
    qwen3_max = pricing.MODEL_STUDIO["qwen3-max"]
    assert [qwen3_max.tier(n).input for n in (32_000, 32_001, 128_001)] == [1.2, 2.4, 3.0]
    assert pricing.MODEL_STUDIO["qwen-max"].tier(10**6).output == 6.4
    assert "qwen-long" not in pricing.MODEL_STUDIO  # Beijing only: no international price


def test_where_a_models_price_comes_from() -> None:
    configured = PriceConfig(currency="CNY", input=0.8, output=2.0)
    settings = Settings(
        models={
            "mine": ModelAlias(backend="upstream", base_url=INTL, model="qwen-plus", price=configured),
            "intl": ModelAlias(backend="upstream", base_url=INTL, model="qwen-plus"),
            "sg-workspace": ModelAlias(
                backend="upstream", base_url="https://ws1.ap-southeast-1.maas.aliyuncs.com/compatible-mode/v1"
            ),
            "beijing": ModelAlias(backend="upstream", base_url="https://dashscope.aliyuncs.com/compatible-mode/v1"),
            "vllm": ModelAlias(backend="upstream", base_url="http://localhost:8000/v1", model="qwen-plus"),
            "local-plus": ModelAlias(),
        }
    )
    mine = pricing.price_for(settings, "mine")
    assert mine is not None and mine.currency == "CNY" and mine.source == "config"
    assert pricing.price_for(settings, "intl") is pricing.MODEL_STUDIO["qwen-plus"]
    assert pricing.price_for(settings, "sg-workspace") is None  # its upstream name is the alias: not a priced model
    assert pricing.price_for(settings, "beijing") is None  # another region bills other prices
    assert pricing.price_for(settings, "vllm") is None  # not Model Studio: no price is made up
    assert pricing.price_for(settings, "local-plus") is pricing.FREE  # the embedded model
    assert pricing.price_for(settings, "qwen2.5-coder-0.5b") is pricing.FREE  # a catalogue model


def test_a_configured_price_from_the_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        '[models.qwen-max]\nbackend = "upstream"\nbase_url = "http://localhost:1/v1"\n'
        'price = { currency = "USD", tiers = [{ up_to = 1000, input = 1.0, output = 2.0, cached_input = 0.1 }, '
        "{ input = 5.0, output = 6.0 }] }\n"
    )
    monkeypatch.setenv("MULTITURN_CONFIG", str(config))
    price = pricing.price_for(Settings(), "qwen-max")
    assert price is not None
    assert price.tier(1000).cached_input == 0.1 and price.tier(1001).cached_input == 1.0  # 20 % of 5.0


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"input": 1.0}, "needs input and output"),
        ({"input": 1.0, "output": 2.0, "tiers": [{"input": 1.0, "output": 1.0}]}, "not both"),
        ({"tiers": [{"up_to": 10, "input": 1.0, "output": 1.0}]}, "the last has none"),
        ({"tiers": [{"input": 1.0, "output": 1.0}, {"input": 1.0, "output": 1.0}]}, "needs up_to"),
        (
            {
                "tiers": [
                    {"up_to": 9, "input": 1, "output": 1},
                    {"up_to": 5, "input": 1, "output": 1},
                    {"input": 1, "output": 1},
                ]
            },
            "ascending",
        ),
        ({"input": 1.0, "output": 2.0, "cache_input": 0.1}, "cache_input"),
        ({"input": -1.0, "output": 2.0}, "greater than or equal to 0"),
    ],
)
def test_a_price_that_cannot_be_honoured_is_refused(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        PriceConfig.model_validate(fields)


def test_the_conversations_total_runs_along_the_path() -> None:
    price = pricing.flat("USD", 1.0, 1.0)
    usage = Usage(prompt_tokens=1_000_000)
    assert pricing.with_cost(usage, None) is usage  # no price: no cost
    alone = pricing.with_cost(usage, price).cost
    assert alone is not None and alone.conversation is None  # stateless: no conversation
    first = pricing.with_cost(usage, price, running=True).cost
    assert first is not None and first.conversation == 1.0
    second = pricing.with_cost(usage, price, running=True, before=first).cost
    assert second is not None and second.conversation == 2.0
    unknown = pricing.with_cost(usage, price, running=True, before=Cost("", conversation=None)).cost
    assert unknown is not None and unknown.conversation is None  # an earlier turn had no price
    yuan = pricing.with_cost(usage, pricing.flat("CNY", 1.0, 1.0), running=True, before=first).cost
    assert yuan is not None and yuan.conversation is None  # two currencies do not add up
    free = pricing.with_cost(usage, pricing.FREE, running=True, before=Cost("CNY", 1.0, conversation=3.0)).cost
    assert free is not None and (free.currency, free.conversation) == ("CNY", 3.0)  # a free turn carries the total
