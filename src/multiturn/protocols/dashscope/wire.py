"""DashScope-native wire shapes (text- and multimodal-generation), as pydantic v2 models.

These models document the protocol and publish it in ``/openapi.json``; they are not on the
hot path. ``translate`` reads requests with orjson and checks them by hand, so that errors carry
Model Studio's exact texts, and writes responses and stream events as plain dicts for speed. The
unit tests hold both sides to these models: every body ``translate`` accepts validates as a
``GenerationRequest``, and every body it writes validates as a ``GenerationResponse``,
``StreamChunk`` or ``ErrorBody``.

Bounds: Model Studio's ranges (``PARAMETER_RANGES``, with its texts), and ``protocols.limits``
for every other number, string and list; floats are finite. ``translate`` applies the same
bounds by hand.

Requests are open (``extra="allow"``: Model Studio adds parameters all the time and clients
send hints such as ``min_pixels``); responses are closed (``extra="forbid"``): they are exactly
what we write.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from multiturn.protocols.cost import COST_DESCRIPTION, CostDetails
from multiturn.protocols.limits import (
    INT32_MAX,
    INT64_MAX,
    MAX_NAME_CHARS,
    MAX_STOP,
    MAX_TOOLS,
    FunctionName,
    Name,
    Text,
)
from multiturn.types import Role

Pixels = Annotated[int, Field(ge=1, le=INT32_MAX)]
Fps = Annotated[float, Field(gt=0.0, le=1000.0)]
TokenId = Annotated[int, Field(ge=0, le=INT32_MAX)]
ToolCallId = Annotated[str, Field(min_length=1, max_length=MAX_NAME_CHARS)]


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow", allow_inf_nan=False)


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------- request


class CacheControl(_Open):
    """Explicit context-cache marker on a content item."""

    type: Literal["ephemeral"]


class TextItem(_Open):
    """``{"text": ...}``, or the ``{"type": "text", "text": ...}`` form of the cache docs."""

    text: Text
    type: Literal["text"] | None = None
    cache_control: CacheControl | None = None


class ImageItem(_Open):
    """An image: ``https://``, ``data:`` (base64), ``oss://`` or ``file://`` URL. Never fetched."""

    image: str
    min_pixels: Pixels | None = None
    max_pixels: Pixels | None = None
    cache_control: CacheControl | None = None


class AudioItem(_Open):
    audio: str


class VideoItem(_Open):
    """A video file URL, or a list of frame image URLs."""

    video: str | list[str]
    fps: Fps | None = None
    min_pixels: Pixels | None = None
    max_pixels: Pixels | None = None


ContentItem = TextItem | ImageItem | AudioItem | VideoItem


class FunctionCall(_Open):
    name: FunctionName
    arguments: Text | dict[str, Any] = ""


class ToolCall(_Open):
    id: ToolCallId
    type: Literal["function"] = "function"
    index: int | None = None
    function: FunctionCall


class RequestMessage(_Open):
    """One message of ``input.messages``. Content is a string (text endpoint) or a list of
    single-modality items (multimodal endpoint; a list of text items is also accepted on the
    text endpoint). Assistant messages appended back from a response keep ``reasoning_content``
    and ``tool_calls``; ``function`` and ``plugin`` are legacy names of the ``tool`` role."""

    role: Literal["system", "user", "assistant", "tool", "function", "plugin"]
    content: Text | list[ContentItem] | None = None
    reasoning_content: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: ToolCallId | None = Field(default=None, description="required on a tool message")
    name: str | None = None


class HistoryTurn(_Open):
    """A round of the deprecated ``prompt`` + ``history`` form."""

    user: str
    bot: str


class Input(_Open):
    """``messages``, or the legacy ``prompt`` (+ ``history``); one of them must be present."""

    messages: list[RequestMessage] | None = Field(
        default=None, min_length=1, description="at most max_input_items (setting)"
    )
    prompt: Text | None = None
    history: list[HistoryTurn] | None = None


class FunctionSpec(_Open):
    name: FunctionName
    description: str | None = None
    parameters: dict[str, Any] | None = None


class ToolSpec(_Open):
    type: Literal["function"] = "function"
    function: FunctionSpec


class ResponseFormat(_Open):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: dict[str, Any] | None = None


class Parameters(_Open):
    """Generation parameters. Streaming is not here: it is chosen by the ``X-DashScope-SSE:
    enable`` header (or ``Accept: text/event-stream``). Unknown keys are accepted and passed on."""

    result_format: Literal["text", "message"] | None = Field(
        default=None, description='Default "text" on the text endpoint, "message" with thinking, tools or images.'
    )
    incremental_output: bool | None = Field(
        default=None,
        description="Streaming only: each event carries the new piece (true) or the text so far (default).",
    )
    enable_thinking: bool | None = None
    thinking_budget: int | None = Field(default=None, gt=0, le=INT32_MAX)
    max_tokens: int | None = Field(default=None, ge=1, le=INT32_MAX)
    temperature: float | None = Field(default=None, ge=0.0, lt=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    top_k: int | None = Field(default=None, ge=0, le=INT32_MAX)
    seed: int | None = Field(default=None, ge=0, le=INT64_MAX)
    stop: (
        str
        | Annotated[list[str], Field(max_length=MAX_STOP)]
        | Annotated[list[TokenId], Field(max_length=MAX_STOP)]
        | Annotated[list[list[TokenId]], Field(max_length=MAX_STOP)]
        | None
    ) = None
    repetition_penalty: float | None = Field(default=None, gt=0.0)
    presence_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    frequency_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    n: int | None = Field(default=None, ge=1, le=4)
    tools: list[ToolSpec] | None = Field(default=None, max_length=MAX_TOOLS)
    tool_choice: Literal["auto", "none"] | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    enable_search: bool | None = None
    search_options: dict[str, Any] | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=5)
    vl_high_resolution_images: bool | None = None


class GenerationRequest(_Open):
    """``POST /api/v1/services/aigc/{text,multimodal}-generation/generation``."""

    model: Name
    input: Input
    parameters: Parameters = Field(default_factory=lambda: Parameters())


# ---------------------------------------------------------------- response

WireFinishReason = Literal["null", "stop", "length", "tool_calls", "content_filter"]
"""``"null"`` (a string) on every stream event but the last."""


class PromptTokensDetails(_Closed):
    cached_tokens: int


class OutputTokensDetails(_Closed):
    reasoning_tokens: int


class Usage(_Closed):
    """Token counts. Stream events carry running totals (``input_tokens``, ``output_tokens``,
    ``total_tokens``); the last event and non-stream responses also carry the details, and on
    the multimodal endpoint a top-level ``cached_tokens``."""

    input_tokens: int
    output_tokens: int
    total_tokens: int
    prompt_tokens_details: PromptTokensDetails | None = None
    output_tokens_details: OutputTokensDetails | None = None
    cached_tokens: int | None = None
    cost: float | None = Field(default=None, description=COST_DESCRIPTION)
    cost_details: CostDetails | None = Field(default=None, description="multiturn extension: the cost's parts")


class TextContent(_Closed):
    text: str


class ResponseFunctionCall(_Closed):
    """``name`` comes once, in the first piece of a streamed call; ``arguments`` pieces join."""

    name: str | None = None
    arguments: str


class ResponseToolCall(_Closed):
    index: int
    id: str = Field(description='"" on the continuation pieces of an incremental stream')
    type: Literal["function"]
    function: ResponseFunctionCall


class ResponseMessage(_Closed):
    """``content`` is a string on the text endpoint and a list of ``{"text"}`` on the multimodal
    one (``[]`` in a stream event that has no answer text). ``reasoning_content`` is a string in
    every event of a thinking stream."""

    role: Literal["assistant"]
    content: str | list[TextContent]
    reasoning_content: str | None = None
    tool_calls: list[ResponseToolCall] | None = None


class Choice(_Closed):
    finish_reason: WireFinishReason
    message: ResponseMessage


class MessageOutput(_Closed):
    """``result_format: "message"``."""

    choices: list[Choice]


class TextOutput(_Closed):
    """``result_format: "text"``."""

    finish_reason: WireFinishReason
    text: str


class GenerationResponse(_Closed):
    """A non-stream answer (HTTP 200, ``application/json``). Never has a top-level ``code``."""

    output: MessageOutput | TextOutput
    usage: Usage
    request_id: str


class StreamChunk(GenerationResponse):
    """The ``data:`` line of one SSE event, framed as
    ``id:<n>\\nevent:result\\n:HTTP_STATUS/200\\ndata:<json>\\n\\n``. There is no ``[DONE]``:
    the stream ends after the event whose ``finish_reason`` is not ``"null"``."""


class ErrorBody(_Closed):
    """An error: the JSON body of a 4xx/5xx response, or the ``data:`` of an
    ``event:error`` stream event (preceded by ``status:<http status>``)."""

    request_id: str
    code: str
    message: str


# ---------------------------------------------------------------- Model Studio's texts and codes
# From its error-code page; clients and agents match on these strings, so keep them verbatim.

BODY_INVALID: Final = "Required body invalid, please check the request body format."
MODEL_MISSING: Final = 'Required parameter "model" missing from request.'  # BadRequest.EmptyModel
INPUT_MISSING: Final = "Required input parameter missing from request."  # BadRequest.EmptyInput
NO_INPUT: Final = 'Either "prompt" or "messages" must exist and cannot both be none'
NO_USER: Final = "The input messages do not contain elements with the role of user."
NO_CONTENT: Final = "The content field is a required field."
BAD_MESSAGE: Final = "Input should be a valid dictionary or instance of GPT3Message"
BAD_ITEM: Final = "The item of content should be a message of a certain modal."
TOOL_ORDER: Final = 'messages with role "tool" must be a response to a preceeding message with "tool_calls"'
THINKING_NEEDS_MESSAGE: Final = 'The result_format parameter must be "message" when enable_thinking is true'
TOOLS_NEED_MESSAGE: Final = 'The result_format parameter must be "message" when tools are given'  # ours
RATE_LIMITED: Final = "Requests rate limit exceeded, please try again later."
MODEL_NOT_EXIST: Final = "Model not exist."
INVALID_API_KEY: Final = "Invalid API-key provided."
INTERNAL_ERROR: Final = "An internal error has occured, please try again later or contact service support."
STOP_TYPES: Final = (
    'The "stop" parameter must be of type "str", "list[str]", "list[int]", or "list[list[int]]", '
    "and all elements within the list must be of the same type."
)
INT_MAX: Final = 2**31 - 1
ROLES: Final[dict[str, Role]] = {
    "user": "user",
    "assistant": "assistant",
    "system": "system",
    "tool": "tool",
    "function": "tool",
    "plugin": "tool",
}
"""Wire roles to canonical ones: ``function`` and ``plugin`` are legacy names of tool results."""

PARAMETER_RANGES: Final[dict[str, tuple[bool, Callable[[float], bool], str]]] = {
    "max_tokens": (True, lambda x: 1 <= x <= INT_MAX, f"Range of max_tokens should be [1, {INT_MAX}]"),
    "thinking_budget": (
        True,
        lambda x: 1 <= x <= INT_MAX,
        f"The thinking_budget parameter must be a positive integer and not greater than {INT_MAX}",
    ),
    "top_k": (True, lambda x: x >= 0, "Parameter top_k be greater than or equal to 0"),
    "top_logprobs": (True, lambda x: 0 <= x <= 5, "Range of top_logprobs should be [0, 5]"),
    "seed": (True, lambda x: 0 <= x <= 2**63 - 1, "Range of seed should be [0, 9223372036854775807]"),
    "n": (True, lambda x: 1 <= x <= 4, "Range of n should be [1, 4]"),
    "temperature": (False, lambda x: 0.0 <= x < 2.0, "Temperature should be in [0.0, 2.0)"),
    "top_p": (False, lambda x: 0.0 < x <= 1.0, "Range of top_p should be (0.0, 1.0]"),
    "repetition_penalty": (False, lambda x: x > 0.0, "Repetition_penalty should be greater than 0.0"),
    "presence_penalty": (False, lambda x: -2.0 <= x <= 2.0, "Presence_penalty should be in [-2.0, 2.0]"),
    "frequency_penalty": (False, lambda x: -2.0 <= x <= 2.0, "Frequency_penalty should be in [-2.0, 2.0]"),
}
"""Numeric parameters: name -> (integer?, accepts(value), Model Studio's message when not).
Model-independent bounds; a model's own limits (max output...) are checked further in."""

PARAMETER_MAXIMA: Final[dict[str, int]] = {"top_k": INT_MAX}
"""Upper bounds Model Studio states no text for (checked after ``PARAMETER_RANGES``)."""

COMPAT_CODES: Final = {
    "invalid_api_key": "InvalidApiKey",
    "invalid_parameter_error": "InvalidParameter",
    "invalid_request_error": "InvalidParameter",
    "data_inspection_failed": "DataInspectionFailed",
    "limit_requests": "Throttling.RateQuota",
    "insufficient_quota": "Throttling.AllocationQuota",
    "access_denied": "AccessDenied",
}
"""Compatible-mode error codes (an OpenAI-compatible upstream's) to native ones."""

STATUS_CODES: Final = {
    401: "InvalidApiKey",
    403: "AccessDenied",
    404: "NotFound",
    408: "RequestTimeOut",
    429: "Throttling",
}
"""Native code for an upstream 4xx that gave none (else ``InvalidParameter``)."""
