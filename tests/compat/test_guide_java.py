"""The guide's three Java examples through the JDK's own ``java.net.http.HttpClient``, against the gateway.

The guide's Java uses the DashScope Java SDK, which is not reachable here (no Maven registry), so
``java/`` sends the same request bodies with the JDK client (``java/DashScopeHttp.java``) in its
DEFAULT configuration: HTTP/2 preferred, which on ``http://`` offers an h2c upgrade on every
request, body included. ``test_jdk_client_offers_h2c_upgrade`` pins that premise; the others show
the gateway answering such requests over HTTP/1.1 with the whole body read
(``multiturn.server.upgrade``; stock uvicorn with httptools handed the app an empty body).

The sources are compiled once per module with ``javac -Xlint:all -Werror`` into a temporary
directory. A missing ``javac`` or ``java`` fails the module: the JDK is part of the test machine.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from support.serve import GATEWAY_KEY, Server

JAVA_DIR = Path(__file__).with_name("java")
JAVA_TIMEOUT = 300.0
HTTP_1_1_OK = "HTTP HTTP_1_1 200"  # DashScopeHttp prints "HTTP <version> <status>" per response
PHONE_ANSWERS = ["6.5-inch", "4K"]


@dataclass(frozen=True)
class Jdk:
    java: str
    classes: Path


@dataclass(frozen=True)
class Run:
    stdout: str
    stderr: str


@pytest.fixture(scope="module")
def jdk(tmp_path_factory: pytest.TempPathFactory) -> Jdk:
    javac, java = shutil.which("javac"), shutil.which("java")
    if javac is None or java is None:
        pytest.fail("the JDK (javac and java) is not installed: the guide's Java examples cannot run")
    classes = tmp_path_factory.mktemp("java-classes")
    sources = sorted(str(p) for p in JAVA_DIR.glob("*.java"))
    result = subprocess.run(
        [javac, "-Xlint:all", "-Werror", "-d", str(classes), *sources],
        env=_java_env(),
        capture_output=True,
        text=True,
        timeout=JAVA_TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, f"javac failed:\n{result.stdout}\n{result.stderr}"
    return Jdk(java, classes)


def _java_env(**more: str) -> dict[str, str]:
    # No JAVA_TOOL_OPTIONS and the like: the JVM announces them on stderr, which a clean run leaves empty.
    drop = ("MULTITURN_", "DASHSCOPE_", "JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS", "JDK_JAVA_OPTIONS")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(more)
    return env


def run_java(jdk: Jdk, main: str, base_url: str, key: str, stdin: str = "") -> Run:
    result = subprocess.run(
        [jdk.java, "-cp", str(jdk.classes), main],
        env=_java_env(MULTITURN_BASE_URL=base_url, DASHSCOPE_API_KEY=key),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=JAVA_TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, f"{main} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return Run(result.stdout, result.stderr)


def statuses(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("HTTP ")]


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
    run = run_java(jdk, "TextMultiTurn", f"http://127.0.0.1:{capture.port}/api/v1", "sk-capture", "Hello\nexit\n")

    assert "Model output: captured" in run.stdout and run.stderr == ""
    request_line, *lines = capture.head.decode().split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    assert request_line == "POST /api/v1/services/aigc/text-generation/generation HTTP/1.1"
    assert headers["upgrade"] == "h2c"
    assert headers["connection"] == "Upgrade, HTTP2-Settings"
    assert headers["http2-settings"]
    assert json.loads(capture.body)["input"]["messages"][-1] == {"role": "user", "content": "Hello"}


# --- text multi-turn on the embedded model ------------------------------------------------------


@pytest.mark.model
def test_java_text_multi_turn_on_embedded_model(jdk: Jdk, embedded: Server) -> None:
    run = run_java(jdk, "TextMultiTurn", embedded.native, embedded.api_key, "\n".join([*PHONE_ANSWERS, "exit"]) + "\n")

    assert run.stderr == ""
    assert statuses(run.stdout) == [HTTP_1_1_OK] * len(PHONE_ANSWERS)
    messages = json.loads(run.stdout.rsplit("MESSAGES ", 1)[1])
    assert messages[0] == {"role": "system", "content": "You are a helpful assistant."}
    turns = messages[1:]
    assert [m["role"] for m in turns] == ["user", "assistant"] * len(PHONE_ANSWERS)
    assert [m["content"] for m in turns[::2]] == PHONE_ANSWERS
    assert all(isinstance(m["content"], str) and m["content"].strip() for m in turns[1::2])
    assert run.stdout.count("Model output: ") == len(PHONE_ANSWERS)


# --- thinking stream: through an upstream that thinks, refused on the embedded model ------------


def test_java_thinking_stream_through_gateway(jdk: Jdk, gateway: Server) -> None:
    run = run_java(jdk, "ThinkingStream", gateway.native, GATEWAY_KEY)

    assert run.stderr == ""
    assert statuses(run.stdout) == [HTTP_1_1_OK]
    # What the fake upstream answers (tests/support/fake_upstream.py), from the last user text.
    reasoning, content = json.loads(run.stdout.rsplit("RESULT ", 1)[1])
    assert (reasoning, content) == ("The user said: Who are you. I will answer.", "You said: Who are you")
    assert run.stdout.startswith(
        f"{HTTP_1_1_OK}\n====================Thinking Process====================\n{reasoning}"
        f"\n====================Complete Response====================\n{content}\n"
    )


@pytest.mark.model
def test_java_thinking_stream_on_embedded_model_is_refused(jdk: Jdk, embedded: Server) -> None:
    run = run_java(jdk, "ThinkingStream", embedded.native, embedded.api_key)

    assert statuses(run.stdout) == ["HTTP HTTP_1_1 400"]
    assert run.stderr.startswith("An exception occurred: HTTP 400: ")
    error = json.loads(run.stderr.split("HTTP 400: ", 1)[1])
    assert error["code"] == "InvalidParameter"
    assert error["message"].startswith("enable_thinking: the model 'qwen-plus' runs on the embedded"), error


# --- multimodal: through a vision upstream, refused on the embedded model -----------------------


def test_java_multimodal_through_gateway(jdk: Jdk, gateway: Server) -> None:
    run = run_java(jdk, "MultiModal", gateway.native, GATEWAY_KEY)

    assert run.stderr == ""
    assert run.stdout == (
        f"{HTTP_1_1_OK}\nFirst round output: I see 1 image. You said: What products are shown in the image?\n"
        f"{HTTP_1_1_OK}\nSecond round output: You said: What style are they?\n"
    )


@pytest.mark.model
def test_java_multimodal_on_embedded_model_is_refused(jdk: Jdk, embedded: Server) -> None:
    run = run_java(jdk, "MultiModal", embedded.native, embedded.api_key)

    assert run.stderr == ""
    status, message = run.stdout.splitlines()
    assert status == "HTTP HTTP_1_1 400"
    error = json.loads(message.removeprefix("HTTP 400: "))
    assert error["code"] == "InvalidParameter"
    # It names the model, says it is served offline, and how to map a vision upstream.
    assert error["message"].startswith("the model 'qwen3-vl-plus' does not accept image input"), error
    assert "embedded model" in error["message"] and "[models.qwen3-vl-plus]" in error["message"], error
