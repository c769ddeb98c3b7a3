"""What a turn costs: a price per model, and the cost of a turn's ``Usage`` under it.

A ``Price`` is tiers of prices per million tokens, chosen by the request's prompt tokens
(Model Studio bills long prompts at a higher rate); each tier prices uncached input, cached
input and output (a turn that reasoned may have its own output rate). Reasoning tokens are part
of the completion tokens and billed as output.

Where a model's price comes from (``price_for``), first match wins:

1. the alias's own ``price`` in the config (``[models.NAME] price = {input = ..., output = ...}``);
2. the embedded model (an embedded alias, a catalogue model, the local GGUF file): free;
3. an upstream alias on Model Studio's international (Singapore) endpoint
   (``dashscope-intl.aliyuncs.com`` or a ``*.ap-southeast-1.maas.aliyuncs.com`` workspace)
   whose upstream model is in ``MODEL_STUDIO``: its published price;
4. anything else (another upstream, the Beijing endpoint, which bills in CNY at other rates):
   no price, and no cost is reported (``Usage.cost`` stays ``None``) rather than a made-up one.

Cached input: Model Studio bills implicit-cache hits at 20 % of the input price and explicit
(``cache_control``) hits at 10 % ("Context cache", reference/wire-protocols.md §4). A usage
reports cached tokens without saying which cache served them, so the default cached rate is
the implicit one (multiturn never adds cache markers itself); an alias whose clients send
markers sets ``cached_input`` to what it pays. Explicit cache creation (125 %) is not counted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from urllib.parse import urlsplit

from .settings import PriceConfig, Settings
from .types import COST_DIGITS, Cost, Usage

IMPLICIT_CACHE_SHARE = 0.2
"""Model Studio bills an implicit context-cache hit at 20 % of the input price."""
PER = 1_000_000
"""Prices are per million tokens."""


@dataclass(frozen=True, slots=True)
class Tier:
    """Prices per million tokens for requests of at most ``up_to`` prompt tokens (``None``: any)."""

    up_to: int | None
    input: float
    output: float
    cached_input: float
    output_thinking: float | None = None
    """The output price of a turn that reasoned (``None``: ``output``)."""


@dataclass(frozen=True, slots=True)
class Price:
    """A model's price: tiers in ascending order of ``up_to``, the last one open."""

    currency: str
    tiers: tuple[Tier, ...]
    source: str = ""
    """Where the figures come from (a URL, "config", "embedded")."""

    def tier(self, prompt_tokens: int) -> Tier:
        """The tier a request of ``prompt_tokens`` is billed at (the last one past every bound)."""
        for tier in self.tiers:
            if tier.up_to is None or prompt_tokens <= tier.up_to:
                return tier
        return self.tiers[-1]

    def cost(self, usage: Usage) -> Cost:
        """What ``usage`` costs: uncached and cached prompt tokens at the tier's input rates,
        completion tokens (reasoning included) at its output rate, or its thinking rate when the
        turn reasoned."""
        tier = self.tier(usage.prompt_tokens)
        cached = min(max(usage.cached_tokens, 0), usage.prompt_tokens)
        output_rate = tier.output
        if usage.reasoning_tokens > 0 and tier.output_thinking is not None:
            output_rate = tier.output_thinking
        return Cost(
            currency=self.currency,
            input=_money((usage.prompt_tokens - cached) * tier.input),
            cached_input=_money(cached * tier.cached_input),
            output=_money(usage.completion_tokens * output_rate),
        )

    @property
    def free(self) -> bool:
        return all(t.input == t.output == t.cached_input == 0 and not t.output_thinking for t in self.tiers)


def _money(tokens_times_rate: float) -> float:
    return round(tokens_times_rate / PER, COST_DIGITS)


def flat(currency: str, input: float, output: float, *, cached_input: float | None = None, source: str = "") -> Price:
    """A one-tier price; ``cached_input`` defaults to the implicit-cache rate."""
    cached = input * IMPLICIT_CACHE_SHARE if cached_input is None else cached_input
    return Price(currency, (Tier(None, input, output, cached),), source)


FREE = flat("USD", 0.0, 0.0, source="embedded")
"""The embedded model: runs on this machine, costs nothing per token."""


def _tiers(*rows: tuple[int | None, float, float, float | None]) -> tuple[Tier, ...]:
    """(up_to, input, output, output when thinking) rows; cached input at the implicit rate."""
    return tuple(Tier(up_to, i, o, round(i * IMPLICIT_CACHE_SHARE, 6), t) for up_to, i, o, t in rows)


MODEL_STUDIO_SOURCE = (
    "https://www.alibabacloud.com/help/en/model-studio/models (International, Singapore; USD per million "
    "tokens; read 2026-12-07)"
)
# Model Studio's published international (Singapore) prices, USD per million tokens, read on
# 2026-12-07. qwen-max, qwen-plus and qwen-turbo: the flagship table of
# https://www.alibabacloud.com/help/en/model-studio/billing-for-model-studio (its lowest tiers:
# 1.6/6.4, 0.4/1.2, 0.05/0.2); the tiers above them, thinking-mode output and qwen3-max / qwen-flash
# as the models page lists them (https://www.alibabacloud.com/help/en/model-studio/models),
# cross-checked against a third-party table quoting it. qwen-long is served in the Beijing
# region only (https://www.alibabacloud.com/help/en/model-studio/long-context-qwen-long), so it
# has no international price here: configure one. Prices change: an alias's `price` wins.
MODEL_STUDIO: Mapping[str, Price] = MappingProxyType(
    {
        "qwen-max": Price("USD", _tiers((None, 1.6, 6.4, None)), MODEL_STUDIO_SOURCE),
        "qwen-plus": Price("USD", _tiers((256_000, 0.4, 1.2, 4.0), (None, 1.2, 3.6, 12.0)), MODEL_STUDIO_SOURCE),
        "qwen-turbo": Price("USD", _tiers((None, 0.05, 0.2, None)), MODEL_STUDIO_SOURCE),
        "qwen-flash": Price("USD", _tiers((256_000, 0.05, 0.4, None), (None, 0.25, 2.0, None)), MODEL_STUDIO_SOURCE),
        "qwen3-max": Price(
            "USD",
            _tiers((32_000, 1.2, 6.0, None), (128_000, 2.4, 12.0, None), (None, 3.0, 15.0, None)),
            MODEL_STUDIO_SOURCE,
        ),
    }
)


def from_config(config: PriceConfig) -> Price:
    """A configured price as a ``Price`` (cached input defaults to the implicit-cache rate)."""
    tiers = tuple(
        Tier(
            up_to=tier.up_to,
            input=tier.input,
            output=tier.output,
            cached_input=tier.input * IMPLICIT_CACHE_SHARE if tier.cached_input is None else tier.cached_input,
            output_thinking=tier.output_thinking,
        )
        for tier in config.as_tiers()
    )
    return Price(config.currency, tiers, "config")


def international_endpoint(base_url: str | None) -> bool:
    """Whether ``base_url`` is Model Studio's international (Singapore) endpoint."""
    host = (urlsplit(base_url).hostname or "") if base_url else ""
    return host == "dashscope-intl.aliyuncs.com" or host.endswith(".ap-southeast-1.maas.aliyuncs.com")


def price_for(settings: Settings, model: str) -> Price | None:
    """The price of a turn on ``model`` (an alias or a catalogue name); ``None``: not known."""
    alias = settings.models.get(model)
    if alias is not None and alias.price is not None:
        return from_config(alias.price)
    if alias is None or alias.backend == "embedded":
        return FREE
    if international_endpoint(alias.base_url):
        return MODEL_STUDIO.get(alias.model or model)
    return None


def with_cost(usage: Usage, price: Price | None, *, running: bool = False, before: Cost | None = None) -> Usage:
    """``usage`` with its cost under ``price`` (unchanged without a price).

    ``running``: the turn belongs to a stored conversation, so the cost carries the
    conversation's total through it: ``before`` is the cost of the previous answer on its path
    (``None`` for the first), whose ``conversation`` this turn adds to. The total is ``None`` when
    an earlier answer's is (a turn with no known price) or when two non-zero totals are in
    different currencies; a free turn takes the currency of the total it carries on.
    """
    if price is None:
        return usage
    cost = price.cost(usage)
    currency, total = cost.currency, (cost.total if running else None)
    if running and before is not None:
        earlier = before.conversation
        if earlier is None or (before.currency != cost.currency and earlier != 0 and cost.total != 0):
            total = None
        else:
            total = round(earlier + cost.total, COST_DIGITS)
            if cost.total == 0 and earlier != 0:
                currency = before.currency
    return Usage(
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        cached_tokens=usage.cached_tokens,
        reasoning_tokens=usage.reasoning_tokens,
        cost=Cost(currency, cost.input, cost.cached_input, cost.output, conversation=total),
    )


__all__ = [
    "FREE",
    "IMPLICIT_CACHE_SHARE",
    "MODEL_STUDIO",
    "Price",
    "Tier",
    "flat",
    "from_config",
    "international_endpoint",
    "price_for",
    "with_cost",
]
