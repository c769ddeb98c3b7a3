"""Canonical errors -> OpenAI error bodies, statuses and headers (Model Studio's compat codes).

One table, two renderings: ``error_to_wire`` for an HTTP error answer, ``stream_error`` for the
``data: {"error": ...}`` event that reports a failure once a stream has started (the openai SDK
raises ``APIError`` on it). Messages of unexpected exceptions are never shown: they may carry
paths, SQL or secrets.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import orjson

from ...errors import (
    BackendError,
    ContextTooLong,
    InvalidInput,
    ModelError,
    ModelIntegrityError,
    ModelNotFound,
    ModelUnavailable,
    MultiturnError,
    NotFound,
    RateLimited,
    StoreError,
    Unauthorized,
    UpstreamError,
)

INTERNAL_MESSAGE = "An internal error has occurred, please try again later or contact service support."
BAD_KEY_MESSAGE = "Incorrect API key provided."
RATE_LIMIT_MESSAGE = "You have exceeded your current request limit."
_NO_RETRY = {"x-should-retry": "false"}


@dataclass(frozen=True, slots=True)
class WireError:
    status: int
    message: str
    type: str
    code: str | None
    param: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def detail(self) -> dict[str, str | None]:
        return {"message": self.message, "type": self.type, "param": self.param, "code": self.code}


def describe(exc: BaseException) -> WireError:
    """The status, type, code, message, param and headers ``exc`` is reported with."""
    if isinstance(exc, InvalidInput):
        message = exc.message
        if isinstance(exc, ContextTooLong) and "Range of input length should be" not in message:
            message = f"Range of input length should be [1, {exc.limit}]: {message}"
        code = getattr(exc, "code", "invalid_parameter_error")
        kind = "invalid_request_error"
        return WireError(400, message, kind, code, getattr(exc, "param", None), dict(_NO_RETRY))
    if isinstance(exc, ModelNotFound):
        message = exc.message if exc.message.startswith("Model not exist") else f"Model not exist. {exc.message}"
        return WireError(404, message, "invalid_request_error", "model_not_found", "model", dict(_NO_RETRY))
    if isinstance(exc, NotFound):
        return WireError(404, exc.message, "invalid_request_error", "not_found", None, dict(_NO_RETRY))
    if isinstance(exc, Unauthorized):
        return WireError(401, BAD_KEY_MESSAGE, "invalid_request_error", "invalid_api_key", None, dict(_NO_RETRY))
    if isinstance(exc, RateLimited):
        return WireError(
            429,
            exc.message or RATE_LIMIT_MESSAGE,
            "limit_requests",
            "limit_requests",
            None,
            _retry_headers(exc.retry_after),
        )
    if isinstance(exc, UpstreamError):
        return _upstream(exc)
    if isinstance(exc, ModelUnavailable):
        return WireError(503, exc.message, "internal_error", "model_unavailable", None, dict(_NO_RETRY))
    if isinstance(exc, ModelIntegrityError | ModelError):
        return WireError(500, exc.message, "internal_error", "internal_error", None, dict(_NO_RETRY))
    if isinstance(exc, StoreError):
        return WireError(500, INTERNAL_MESSAGE, "internal_error", "internal_error")
    if isinstance(exc, BackendError | MultiturnError):
        return WireError(500, exc.message, "internal_error", "internal_error")
    return WireError(500, INTERNAL_MESSAGE, "internal_error", "internal_error")


def _upstream(exc: UpstreamError) -> WireError:
    status = exc.status
    if status is not None and 400 <= status < 500:
        kind = "limit_requests" if status == 429 else "invalid_request_error"
        headers = {} if status in (408, 409, 429) else dict(_NO_RETRY)
        return WireError(status, exc.message, kind, exc.code or "upstream_error", None, headers)
    if exc.code == "timeout":  # the upstream did not answer (or went silent) in time
        return WireError(504, exc.message, "internal_error", "timeout")
    return WireError(502, exc.message, "internal_error", exc.code or "upstream_error")


def _retry_headers(retry_after: float | None) -> dict[str, str]:
    if retry_after is None or retry_after <= 0 or math.isnan(retry_after):
        return {"retry-after": "1"}
    return {"retry-after": str(max(1, math.ceil(retry_after))), "retry-after-ms": str(round(retry_after * 1000))}


def error_to_wire(exc: BaseException, request_id: str) -> tuple[int, bytes, dict[str, str]]:
    """HTTP status, JSON body ``{"error": {message, type, param, code}, "request_id"}`` and extra
    headers (``retry-after`` on 429, ``x-should-retry: false`` when a retry cannot help).
    The router adds ``x-request-id``."""
    err = describe(exc)
    return err.status, orjson.dumps({"error": err.detail(), "request_id": request_id}), err.headers


def stream_error(exc: BaseException) -> bytes:
    """The in-stream error event (``data: {"error": {...}}``); nothing may follow it."""
    return b"data: " + orjson.dumps({"error": describe(exc).detail()}) + b"\n\n"
