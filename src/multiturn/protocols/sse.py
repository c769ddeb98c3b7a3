"""Server-Sent Events: framing helpers for what we send, an incremental parser for what we read.

The parser follows the WHATWG event-stream rules, as the official SDKs apply them: lines end
with CR, LF or CRLF (a CRLF split across two reads is still one line end); lines starting with
``:`` are comments; ``field: value`` loses at most one space after the colon; several ``data``
lines of one event are joined with ``\\n``; a blank line dispatches the event. Fields other than
``event``, ``data``, ``id`` and ``retry`` (DashScope's ``status``, say) are kept in ``extra``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DONE = b"data: [DONE]\n\n"
"""The OpenAI end-of-stream event."""

_LINE_END = re.compile(rb"\r\n|\r|\n")


def data_event(payload: bytes) -> bytes:
    """Frame one JSON payload (which must not contain a line break) as a ``data:`` event."""
    return b"data: " + payload + b"\n\n"


@dataclass(frozen=True, slots=True)
class SSEEvent:
    """One dispatched event. ``id`` is the last event id seen so far on the stream (per the
    spec it persists across events); ``extra`` holds non-standard fields in arrival order."""

    data: str = ""
    event: str | None = None
    id: str | None = None
    retry: int | None = None
    extra: tuple[tuple[str, str], ...] = ()


class SSEParser:
    """Incremental event-stream parser: ``feed`` it bytes as they arrive, get complete events.

    >>> p = SSEParser()
    >>> p.feed(b"event: result\\ndata: {\\"a\\"") + p.feed(b": 1}\\n\\n")
    [SSEEvent(data='{"a": 1}', event='result', id=None, retry=None, extra=())]
    """

    __slots__ = ("_data", "_event", "_extra", "_has_fields", "_last_id", "_partial", "_retry", "_skip_lf", "_started")

    def __init__(self) -> None:
        self._partial: list[bytes] = []  # pieces of the unterminated last line
        self._skip_lf = False  # the previous read ended with CR: a leading LF belongs to it
        self._started = False  # a leading BOM has been dealt with
        self._data: list[str] = []
        self._event: str | None = None
        self._retry: int | None = None
        self._extra: list[tuple[str, str]] = []
        self._has_fields = False
        self._last_id: str | None = None

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Consume ``chunk`` and return the events it completed (often none, sometimes many)."""
        if not chunk:
            return []
        if self._skip_lf:
            self._skip_lf = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
                if not chunk:
                    return []
        if not self._started:
            if not self._partial and len(chunk) < 3 and b"\xef\xbb\xbf".startswith(chunk):
                self._partial.append(chunk)  # maybe the start of a BOM: wait for more
                return []
            self._started = True
            if self._partial:
                chunk = b"".join(self._partial) + chunk
                self._partial.clear()
            if chunk.startswith(b"\xef\xbb\xbf"):
                chunk = chunk[3:]
        lines = _LINE_END.split(chunk)
        if len(lines) == 1:
            self._partial.append(chunk)
            return []
        if chunk[-1:] == b"\r":
            self._skip_lf = True
        events: list[SSEEvent] = []
        if self._partial:
            self._partial.append(lines[0])
            lines[0] = b"".join(self._partial)
            self._partial.clear()
        tail = lines.pop()
        if tail:
            self._partial.append(tail)
        for line in lines:
            event = self._line(line)
            if event is not None:
                events.append(event)
        return events

    def flush(self) -> list[SSEEvent]:
        """End of stream: complete an unterminated last line and dispatch a pending event.

        Lenient on purpose (the spec would drop an event not followed by a blank line): a
        truncated final event is better seen, and rejected by the JSON decoder, than lost.
        """
        events: list[SSEEvent] = []
        if self._partial:
            line = b"".join(self._partial)
            self._partial.clear()
            if not self._started and line.startswith(b"\xef\xbb\xbf"):
                line = line[3:]
            if line:
                self._line(line)
        self._started = True
        if self._has_fields:
            events.append(self._dispatch())
        return events

    def _line(self, raw: bytes) -> SSEEvent | None:
        if not raw:
            return self._dispatch() if self._has_fields else None
        if raw[:1] == b":":
            return None
        line = raw.decode("utf-8", "replace")
        name, colon, value = line.partition(":")
        if colon and value[:1] == " ":
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:
                self._last_id = value
        elif name == "retry":
            if value.isascii() and value.isdigit():
                self._retry = int(value)
        else:
            self._extra.append((name, value))
        self._has_fields = True
        return None

    def _dispatch(self) -> SSEEvent:
        event = SSEEvent(
            data="\n".join(self._data),
            event=self._event,
            id=self._last_id,
            retry=self._retry,
            extra=tuple(self._extra),
        )
        self._data.clear()
        self._event = None
        self._retry = None
        self._extra.clear()
        self._has_fields = False
        return event
