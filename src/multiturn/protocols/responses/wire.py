"""Pydantic models of the Responses and Conversations wire formats, as multiturn speaks them.

Request models describe what the server accepts: OpenAI's fields (Model Studio's Responses
endpoint mirrors them), and our extensions (``context_policy``). Unknown fields are tolerated
(``extra="allow"``) and ignored, as Model Studio does. Input items are messages: a role
(``user``, ``assistant``, ``system``, ``developer``) and a string or parts (``input_text``,
``input_image``, and ``output_text`` for an earlier answer passed back); other item types
(tool calls, item references) are refused with a 400 that names them. Response objects are built
as dicts by ``translate`` and described here for the OpenAPI schema.

Bounds are those of ``protocols.limits`` (floats are finite); the number of input items and the
bytes a stored turn holds are capped by settings, checked in ``translate``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..limits import MAX_TOKENS_CAP, Id, Metadata, Name, Text

MAX_ITEMS_PER_CALL = 20
"""OpenAI's limit on the items one conversations call creates."""


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow", allow_inf_nan=False)


class InputText(_Open):
    type: Literal["input_text"]
    text: Text


class OutputText(_Open):
    type: Literal["output_text"]
    text: Text


class InputImage(_Open):
    type: Literal["input_image"]
    image_url: str | None = Field(default=None, description="https URL or data URL")
    detail: str | None = None
    file_id: str | None = None


InputPart = Annotated[InputText | OutputText | InputImage, Field(discriminator="type")]


class InputMessage(_Open):
    """A message item: ``{"role", "content"}`` (``type: "message"`` optional), or an earlier
    output item passed back as it came (``id`` and ``status`` are then ignored)."""

    type: Literal["message"] = "message"
    role: Literal["user", "assistant", "system", "developer"]
    content: Text | list[InputPart]


class ConversationRef(_Open):
    id: Id


class ResponseCreateRequest(_Open):
    model: Name
    input: Text | list[InputMessage] = Field(description="a list of at most max_input_items (setting)")
    instructions: Text | None = None
    previous_response_id: Id | None = None
    conversation: Id | ConversationRef | None = None
    store: bool | None = True
    stream: bool | None = False
    truncation: Literal["auto", "disabled"] | None = None
    context_policy: Name | None = Field(
        default=None, description="multiturn extension: a context policy preset (full, window, summary, ...)"
    )
    max_output_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKENS_CAP)
    metadata: Metadata | None = None
    temperature: float | None = Field(default=None, ge=0, lt=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    enable_thinking: bool | None = None


class ConversationCreateRequest(_Open):
    items: list[InputMessage] | None = Field(default=None, max_length=MAX_ITEMS_PER_CALL)
    metadata: Metadata | None = None
    context_policy: Name | None = Field(default=None, description="multiturn extension: the conversation's policy")


class ConversationUpdateRequest(_Open):
    metadata: Metadata | None = None
    context_policy: Name | None = None


class ItemsCreateRequest(_Open):
    items: list[InputMessage] = Field(min_length=1, max_length=MAX_ITEMS_PER_CALL)


class ForkRequest(_Open):
    item_id: Id | None = Field(default=None, description="fork at this item (default: the head)")


# --- response shapes (documentation; translate builds them) --------------------------------


class OutputMessage(BaseModel):
    id: str
    type: Literal["message"]
    role: Literal["user", "assistant", "system"]
    status: Literal["in_progress", "completed", "incomplete"]
    content: list[dict[str, Any]]


class ResponseUsage(BaseModel):
    input_tokens: int
    input_tokens_details: dict[str, int]
    output_tokens: int
    output_tokens_details: dict[str, int]
    total_tokens: int


class ResponseObject(BaseModel):
    id: str
    object: Literal["response"]
    created_at: int
    status: Literal["in_progress", "completed", "incomplete", "failed", "cancelled"]
    model: str
    output: list[dict[str, Any]]
    usage: ResponseUsage | None
    previous_response_id: str | None
    conversation: ConversationRef | None
    instructions: str | None
    metadata: dict[str, str]
    context_report: dict[str, Any] | None = Field(default=None, description="multiturn extension")


class ConversationObject(BaseModel):
    id: str
    object: Literal["conversation"]
    created_at: int
    metadata: dict[str, str]


class ListPage(BaseModel):
    object: Literal["list"]
    data: list[dict[str, Any]]
    first_id: str | None
    last_id: str | None
    has_more: bool


class DeletedObject(BaseModel):
    id: str
    object: Literal["response.deleted", "conversation.deleted"]
    deleted: bool
