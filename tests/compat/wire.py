"""Raw HTTP for the conformance probes: exact status, headers and bytes, no SDK in between.

``http.client`` from the standard library: it neither retries nor decompresses nor parses SSE,
so what a test sees is what the server sent. Stream lines are timestamped on arrival, which
lets a test tell a stream that streams from one that was buffered.
"""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

TIMEOUT = 120.0


@dataclass
class Reply:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")


def _connect(url: str) -> tuple[http.client.HTTPConnection, str]:
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None, url
    return http.client.HTTPConnection(parts.hostname, parts.port, timeout=TIMEOUT), parts.path


def _encode(body: Any) -> bytes:
    return body if isinstance(body, bytes) else json.dumps(body).encode()


def request(
    method: str, url: str, body: Any = None, headers: dict[str, str] | None = None, key: str | None = "sk-any"
) -> Reply:
    conn, path = _connect(url)
    head = {"Content-Type": "application/json"} if body is not None else {}
    if key is not None:
        head["Authorization"] = f"Bearer {key}"
    head.update(headers or {})
    try:
        conn.request(method, path, None if body is None else _encode(body), head)
        response = conn.getresponse()
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    finally:
        conn.close()


def post(url: str, body: Any, headers: dict[str, str] | None = None, key: str | None = "sk-any") -> Reply:
    return request("POST", url, body, headers, key)


@dataclass
class Line:
    at: float  # time.monotonic() when the line arrived
    text: str


@dataclass
class Stream:
    """An open streaming response; iterate ``lines()`` and ``close()`` (or use ``with``)."""

    status: int
    headers: dict[str, str]
    started: float
    conn: http.client.HTTPConnection
    response: http.client.HTTPResponse
    seen: list[Line] = field(default_factory=list)

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")

    def lines(self) -> Iterator[Line]:
        """Each line as it arrives (without its line end); ends with the body."""
        while True:
            raw = self.response.readline()
            if not raw:
                return
            line = Line(time.monotonic(), raw.decode("utf-8").rstrip("\r\n"))
            self.seen.append(line)
            yield line

    def read_all(self) -> list[Line]:
        for _ in self.lines():
            pass
        return self.seen

    def close(self) -> None:
        """Leave: close the socket, as a client that stops reading does."""
        self.response.close()
        self.conn.close()

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_stream(url: str, body: Any, headers: dict[str, str] | None = None, key: str | None = "sk-any") -> Stream:
    conn, path = _connect(url)
    head = {"Content-Type": "application/json"}
    if key is not None:
        head["Authorization"] = f"Bearer {key}"
    head.update(headers or {})
    started = time.monotonic()
    conn.request("POST", path, _encode(body), head)
    response = conn.getresponse()
    return Stream(response.status, {k.lower(): v for k, v in response.getheaders()}, started, conn, response)


# --- event grouping -----------------------------------------------------------------------------


@dataclass
class Event:
    """One SSE event: its raw lines (comments included) and when its first line arrived."""

    at: float
    lines: list[str]

    def field(self, name: str) -> list[str]:
        """The values of ``name:`` lines, verbatim (no space stripping: the SDKs compare raw)."""
        prefix = f"{name}:"
        return [line[len(prefix) :] for line in self.lines if line.startswith(prefix)]

    @property
    def data(self) -> str:
        (value,) = self.field("data")
        return value


def events(lines: list[Line]) -> list[Event]:
    """Group lines into events at blank lines."""
    out: list[Event] = []
    current: list[Line] = []
    for line in [*lines, Line(0.0, "")]:
        if line.text == "":
            if current:
                out.append(Event(current[0].at, [x.text for x in current]))
            current = []
        else:
            current.append(line)
    return out


def openai_chunks(lines: list[Line]) -> tuple[list[dict[str, Any]], bool]:
    """The JSON chunks of an OpenAI stream and whether it ended with ``data: [DONE]`` (and
    nothing after it). Every event must be exactly one ``data: `` line."""
    chunks: list[dict[str, Any]] = []
    done = False
    for event in events(lines):
        assert len(event.lines) == 1 and event.lines[0].startswith("data: "), event.lines
        assert not done, f"an event after [DONE]: {event.lines}"
        payload = event.lines[0][len("data: ") :]
        if payload == "[DONE]":
            done = True
        else:
            chunks.append(json.loads(payload))
    return chunks, done


def native_events(lines: list[Line]) -> list[tuple[Event, dict[str, Any]]]:
    """Each DashScope event with its one-line ``data:`` JSON."""
    return [(event, json.loads(event.data)) for event in events(lines)]


def poll(check: Callable[[], bool], within: float) -> bool:
    """Whether ``check()`` becomes true within ``within`` seconds (polled every 20 ms)."""
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True
