"""Errors on the wire: each path speaks its own protocol's error shape.

The status code is chosen in each protocol's ``error_to_wire``; this module only picks the
protocol by path and turns the triple into a response.
"""

from __future__ import annotations

import logging

from starlette.responses import Response

from ..errors import MultiturnError
from ..protocols.dashscope import translate as dashscope
from ..protocols.openai_chat import translate as openai_chat
from .gateway import PayloadTooLarge

NATIVE_PREFIX = "/api/"
log = logging.getLogger(__name__)


def render_error(path: str, exc: Exception, request_id: str) -> tuple[int, bytes, dict[str, str]]:
    if path.startswith(NATIVE_PREFIX):
        status, body, headers = dashscope.error_to_wire(exc, request_id)
    else:
        status, body, headers = openai_chat.error_to_wire(exc, request_id)
    if isinstance(exc, PayloadTooLarge):
        status = PayloadTooLarge.status
    return status, body, headers


def error_response(path: str, exc: Exception, request_id: str) -> Response:
    if not isinstance(exc, MultiturnError):  # a bug, not a bad request: keep the traceback in the log
        log.error("unexpected error on %s (request %s)", path, request_id, exc_info=exc)
    status, body, headers = render_error(path, exc, request_id)
    if status >= 500 and isinstance(exc, MultiturnError):  # the client sees a generic message: say what it was
        log.warning("%s on %s (request %s): %s", type(exc).__name__, path, request_id, exc)
    return Response(body, status_code=status, headers=headers, media_type="application/json")
