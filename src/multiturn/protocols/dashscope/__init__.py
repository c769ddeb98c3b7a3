"""DashScope native protocol: ``/api/v1/services/aigc/{text,multimodal}-generation/generation``.

``wire`` describes the JSON shapes (pydantic, for ``/openapi.json``); ``translate`` converts
request bytes to canonical types and canonical results to response bytes, SSE events and
error bodies. Pure: no I/O.
"""

from multiturn.protocols.dashscope.translate import (
    EventEncoder,
    NativeInvalidInput,
    NativeOptions,
    completion_to_response,
    error_to_wire,
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
