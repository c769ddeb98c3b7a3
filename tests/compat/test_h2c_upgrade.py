"""HTTP/1.1 requests that offer an h2c upgrade are served as plain HTTP/1.1, body and all.

What the JDK's ``HttpClient`` sends by default on ``http://`` (``test_jdk_client_offers_h2c_upgrade``
pins it with the real client; test_guide.py runs the guide's Java samples through it):
``Connection: Upgrade, HTTP2-Settings``, ``Upgrade: h2c``, ``HTTP2-Settings``, and the body.
Written here byte by byte on raw sockets to the ``gateway`` server (the fake upstream behind it
answers ``You said: <text>``), with the framings a client may choose: the body in the head's
packet or after it, ``content-length`` or chunked, several requests on one keep-alive
connection, a pipelined pair in one packet. The answer must be ``HTTP/1.1 200`` (never ``101``)
with the model's reply to the text that was sent.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from support.serve import GATEWAY_KEY, Server

from .java_runner import Jdk, run_java

H2C_HEADERS = (
    b"Connection: Upgrade, HTTP2-Settings\r\n"
    b"Upgrade: h2c\r\n"
    b"HTTP2-Settings: AAEAAEAAAAIAAAAAAAMAAAAAAAQBAAAAAAUAAEAAAAYABgAA\r\n"
)

ROUTES = {
    "openai": "/v1/chat/completions",
    "compatible": "/compatible-mode/v1/chat/completions",
    "dashscope-text": "/api/v1/services/aigc/text-generation/generation",
    "dashscope-multimodal": "/api/v1/services/aigc/multimodal-generation/generation",
}


def chat_body(route: str, text: str, stream: bool) -> dict[str, Any]:
    if route.startswith("/api/v1/"):
        content: Any = [{"text": text}] if "multimodal" in route else text
        parameters: dict[str, Any] = {"result_format": "message"} | ({"incremental_output": True} if stream else {})
        return {
            "model": "qwen-plus",
            "input": {"messages": [{"role": "user", "content": content}]},
            "parameters": parameters,
        }
    return {"model": "qwen-plus", "messages": [{"role": "user", "content": text}], "stream": stream}


def request_head(server: Server, route: str, stream: bool, framing: str) -> bytes:
    sse = b"X-DashScope-SSE: enable\r\n" if stream and route.startswith("/api/v1/") else b""
    return (
        b"POST %b HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n%bAuthorization: Bearer %b\r\n"
        b"Content-Type: application/json\r\n%b%b\r\n"
    ) % (route.encode(), server.port, H2C_HEADERS, GATEWAY_KEY.encode(), sse, framing.encode())


def request_bytes(server: Server, route: str, text: str, stream: bool, chunked: bool = False) -> tuple[bytes, bytes]:
    """(head, body) of one upgrade-offering request."""
    body = json.dumps(chat_body(route, text, stream)).encode()
    if chunked:
        half = len(body) // 2
        parts = (body[:half], body[half:])
        framed = b"".join(b"%x\r\n%b\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"
        return request_head(server, route, stream, "Transfer-Encoding: chunked\r\n"), framed
    return request_head(server, route, stream, f"Content-Length: {len(body)}\r\n"), body


class Reader:
    """Reads HTTP/1.1 responses one after another from a socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        assert data, f"the server closed the connection; unread: {self.buffer!r}"
        self.buffer += data

    def _take(self, n: int) -> bytes:
        while len(self.buffer) < n:
            self._fill()
        out, self.buffer = self.buffer[:n], self.buffer[n:]
        return out

    def _line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            self._fill()
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        return line

    def response(self) -> tuple[str, dict[str, str], bytes]:
        status = self._line().decode()
        headers: dict[str, str] = {}
        while line := self._line():
            name, _, value = line.decode().partition(":")
            headers[name.strip().lower()] = value.strip()
        if headers.get("transfer-encoding") == "chunked":
            body = b""
            while size := int(self._line(), 16):
                body += self._take(size)
                assert self._take(2) == b"\r\n"
            assert self._line() == b""
        else:
            body = self._take(int(headers["content-length"]))
        return status, headers, body


def answer_text(route: str, stream: bool, body: bytes) -> str:
    """The model's text in a response body, streamed or not, of either protocol."""
    if not stream:
        doc = json.loads(body)
        if route.startswith("/api/v1/"):
            content = doc["output"]["choices"][0]["message"]["content"]
            return content if isinstance(content, str) else "".join(p["text"] for p in content)
        return str(doc["choices"][0]["message"]["content"])
    payloads = [line[5:].strip() for line in body.decode().splitlines() if line.startswith("data:")]
    text = []
    for payload in payloads:
        if payload == "[DONE]":
            continue
        event = json.loads(payload)
        if route.startswith("/api/v1/"):
            content = event["output"]["choices"][0]["message"]["content"]
            text.append(content if isinstance(content, str) else "".join(p["text"] for p in content))
        elif event["choices"]:
            text.append(event["choices"][0]["delta"].get("content") or "")
    return "".join(text)


@pytest.fixture
def connection(gateway: Server) -> Iterator[tuple[socket.socket, Reader]]:
    sock = socket.create_connection(("127.0.0.1", gateway.port), timeout=30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # the head and body leave as separate packets
    with sock:
        yield sock, Reader(sock)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("route", list(ROUTES.values()), ids=list(ROUTES))
@pytest.mark.parametrize("together", [True, False], ids=["one-packet", "head-then-body"])
def test_upgrade_offer_is_answered_over_http_1_1(
    gateway: Server, connection: tuple[socket.socket, Reader], route: str, stream: bool, together: bool
) -> None:
    sock, reader = connection
    head, body = request_bytes(gateway, route, "Hello over h2c", stream)
    if together:
        sock.sendall(head + body)
    else:
        sock.sendall(head)
        sock.sendall(body)

    status, headers, answer = reader.response()

    assert status == "HTTP/1.1 200 OK", (status, answer)
    assert "upgrade" not in headers
    assert answer_text(route, stream, answer) == "You said: Hello over h2c"


def test_chunked_body_with_upgrade_offer(gateway: Server, connection: tuple[socket.socket, Reader]) -> None:
    sock, reader = connection
    head, body = request_bytes(gateway, ROUTES["dashscope-text"], "chunked body", False, chunked=True)
    sock.sendall(head)
    sock.sendall(body)

    status, _, answer = reader.response()

    assert status == "HTTP/1.1 200 OK", answer
    assert answer_text(ROUTES["dashscope-text"], False, answer) == "You said: chunked body"


def test_every_request_of_a_keep_alive_connection_may_offer_the_upgrade(
    gateway: Server, connection: tuple[socket.socket, Reader]
) -> None:
    """The JDK client offers h2c again on each request of a connection the server kept open."""
    sock, reader = connection
    answers = []
    for i, route in enumerate(ROUTES.values()):
        head, body = request_bytes(gateway, route, f"turn {i}", stream=i % 2 == 1)
        sock.sendall(head + body)
        status, headers, answer = reader.response()
        assert status == "HTTP/1.1 200 OK", answer
        assert headers.get("connection") != "close"
        answers.append(answer_text(route, i % 2 == 1, answer))

    assert answers == [f"You said: turn {i}" for i in range(len(ROUTES))]


def test_pipelined_upgrade_offers_in_one_packet(gateway: Server, connection: tuple[socket.socket, Reader]) -> None:
    sock, reader = connection
    route = ROUTES["openai"]
    first, second = (b"".join(request_bytes(gateway, route, text, False)) for text in ("first", "second"))
    sock.sendall(first + second)

    replies = [reader.response() for _ in range(2)]

    assert [status for status, _, _ in replies] == ["HTTP/1.1 200 OK"] * 2
    assert [answer_text(route, False, body) for _, _, body in replies] == ["You said: first", "You said: second"]


def test_upgrade_offer_without_a_body(gateway: Server, connection: tuple[socket.socket, Reader]) -> None:
    """A GET with the offer (curl --http2 on http://) is answered over HTTP/1.1 too. Stock uvicorn
    served this one already (no body to lose); it guards the replay, which every offer now takes."""
    sock, reader = connection
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n%b\r\n" % (gateway.port, H2C_HEADERS))

    status, _, body = reader.response()

    assert status == "HTTP/1.1 200 OK", body


@pytest.mark.parametrize("offer", [b"", H2C_HEADERS], ids=["plain", "with-offer"])
def test_connect_is_answered_once(gateway: Server, connection: tuple[socket.socket, Reader], offer: bytes) -> None:
    """llhttp pauses on CONNECT as on an upgrade, whatever its headers: the replay must not loop on it."""
    sock, reader = connection
    sock.sendall(b"CONNECT /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n%b\r\n" % offer)
    sock.settimeout(10)

    status, _, _ = reader.response()

    assert status.startswith("HTTP/1.1 4"), status
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as probe:
        probe.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert Reader(probe).response()[0] == "HTTP/1.1 200 OK"


# --- the premise: the JDK client's default offers h2c ---------------------------------------------


class CaptureServer:
    """Reads one request (head and ``content-length`` body), answers a DashScope message, closes."""

    ANSWER = json.dumps(
        {
            "output": {"choices": [{"finish_reason": "stop", "message": {"role": "assistant", "content": "captured"}}]},
            "usage": {"input_tokens": 1, "output_tokens": 1, "total_tokens": 2},
            "request_id": "capture",
        }
    ).encode()

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.head = b""
        self.body = b""
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        with conn:
            conn.settimeout(60)
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            self.head, _, self.body = data.partition(b"\r\n\r\n")
            length = next(
                int(line.split(b":", 1)[1])
                for line in self.head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            while len(self.body) < length:
                self.body += conn.recv(65536)
            conn.sendall(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n"
                b"content-length: %d\r\n\r\n%b" % (len(self.ANSWER), self.ANSWER)
            )


@pytest.fixture
def capture() -> Iterator[CaptureServer]:
    server = CaptureServer()
    server.thread.start()
    try:
        yield server
    finally:
        server.sock.close()
        server.thread.join(timeout=10)


def test_jdk_client_offers_h2c_upgrade(jdk: Jdk, capture: CaptureServer) -> None:
    """The premise: the JDK's client, in its default configuration, offers h2c with the body."""
    run = run_java(jdk, "TextMultiTurn", f"http://127.0.0.1:{capture.port}/api/v1", "sk-capture", "Hello\nexit\n")

    assert "Model output: captured" in run.stdout and run.stderr == ""
    request_line, *lines = capture.head.decode().split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    assert request_line == "POST /api/v1/services/aigc/text-generation/generation HTTP/1.1"
    assert headers["upgrade"] == "h2c"
    assert headers["connection"] == "Upgrade, HTTP2-Settings"
    assert headers["http2-settings"]
    assert json.loads(capture.body)["input"]["messages"][-1] == {"role": "user", "content": "Hello"}
