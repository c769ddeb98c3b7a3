"""Errors on the wire: each path speaks its own protocol's error shape.

The status code is chosen in each protocol's ``error_to_wire``; this module only picks the
protocol by path, turns the triple into a response, and decides what of an upstream's failure a
client may see (``public``).

An upstream failure that is not the client's doing (unreachable, a timeout, a 5xx, a broken
stream, an upstream 401/403/404: the gateway's own key or configuration) reaches the client as a
generic message naming the request id, with a 502 (504 for a timeout); the detail (the upstream
URL, the HTTP library's words, the upstream's body) goes to the server log, one line with the
same request id. What the client sent wrong stays useful: an upstream 400, 413 or 422 (and a
mid-stream error whose code says the content was refused) keeps the upstream's message and
status, as do ``ContextTooLong`` and an upstream 429 (``RateLimited``, with ``retry-after``).
"""

from __future__ import annotations

import logging
from typing import TypeVar

from starlette.responses import Response

from ..errors import MultiturnError, UpstreamError
from ..protocols.dashscope import translate as dashscope
from ..protocols.openai_chat import translate as openai_chat
from .gateway import PayloadTooLarge, UnsupportedMediaType, current_exchange

NATIVE_PREFIX = "/api/"
UPSTREAM_FAILED = "the upstream model service failed (request {})"
UPSTREAM_TIMEOUT = "the upstream model service did not answer in time (request {})"
CLIENT_STATUSES = frozenset({400, 413, 422})
"""Upstream statuses that are about the request the client sent: passed through."""
CLIENT_CODES = frozenset({"data_inspection_failed", "invalid_parameter_error", "invalid_request_error"})
"""Codes of an upstream's mid-stream error event that are about the request: passed through."""
log = logging.getLogger(__name__)
E = TypeVar("E", bound=BaseException)


def public(exc: E, request_id: str) -> E | UpstreamError:
    """``exc`` as the client may see it: an upstream failure that is not the client's doing
    becomes a generic ``UpstreamError`` naming the request (``status`` None: a 502, or a 504
    with ``code`` ``timeout``); anything else is returned as it is."""
    if not isinstance(exc, UpstreamError) or clients_fault(exc):
        return exc
    if exc.code == "timeout":
        return UpstreamError(UPSTREAM_TIMEOUT.format(request_id), code="timeout")
    return UpstreamError(UPSTREAM_FAILED.format(request_id), code="upstream_error")


def shown(exc: E) -> E | UpstreamError:
    """``public(exc)`` for the request being served (``gateway.Exchange``)."""
    exchange = current_exchange()
    return public(exc, exchange.request_id if exchange is not None else "-")


def clients_fault(exc: UpstreamError) -> bool:
    if exc.status is None:
        return exc.code in CLIENT_CODES
    return exc.status in CLIENT_STATUSES


def log_failure(path: str, exc: BaseException, request_id: str) -> None:
    """One log line with the detail the client does not see."""
    cause = exc.__cause__
    detail = f"{exc} ({type(cause).__name__}: {cause})" if cause is not None and str(cause) not in str(exc) else exc
    log.warning("%s on %s (request %s): %s", type(exc).__name__, path, request_id, detail)


def render_error(path: str, exc: Exception, request_id: str) -> tuple[int, bytes, dict[str, str]]:
    shown = public(exc, request_id)
    if path.startswith(NATIVE_PREFIX):
        status, body, headers = dashscope.error_to_wire(shown, request_id)
    else:
        status, body, headers = openai_chat.error_to_wire(shown, request_id)
    if isinstance(exc, PayloadTooLarge | UnsupportedMediaType):
        status = exc.status
    return status, body, headers


def error_response(path: str, exc: Exception, request_id: str) -> Response:
    if not isinstance(exc, MultiturnError):  # a bug, not a bad request: keep the traceback in the log
        log.error("unexpected error on %s (request %s)", path, request_id, exc_info=exc)
    status, body, headers = render_error(path, exc, request_id)
    if status >= 500 and isinstance(exc, MultiturnError):  # the client sees a generic message: say what it was
        log_failure(path, exc, request_id)
    return Response(body, status_code=status, headers=headers, media_type="application/json")
