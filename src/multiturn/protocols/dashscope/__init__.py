"""DashScope native protocol: ``/api/v1/services/aigc/{text,multimodal}-generation/generation``.

``wire`` describes the JSON shapes (pydantic, for ``/openapi.json``); ``translate`` converts
request bytes to canonical types and canonical results to response bytes and SSE events;
``errors`` maps exceptions to native statuses, codes and bodies. Pure: no I/O.
"""

from multiturn.protocols.dashscope.errors import NativeInvalidInput, error_to_wire
from multiturn.protocols.dashscope.translate import (
    EventEncoder,
    NativeOptions,
    completion_to_response,
    parse_request,
    wants_stream,
)

__all__ = [
    "EventEncoder",
    "NativeInvalidInput",
    "NativeOptions",
    "completion_to_response",
    "error_to_wire",
    "parse_request",
    "wants_stream",
]
