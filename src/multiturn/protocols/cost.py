"""The cost extension, the same on every protocol: ``usage.cost`` and ``usage.cost_details``.

When the model has a known price (``multiturn.pricing``), each protocol's ``usage`` object
carries two fields more than its provider sends, as OpenRouter does for its own costs (the
official SDKs keep unknown fields: ``usage.model_extra`` on the ``openai`` SDK's pydantic
models, plain keys on ``dashscope``'s dict-like usage):

    "cost": 0.000123,                       # this turn's (this request's) total
    "cost_details": {"currency": "USD", "input": ..., "cached_input": ..., "output": ...,
                     "conversation": 0.0042}  # the conversation's total through this turn

``conversation`` is ``null`` for a stateless request (no conversation) and when the total is
not known. Without a price neither field is present: no cost is made up.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..types import Cost


class CostDetails(BaseModel):
    model_config = ConfigDict(extra="forbid")

    currency: str = Field(description="the price table's currency (Model Studio's international prices: USD)")
    input: float = Field(description="uncached prompt tokens at the input price")
    cached_input: float = Field(description="cached prompt tokens at the cached-input price")
    output: float = Field(description="completion tokens, reasoning included, at the output price")
    conversation: float | None = Field(
        description="the conversation's total through this turn (its branch); null without a conversation"
    )


COST_DESCRIPTION = "multiturn extension: this turn's cost in cost_details.currency (absent: no price known)"


def cost_fields(cost: Cost | None) -> dict[str, Any]:
    """The extension fields a ``usage`` object gets for ``cost`` (none for ``None``)."""
    if cost is None:
        return {}
    return {
        "cost": cost.total,
        "cost_details": {
            "currency": cost.currency,
            "input": cost.input,
            "cached_input": cost.cached_input,
            "output": cost.output,
            "conversation": cost.conversation,
        },
    }
