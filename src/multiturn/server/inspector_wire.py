"""The inspector's JSON (``/v1/inspector/...``, ``inspector_routes.py``): pydantic models of its
request bodies, which parse them, and of its answers, which build them (so the published schema
is what the server sends: ``server/openapi.py`` lists them).

Requests refuse unknown fields (no silent yes) and hold their values to the edge's bounds
(``protocols/limits.py``). Answers are multiturn's own shapes: a tree of items, a turn's
context with each item's fate, a what-if plan. Usage carries ``cost`` when the model has a
price (``multiturn.pricing``).
"""

from __future__ import annotations

from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import InvalidParameter
from ..protocols.limits import MAX_TOKENS_CAP, Id, Name

_M = TypeVar("_M", bound=BaseModel)


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


def parse(model: type[_M], body: bytes) -> _M:
    """``body`` as ``model``; a 400 naming the first field at fault otherwise."""
    try:
        return model.model_validate_json(body or b"{}")
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        where = ".".join(str(part) for part in err["loc"]) or "body"
        raise InvalidParameter(f"{where}: {err['msg']}", param=where) from None


# -- requests ------------------------------------------------------------------------------------


class HeadRequest(_Request):
    item_id: Id | None = Field(default=None, description="the item to make the head (null: the empty root)")


class UndoRequest(_Request):
    """No fields: the head moves back to before the last user message."""


class RetryRequest(_Request):
    item_id: Id = Field(description="a user message to answer again, or an answer to one")
    model: Name | None = Field(default=None, description="answer with this model (default: the conversation's)")
    context_policy: Name | None = Field(default=None, description="a context policy preset for this turn")
    max_output_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKENS_CAP)


class WhatIfRequest(_Request):
    policy: Name | None = Field(default=None, description="a preset; default: the one a turn would use now")
    budget: int | None = Field(default=None, ge=1, le=MAX_TOKENS_CAP, description="a ceiling on prompt tokens")
    max_output_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKENS_CAP)


# -- answers -------------------------------------------------------------------------------------


class CostObject(BaseModel):
    currency: str
    input: float
    cached_input: float
    output: float
    total: float
    conversation: float | None = None


class UsageObject(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    reasoning_tokens: int
    cost: CostObject | None = None


class ListedConversation(BaseModel):
    id: str
    title: str | None
    preview: str = Field(description="its title, else its first user message")
    model: str | None
    policy: str | None
    created_at: int
    updated_at: int
    head_item_id: str | None
    matched: str | None = Field(default=None, description="what matched the search text")


class ConversationList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ListedConversation]


class ToolCallObject(BaseModel):
    id: str
    name: str
    arguments: str


class TreeItem(BaseModel):
    id: str
    parent_id: str | None
    role: str
    text: str
    reasoning: str | None
    status: str
    created_at: int
    model: str | None
    finish_reason: str | None
    tool_calls: list[ToolCallObject]
    usage: UsageObject | None
    policy: str | None = Field(description="the context policy of an answer's request")
    context_tokens: int | None = Field(description="the planned prompt tokens of an answer's request")


class TreeObject(BaseModel):
    id: str
    title: str | None
    model: str | None
    policy: str | None
    system_prompt: str | None
    head_item_id: str | None
    items: list[TreeItem] = Field(description="every item of every branch, oldest first")


class HeadObject(BaseModel):
    id: str
    head_item_id: str | None


Fate = Literal["kept", "recalled", "summarized", "dropped"]


class FatedItem(BaseModel):
    id: str
    position: int
    role: str
    text: str
    status: str
    fate: Fate
    score: float | None = None
    why: str | None = None


class SummaryObject(BaseModel):
    id: str
    text: str
    through_item_id: str | None
    token_count: int | None


class SegmentTokens(BaseModel):
    kind: str
    tokens: int


class PromptDiffObject(BaseModel):
    previous_item_id: str
    cause: str = Field(description="none, model_change, summary_update, recall_change, system_edit, window_drop, ...")
    explanation: str
    common_chars: int
    common_tokens: int
    previous_tokens: int
    current_tokens: int
    previous_segment: str | None
    current_segment: str | None
    previous_excerpt: str
    current_excerpt: str
    dropped_ids: list[str]
    policy_change: list[str] | None
    cached_tokens: int | None
    segments: list[SegmentTokens]


class TurnContextObject(BaseModel):
    conversation_id: str
    answer_id: str
    model: str | None
    policy: str
    budget: int | None
    tokens: int
    over_budget: bool
    tokens_by_part: dict[str, int]
    counts: dict[str, int] = Field(description="items per fate")
    items: list[FatedItem]
    summary: SummaryObject | None
    query_words: list[str]
    usage: UsageObject | None
    diff: PromptDiffObject | None


class WhatIfItem(BaseModel):
    id: str
    position: int
    fate: Fate
    stored_fate: Fate | None
    score: float | None = None


class WhatIfObject(BaseModel):
    answer_id: str
    policy: str
    budget: int | None
    tokens: int
    over_budget: bool
    tokens_by_part: dict[str, int]
    cached_tokens: int
    counts: dict[str, int]
    cost: CostObject | None
    stored_tokens: int | None
    stored_cost: CostObject | None
    items: list[WhatIfItem]
    evidence_dropped: list[str]
    evidence_gained: list[str]


MODELS: tuple[type[BaseModel], ...] = (
    HeadRequest,
    UndoRequest,
    RetryRequest,
    WhatIfRequest,
    ConversationList,
    TreeObject,
    HeadObject,
    TurnContextObject,
    WhatIfObject,
)
"""The models the OpenAPI document lists (their parts come along)."""
