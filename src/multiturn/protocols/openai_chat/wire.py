"""Pydantic models of the OpenAI-compatible chat-completions wire format, as multiturn speaks it.

Request models describe what the server accepts: the OpenAI fields, Model Studio's extras
(``enable_thinking``, ``top_k``...), and the nulls the openai SDK round-trips on assistant
messages (``message.model_dump()``); unknown fields are tolerated everywhere (``extra="allow"``).
Field constraints are Model Studio's ranges, and the bounds of ``protocols.limits`` for every other
number, string and list (floats are finite); ``RANGE_MESSAGES`` holds Model Studio's error texts,
which ``translate.parse_request`` reports instead of pydantic's. Response models describe exactly what
``translate`` sends (they forbid extras, and the tests check every body against them); they are
published in the OpenAPI schema and never used on the hot path.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..cost import COST_DESCRIPTION, CostDetails
from ..limits import (
    INT32_MAX,
    MAX_NAME_CHARS,
    MAX_STOP,
    MAX_TOKENS_CAP,
    MAX_TOOLS,
    FunctionName,
    InvalidParameter,
    Metadata,
    Name,
    Text,
)

__all__ = ["INT32_MAX", "MAX_TOKENS_CAP", "InvalidParameter"]  # re-exported: older imports name them here

ToolCallId = Annotated[str, Field(min_length=1, max_length=MAX_NAME_CHARS)]
Pixels = Annotated[int, Field(ge=1, le=INT32_MAX)]


RANGE_MESSAGES: dict[str, str] = {
    "temperature": "Temperature should be in [0.0, 2.0)",
    "top_p": "Range of top_p should be (0.0, 1.0]",
    "n": "Range of n should be [1, 4]",
    "presence_penalty": "Range of presence_penalty should be [-2.0, 2.0]",
    "frequency_penalty": "Range of frequency_penalty should be [-2.0, 2.0]",
    "repetition_penalty": "repetition_penalty should be greater than 0",
    "top_k": "top_k should be greater than or equal to 0",
    "top_logprobs": "Range of top_logprobs should be [0, 5]",
    "thinking_budget": "The thinking_budget parameter must be a positive integer",
}
"""Model Studio's message for an out-of-range value of each field (``max_tokens`` and ``seed``
have messages that embed numbers: see ``translate``)."""


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow", allow_inf_nan=False)


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- request: content parts ----------------------------------------------------------------


class TextContentPart(_Open):
    type: Literal["text"]
    text: Text
    cache_control: dict[str, Any] | None = None


class ImageURL(_Open):
    url: str = Field(description="https URL or data URL")
    detail: str | None = None


class ImageContentPart(_Open):
    type: Literal["image_url"]
    image_url: ImageURL
    min_pixels: Pixels | None = None
    max_pixels: Pixels | None = None
    cache_control: dict[str, Any] | None = None


class InputAudio(_Open):
    data: str = Field(description="base64 data, a data URL, or an http(s) URL")
    format: str | None = Field(default=None, description="wav, mp3...")


class AudioContentPart(_Open):
    type: Literal["input_audio"]
    input_audio: InputAudio


class VideoFramesPart(_Open):
    type: Literal["video"]
    video: list[str] = Field(description="frame image URLs, in order")


class VideoURL(_Open):
    url: str


class VideoURLContentPart(_Open):
    type: Literal["video_url"]
    video_url: VideoURL
    fps: float | None = Field(default=None, gt=0.0, le=1000.0)


ContentPart = Annotated[
    TextContentPart | ImageContentPart | AudioContentPart | VideoFramesPart | VideoURLContentPart,
    Field(discriminator="type"),
]
Content = Text | list[ContentPart]


# --- request: messages -------------------------------------------------------------------


class FunctionCall(_Open):
    name: FunctionName
    arguments: Text = Field(description="JSON-encoded arguments")


class ToolCallIn(_Open):
    id: ToolCallId
    type: Literal["function"] = "function"
    function: FunctionCall


class SystemMessage(_Open):
    role: Literal["system", "developer"] = Field(description='"developer" is read as "system"')
    content: Content
    name: str | None = None


class UserMessage(_Open):
    role: Literal["user"]
    content: Content
    name: str | None = None


class AssistantMessage(_Open):
    """An earlier answer. The nulls are what ``message.model_dump()`` of the openai SDK sends;
    ``reasoning_content`` is accepted and not replayed to the model."""

    role: Literal["assistant"]
    content: Content | None = None
    name: str | None = None
    tool_calls: list[ToolCallIn] | None = None
    reasoning_content: Text | None = None
    refusal: Text | None = None
    annotations: list[Any] | None = None
    audio: dict[str, Any] | None = None
    function_call: dict[str, Any] | None = None


class ToolMessage(_Open):
    role: Literal["tool"]
    content: Content
    tool_call_id: ToolCallId


ChatMessage = Annotated[SystemMessage | UserMessage | AssistantMessage | ToolMessage, Field(discriminator="role")]


# --- request: tools, options, body ------------------------------------------------------


class FunctionDefinition(_Open):
    name: FunctionName
    description: str | None = None
    parameters: dict[str, Any] | None = Field(default=None, description="JSON schema of the arguments")
    strict: bool | None = None


class ToolDefinition(_Open):
    type: Literal["function"]
    function: FunctionDefinition


class NamedFunction(_Open):
    name: FunctionName


class NamedToolChoice(_Open):
    type: Literal["function"]
    function: NamedFunction


class StreamOptionsIn(_Open):
    include_usage: bool | None = None


class ResponseFormat(_Open):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: dict[str, Any] | None = None


class ChatCompletionRequest(_Open):
    """``POST /v1/chat/completions``. Unknown top-level fields are accepted and passed on to an
    upstream backend as they came."""

    model: Name
    messages: list[ChatMessage] = Field(min_length=1, description="at most max_input_items (setting)")
    stream: bool | None = False
    stream_options: StreamOptionsIn | None = None
    max_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKENS_CAP)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKENS_CAP, description="alias of max_tokens")
    temperature: float | None = Field(default=None, ge=0.0, lt=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    top_k: int | None = Field(default=None, ge=0, le=INT32_MAX)
    presence_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    frequency_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    repetition_penalty: float | None = Field(default=None, gt=0.0)
    seed: int | None = Field(default=None, ge=0, le=INT32_MAX)
    n: int | None = Field(default=None, ge=1, le=4)
    stop: str | Annotated[list[str], Field(max_length=MAX_STOP)] | None = None
    response_format: ResponseFormat | None = None
    enable_thinking: bool | None = None
    thinking_budget: int | None = Field(default=None, ge=1, le=MAX_TOKENS_CAP)
    tools: list[ToolDefinition] | None = Field(default=None, max_length=MAX_TOOLS)
    tool_choice: Literal["auto", "none", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=5)
    user: str | None = None
    metadata: Metadata | None = None


# --- responses ---------------------------------------------------------------------------

FinishReasonOut = Literal["stop", "length", "tool_calls", "content_filter"]


class FunctionOut(_Closed):
    name: str
    arguments: str


class ToolCallOut(_Closed):
    id: str
    type: Literal["function"]
    function: FunctionOut


class PromptTokensDetails(_Closed):
    cached_tokens: int
    cache_creation_input_tokens: int = Field(description="always 0: explicit cache markers are not honoured")


class CompletionTokensDetails(_Closed):
    reasoning_tokens: int


class UsageOut(_Closed):
    prompt_tokens: int
    completion_tokens: int = Field(description="includes reasoning tokens")
    total_tokens: int
    prompt_tokens_details: PromptTokensDetails
    completion_tokens_details: CompletionTokensDetails
    cost: float | None = Field(default=None, description=COST_DESCRIPTION)
    cost_details: CostDetails | None = Field(default=None, description="multiturn extension: the cost's parts")


class ResponseMessage(_Closed):
    role: Literal["assistant"]
    content: str | None = Field(description="null only when the answer is tool calls and no text")
    reasoning_content: str | None = Field(default=None, description="present only when non-empty")
    tool_calls: list[ToolCallOut] | None = Field(default=None, description="present only when non-empty")


class Choice(_Closed):
    index: int
    message: ResponseMessage
    finish_reason: FinishReasonOut
    logprobs: None


class ChatCompletionResponse(_Closed):
    id: str = Field(description='"chatcmpl-" + the request id')
    object: Literal["chat.completion"]
    created: int
    model: str
    system_fingerprint: None
    choices: list[Choice]
    usage: UsageOut


class FunctionDeltaOut(_Closed):
    name: str | None = None
    arguments: str


class ToolCallDeltaOut(_Closed):
    """``id``, ``type`` and ``function.name`` appear only in the first piece of an index."""

    index: int
    id: str | None = None
    type: Literal["function"] | None = None
    function: FunctionDeltaOut


class ChunkDelta(_Closed):
    """Every delta carries a string ``content`` or a string ``reasoning_content``."""

    role: Literal["assistant"] | None = None
    content: str | None = None
    reasoning_content: str | None = Field(default=None, description="present on thinking streams")
    tool_calls: list[ToolCallDeltaOut] | None = None


class ChunkChoice(_Closed):
    index: int
    delta: ChunkDelta
    finish_reason: FinishReasonOut | None
    logprobs: None


class ChatCompletionChunk(_Closed):
    """One ``data:`` event of a stream. ``choices`` is empty and ``usage`` set only in the
    extra final chunk sent when ``stream_options.include_usage`` is true."""

    id: str
    object: Literal["chat.completion.chunk"]
    created: int
    model: str
    system_fingerprint: None
    choices: list[ChunkChoice]
    usage: UsageOut | None


class ErrorDetail(_Closed):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorResponse(_Closed):
    """Body of every non-2xx answer."""

    error: ErrorDetail
    request_id: str


class StreamError(_Closed):
    """A ``data:`` event reporting a failure after the stream started; it is the last event."""

    error: ErrorDetail


class ModelCard(_Closed):
    id: str
    object: Literal["model"]
    created: int
    owned_by: str


class ModelList(_Closed):
    object: Literal["list"]
    data: list[ModelCard]
