"""Run ``multiturn serve`` as a real subprocess on an ephemeral port (the compat and reliability suites).

Each server gets its own SQLite file, data directory and a config file that does not exist,
so the user's configuration and conversations are never read; the model cache stays the
user's (where ``make test`` pulls the default model). stdout and stderr go to files (an
unread pipe would fill up and stall the server); the listen line is read from the stdout file
and the server is ready once ``/healthz`` answers, both polled with a deadline.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs

from multiturn import Settings
from multiturn.store import SQLStore

EXE = Path(sys.executable).with_name("multiturn")
START_TIMEOUT = 60.0
LISTENING = re.compile(r"multiturn serve listening on (http://127\.0\.0\.1:(\d+))")


def default_cache_dir() -> Path:
    explicit = os.environ.get("MULTITURN_CACHE_DIR")
    return Path(explicit) if explicit else platformdirs.user_cache_path("multiturn")


@dataclass
class Server:
    """One running ``multiturn serve``."""

    name: str
    proc: subprocess.Popen[bytes]
    base: str  # http://127.0.0.1:PORT
    port: int
    home: Path
    api_key: str  # what clients send (any non-empty key when the server has none configured)

    @property
    def compat(self) -> str:
        """The OpenAI-compatible base URL, Model Studio's path (the guide's ``base_url``)."""
        return f"{self.base}/compatible-mode/v1"

    @property
    def native(self) -> str:
        """The DashScope base URL (the guide's ``dashscope.base_http_api_url``)."""
        return f"{self.base}/api/v1"

    def log(self) -> str:
        return (self.home / "stderr.log").read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)


def start_serve(
    name: str,
    home: Path,
    *,
    models: dict[str, Any] | None = None,
    api_key: str | None = None,
    env: dict[str, str] | None = None,
) -> Server:
    """Start ``multiturn serve --port 0`` and wait until it answers ``/healthz``.

    ``models`` becomes ``MULTITURN_MODELS`` (it replaces the default alias table); ``api_key``
    is passed as ``--api-key``.
    """
    home.mkdir(parents=True, exist_ok=True)
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MULTITURN_")}
    environ.update(
        MULTITURN_DB=str(home / "gateway.db"),
        MULTITURN_DATA_DIR=str(home / "data"),
        MULTITURN_CONFIG=str(home / "absent-config.toml"),
        MULTITURN_CACHE_DIR=str(default_cache_dir()),
        PYTHONFAULTHANDLER="1",
    )
    if models is not None:
        environ["MULTITURN_MODELS"] = json.dumps(models)
    environ.update(env or {})
    args = [str(EXE), "serve", "--port", "0"]
    if api_key is not None:
        args += ["--api-key", api_key]
    stdout_path, stderr_path = home / "stdout.log", home / "stderr.log"
    with stdout_path.open("wb") as stdout, stderr_path.open("wb") as stderr:
        proc = subprocess.Popen(args, env=environ, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr)
    deadline = time.monotonic() + START_TIMEOUT
    match = None
    while match is None:
        match = LISTENING.search(stdout_path.read_text(errors="replace"))
        if match is None:
            _check_alive(proc, stderr_path, deadline, "print its listen line")
            time.sleep(0.05)  # polling the stdout file, bounded by the deadline above
    base, port = match.group(1), int(match.group(2))
    server = Server(name, proc, base, port, home, api_key or "sk-any")
    while not _healthy(port):
        _check_alive(proc, stderr_path, deadline, "answer /healthz")
        time.sleep(0.05)
    return server


@contextmanager
def serving(name: str, home: Path, **options: Any) -> Iterator[Server]:
    """``start_serve`` as a context: the server is stopped on exit."""
    server = start_serve(name, home, **options)
    try:
        yield server
    finally:
        server.stop()


def _check_alive(proc: subprocess.Popen[bytes], stderr: Path, deadline: float, what: str) -> None:
    if proc.poll() is not None:
        raise RuntimeError(f"multiturn serve exited ({proc.returncode}) before it could {what}:\n{stderr.read_text()}")
    if time.monotonic() > deadline:
        proc.kill()
        proc.wait(timeout=15)
        raise RuntimeError(f"multiturn serve did not {what} within {START_TIMEOUT} s:\n{stderr.read_text()}")


def _healthy(port: int) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", "/healthz")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


# --- the two gateways of the suite ----------------------------------------------------------

GATEWAY_KEY = "sk-compat-gateway"
"""The key the upstream-configured gateway is started with (``--api-key``)."""

RATE_LIMITED = "rate-limit-1000000"  # the fake answers 429 to every request of this name
STREAM_ERROR = "stream-error"  # 2 chunks, then an in-stream error event
RESET = "reset-after-3"  # 3 chunks, then the connection is cut
STALL_SHORT = "stall-0.4"  # 2 chunks, then 0.4 s before each further one
STALL_LONG = "stall-5"  # 2 chunks, then 5 s before each further one (for disconnects)
CONTEXT_TOO_LONG = "context-too-long"  # 400 "Range of input length should be [1, 1024]"
TEXT_ONLY = "text-only"  # an upstream alias without vision
FAULTS = (RATE_LIMITED, STREAM_ERROR, RESET, STALL_SHORT, STALL_LONG, CONTEXT_TOO_LONG)


def upstream_models(base_url: str) -> dict[str, Any]:
    """``MULTITURN_MODELS`` for the gateway in front of the fake upstream: the guide's names for
    the thinking (qwen-plus) and vision (qwen3-vl-plus) examples, and one alias per fault (the
    fake picks its fault by the model name it is sent: the alias name)."""

    def alias(capabilities: list[str], **more: Any) -> dict[str, Any]:
        return {"backend": "upstream", "base_url": base_url, "capabilities": capabilities, **more}

    models = {"qwen-plus": alias(["text", "vision"]), "qwen3-vl-plus": alias(["text", "vision"])}
    models[TEXT_ONLY] = alias(["text"], model="qwen-plus")
    models.update((name, alias(["text", "vision"])) for name in FAULTS)
    return models


async def tenant_keys(db: Path) -> tuple[str, str]:
    """Two stored API keys in the gateway's database ``db``: tenants ``alice`` and ``bob``."""
    store = SQLStore(Settings(db=str(db)).database_url)
    try:
        await store.migrate()
        _, alice = await store.create_api_key(tenant_id="alice", name="alice")
        _, bob = await store.create_api_key(tenant_id="bob", name="bob")
    finally:
        await store.close()
    return alice, bob
