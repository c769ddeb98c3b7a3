"""Pydantic models of the Responses and Conversations wire formats, as multiturn speaks them.

Request models describe what the server accepts: OpenAI's fields (Model Studio's Responses
endpoint mirrors them), and our extensions (``context_policy``). Fields declared here are the ones
the server reads; a field it does not implement is declared only where a value changes nothing
(``translate.refuse_unsupported`` holds the list and refuses the rest, naming them: no silent
yes). Input items are messages (a role, ``user``, ``assistant``, ``system`` or ``developer``, and a
string or parts: ``input_text``, ``input_image``, and ``output_text`` for an earlier answer passed
back), ``function_call`` and ``function_call_output`` items, and ``reasoning`` items passed back
before the answer they led to; other item types (built-in tool calls, item references) are
refused with a 400 that names them. Tools are functions (``{"type": "function", "name",
"description", "parameters", "strict"}``); a built-in tool is refused. Response objects are
built as dicts by ``translate`` and described here for the OpenAPI schema.

Bounds are those of ``protocols.limits`` (floats are finite); the number of input items and the
bytes a stored turn holds are capped by settings, checked in ``translate``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, RootModel, Tag

from ..cost import COST_DESCRIPTION, CostDetails
from ..limits import MAX_TOKENS_CAP, MAX_TOOLS, FunctionName, Id, Metadata, Name, Text

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


class FunctionCallItem(_Open):
    """A call the model made, passed back (``id`` and ``status`` are ignored)."""

    type: Literal["function_call"]
    call_id: Id
    name: FunctionName
    arguments: Text = Field(description="the arguments as a JSON string")
    id: str | None = None
    status: Literal["in_progress", "completed", "incomplete"] | None = None


class FunctionCallOutputItem(_Open):
    """The result of a call (``call_id``), as a string or as input parts."""

    type: Literal["function_call_output"]
    call_id: Id
    output: Text | list[InputPart]
    id: str | None = None
    status: Literal["in_progress", "completed", "incomplete"] | None = None


class SummaryText(_Open):
    type: Literal["summary_text"]
    text: Text


class ReasoningText(_Open):
    type: Literal["reasoning_text"]
    text: Text


class ReasoningItem(_Open):
    """An earlier answer's reasoning, passed back: it goes with the assistant message or call
    that follows it. ``encrypted_content`` cannot be read here (400)."""

    type: Literal["reasoning"]
    summary: list[SummaryText] = Field(default_factory=list)
    content: list[ReasoningText] | None = None
    encrypted_content: str | None = None
    id: str | None = None
    status: Literal["in_progress", "completed", "incomplete"] | None = None


def _type_of(value: Any, default: str | None) -> str | None:
    kind = value.get("type", default) if isinstance(value, dict) else getattr(value, "type", default)
    return kind if isinstance(kind, str) else None


def _item_tag(value: Any) -> str | None:
    kind = _type_of(value, "message")
    return "reasoning_item" if kind == "reasoning" else kind


InputItem = Annotated[
    Annotated[InputMessage, Tag("message")]
    | Annotated[FunctionCallItem, Tag("function_call")]
    | Annotated[FunctionCallOutputItem, Tag("function_call_output")]
    | Annotated[ReasoningItem, Tag("reasoning_item")],
    Discriminator(_item_tag),
]
"""An input item: a message (``type`` may be left out), a function call, its output, reasoning."""


class FunctionTool(_Open):
    type: Literal["function"] = Field(description="only function tools: a built-in tool is a 400")
    name: FunctionName
    description: str | None = None
    parameters: dict[str, Any] | None = Field(default=None, description="JSON schema of the arguments")
    strict: bool | None = None


class FunctionChoice(_Open):
    type: Literal["function"]
    name: FunctionName


class AllowedTool(_Open):
    type: Literal["function"]
    name: FunctionName


class AllowedToolsChoice(_Open):
    """Only these tools may be called (``mode`` ``auto``: or none; ``required``: one of them)."""

    type: Literal["allowed_tools"]
    mode: Literal["auto", "required"]
    tools: list[AllowedTool] = Field(min_length=1, max_length=MAX_TOOLS)


class FormatText(_Open):
    type: Literal["text"]


class FormatJsonObject(_Open):
    type: Literal["json_object"]


class FormatJsonSchema(_Open):
    type: Literal["json_schema"]
    name: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-zA-Z0-9_-]+$")]
    schema_: dict[str, Any] = Field(alias="schema", description="the JSON schema the answer follows")
    description: str | None = None
    strict: bool | None = None


def _format_tag(value: Any) -> str | None:
    kind = _type_of(value, None)
    return f"format_{kind}" if kind else None


TextFormat = Annotated[
    Annotated[FormatText, Tag("format_text")]
    | Annotated[FormatJsonObject, Tag("format_json_object")]
    | Annotated[FormatJsonSchema, Tag("format_json_schema")],
    Discriminator(_format_tag),
]


class TextConfig(_Open):
    format: TextFormat | None = None
    verbosity: Literal["low", "medium", "high"] | None = Field(
        default=None, description="only medium (the default) is honoured"
    )


class ReasoningConfig(_Open):
    effort: Literal["none", "minimal", "low", "medium", "high", "xhigh"] | None = Field(
        default=None, description="none (no thinking) only; use enable_thinking to think"
    )
    summary: Literal["auto", "concise", "detailed"] | None = Field(default=None, description="not supported")
    generate_summary: Literal["auto", "concise", "detailed"] | None = Field(default=None, description="not supported")


class StreamOptions(_Open):
    include_obfuscation: bool | None = Field(default=None, description="false only: events are not padded")


class ConversationRef(_Open):
    id: Id


class ResponseCreateRequest(_Open):
    # undeclared fields are read (to name them) and refused: the published schema says so
    model_config = ConfigDict(extra="allow", allow_inf_nan=False, json_schema_extra={"additionalProperties": False})

    model: Name
    input: Text | list[InputItem] = Field(description="a list of at most max_input_items (setting)")
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
    tools: list[FunctionTool] | None = Field(default=None, max_length=MAX_TOOLS)
    tool_choice: Literal["auto", "none", "required"] | FunctionChoice | AllowedToolsChoice | None = None
    parallel_tool_calls: bool | None = None
    text: TextConfig | None = None
    reasoning: ReasoningConfig | None = None
    include: list[str] | None = Field(default=None, description="message.input_image.image_url only")
    stream_options: StreamOptions | None = None
    user: str | None = Field(default=None, description="accepted; changes nothing")
    safety_identifier: str | None = Field(default=None, description="accepted; changes nothing")
    prompt_cache_key: str | None = Field(default=None, description="accepted; changes nothing")
    prompt_cache_retention: Literal["in_memory", "24h"] | None = Field(
        default=None, description="accepted; changes nothing"
    )
    service_tier: str | None = Field(default=None, description="auto or default only")
    background: bool | None = Field(default=None, description="false only: answers are synchronous")
    top_logprobs: int | None = Field(default=None, ge=0, le=20, description="0 only: no log probabilities")


class ConversationCreateRequest(_Open):
    items: list[InputItem] | None = Field(default=None, max_length=MAX_ITEMS_PER_CALL)
    metadata: Metadata | None = None
    context_policy: Name | None = Field(default=None, description="multiturn extension: the conversation's policy")


class ConversationUpdateRequest(_Open):
    metadata: Metadata | None = None
    context_policy: Name | None = None


class ItemsCreateRequest(_Open):
    items: list[InputItem] = Field(min_length=1, max_length=MAX_ITEMS_PER_CALL)


class ForkRequest(_Open):
    item_id: Id | None = Field(default=None, description="fork at this item (default: the head)")


# --- response shapes (documentation; translate builds them) --------------------------------


class OutputMessage(BaseModel):
    id: str
    type: Literal["message"]
    role: Literal["user", "assistant", "system"]
    status: Literal["in_progress", "completed", "incomplete"]
    content: list[dict[str, Any]]


class FunctionCallObject(BaseModel):
    id: str = Field(description="fc_ + the id of the answer that made the call + _ + its position")
    type: Literal["function_call"]
    call_id: str
    name: str
    arguments: str
    status: Literal["in_progress", "completed", "incomplete"]


class FunctionCallOutputObject(BaseModel):
    id: str
    type: Literal["function_call_output"]
    call_id: str | None
    output: str | list[dict[str, Any]]
    status: Literal["in_progress", "completed", "incomplete"]


class ItemObject(RootModel[OutputMessage | FunctionCallObject | FunctionCallOutputObject]):
    """A conversation item or an input item: a message, a function call, a call's output."""


class ResponseUsage(BaseModel):
    input_tokens: int
    input_tokens_details: dict[str, int]
    output_tokens: int
    output_tokens_details: dict[str, int]
    total_tokens: int
    cost: float | None = Field(default=None, description=COST_DESCRIPTION)
    cost_details: CostDetails | None = Field(default=None, description="multiturn extension: the cost's parts")


class ResponseObject(BaseModel):
    """The response object; ``tools``, ``tool_choice``, ``parallel_tool_calls`` and ``text``
    repeat what was applied."""

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
    tools: list[dict[str, Any]]
    tool_choice: str | dict[str, Any]
    parallel_tool_calls: bool
    text: dict[str, Any]
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
