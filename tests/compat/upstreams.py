"""Upstreams for the compat suite, beside tests/support/fake_upstream.py.

- ``PatientFakeUpstream``: the fake upstream with a keep-alive longer than the gateway's
  connection pool keeps idle connections (30 s). With uvicorn's default (5 s) the fake may close
  an idle connection at the moment the gateway reuses it; the gateway retries such a reset
  (``test_probes.py::test_reset_of_a_pooled_connection_is_retried`` pins that), but the other
  tests should not depend on the race, so their fake waits longer.
- ``ResettingUpstream``: a raw-socket OpenAI-compatible upstream that answers the first request
  of each connection (``pong``, as a stream or one JSON body) and resets the connection (RST)
  when a second request arrives on it: what a keep-alive race with any upstream looks like to
  the gateway.
"""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import threading

from support.fake_upstream import FakeUpstream

KEEP_ALIVE = 120  # seconds, longer than the gateway pool's keepalive_timeout (30 s)


def PatientFakeUpstream() -> FakeUpstream:
    """The fake upstream with a keep-alive the gateway's pool never outlives."""
    return FakeUpstream(keep_alive=KEEP_ALIVE)


_CHUNK = (
    b'data: {"id":"chatcmpl-r","object":"chat.completion.chunk","created":1,"model":"m",'
    b'"choices":[{"index":0,"delta":%s,"finish_reason":%s,"logprobs":null}],"usage":null}\n\n'
)
_SSE_BODY = (
    _CHUNK % (b'{"role":"assistant","content":""}', b"null")
    + _CHUNK % (b'{"content":"pong"}', b"null")
    + _CHUNK % (b'{"content":""}', b'"stop"')
    + b'data: {"id":"chatcmpl-r","object":"chat.completion.chunk","created":1,"model":"m","choices":[],'
    b'"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}\n\n' + b"data: [DONE]\n\n"
)
_JSON_BODY = (
    b'{"id":"chatcmpl-r","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,'
    b'"message":{"role":"assistant","content":"pong"},"finish_reason":"stop","logprobs":null}],'
    b'"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}'
)


def _response(stream: bool) -> bytes:
    kind, body = (b"text/event-stream", _SSE_BODY) if stream else (b"application/json", _JSON_BODY)
    head = b"HTTP/1.1 200 OK\r\ncontent-type: %b\r\nconnection: keep-alive\r\ncontent-length: %d\r\n\r\n"
    return head % (kind, len(body)) + body


class ResettingUpstream:
    """Answers ``pong`` to the first request of a connection, resets the connection on the next.

    ``connections`` counts accepted connections, ``resets`` the connections reset.
    """

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self.port = self._sock.getsockname()[1]
        self.connections = 0
        self.resets = 0
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> ResettingUpstream:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closed.set()
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
        self._sock.close()
        self._thread.join(timeout=10)

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(60)
            try:
                body = _read_request(conn)
                if body is None:
                    return
                conn.sendall(_response(bool(json.loads(body).get("stream"))))
                if conn.recv(1):  # a second request on this connection: reset it
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.resets += 1
            except OSError:
                return


def _read_request(conn: socket.socket) -> bytes | None:
    """Read one request (head and ``content-length`` body) and return its body; None if the
    peer left first."""
    data = b""
    while b"\r\n\r\n" not in data:
        piece = conn.recv(65536)
        if not piece:
            return None
        data += piece
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        piece = conn.recv(65536)
        if not piece:
            return None
        body += piece
    return body
