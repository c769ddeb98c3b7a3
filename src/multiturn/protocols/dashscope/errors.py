"""DashScope-native errors: one table from exceptions to HTTP status, native code and message.

``error_to_wire`` renders a failed request's body ``{request_id, code, message}``; ``classify``
is shared with the stream encoder's ``event:error``. Codes and texts are Model Studio's own.
"""

from __future__ import annotations

import math

import orjson

from multiturn.errors import (
    BackendError,
    ContextTooLong,
    InvalidInput,
    ModelError,
    ModelNotFound,
    NotFound,
    RateLimited,
    Unauthorized,
    UpstreamError,
)
from multiturn.protocols.dashscope import wire as w


class NativeInvalidInput(InvalidInput):
    """An ``InvalidInput`` with its own Model Studio code (``BadRequest.EmptyModel``...)."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


def _retry_after(seconds: float | None) -> dict[str, str]:
    return {"retry-after": str(max(1, math.ceil(seconds or 1)))}


_CODE_STATUS: dict[str, int] = {
    "InvalidApiKey": 401,
    "AccessDenied": 403,
    "Throttling.RateQuota": 429,
    "Throttling.AllocationQuota": 429,
}


def classify(exc: BaseException) -> tuple[int, str, str, dict[str, str]]:
    """(HTTP status, native code, message, extra headers) for any exception."""
    if isinstance(exc, NativeInvalidInput):
        return 400, exc.code, exc.message, {}
    if isinstance(exc, ContextTooLong):
        return 400, "InvalidParameter", f"Range of input length should be [1, {exc.limit}]", {}
    if isinstance(exc, InvalidInput):  # UnsupportedContent too
        return 400, "InvalidParameter", exc.message, {}
    if isinstance(exc, ModelNotFound):
        return 400, "InvalidParameter", w.MODEL_NOT_EXIST, {}
    if isinstance(exc, NotFound):
        return 404, "NotFound", exc.message, {}
    if isinstance(exc, Unauthorized):
        return 401, "InvalidApiKey", w.INVALID_API_KEY, {}
    if isinstance(exc, RateLimited):
        return 429, "Throttling.RateQuota", w.RATE_LIMITED, _retry_after(exc.retry_after)
    if isinstance(exc, UpstreamError):
        status = exc.status
        if status is not None and 400 <= status < 500:
            code = w.COMPAT_CODES.get(exc.code or "", exc.code) or w.STATUS_CODES.get(status, "InvalidParameter")
            return status, code, exc.message, _retry_after(None) if status == 429 else {}
        known = w.COMPAT_CODES.get(exc.code or "")
        if known is not None:  # e.g. an upstream's mid-stream data_inspection_failed keeps its meaning
            return _CODE_STATUS.get(known, 400), known, exc.message, {}
        if exc.code == "timeout":
            return 504, "RequestTimeOut", exc.message, {}
        return 502, "InternalError", exc.message, {}
    if isinstance(exc, ModelError):
        return 503, "ModelUnavailable", exc.message, {}
    if isinstance(exc, BackendError):
        return 500, "InternalError", exc.message, {}
    return 500, "InternalError", w.INTERNAL_ERROR, {}


def error_to_wire(exc: Exception, request_id: str) -> tuple[int, bytes, dict[str, str]]:
    """(HTTP status, JSON body ``{request_id, code, message}``, headers) for a failed request."""
    status, code, message, headers = classify(exc)
    body = orjson.dumps({"request_id": request_id, "code": code, "message": message})
    return status, body, {"content-type": "application/json", **headers}
