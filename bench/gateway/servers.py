"""Starting, watching and stopping the servers under test (each pinned to CPU 0)."""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .common import proc_cpu

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
VENV_BIN = Path(sys.executable).parent
LITELLM_VERSION = "1.108.7"
LITELLM_VENV = Path.home() / ".cache/multiturn/bench-venvs" / f"litellm-{LITELLM_VERSION}"
UVICORN_FLAGS = [
    "--app-dir",
    str(HERE),
    "--loop",
    "uvloop",
    "--http",
    "httptools",
    "--no-access-log",
    "--log-level",
    "warning",
]
READY_CAP = 90.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def request(port: int, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None):
    """One blocking HTTP request: (status, body, seconds)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        started = time.perf_counter()
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        data = response.read()
        return response.status, data, time.perf_counter() - started
    finally:
        conn.close()


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM in KiB, and the thread count, from ``/proc/<pid>/status``."""
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "Threads"):
            out[key] = int(value.split()[0])
    return out


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def maps_mention(pid: int, needle: str) -> bool:
    """Whether a file whose path contains ``needle`` is mapped into the process (a loaded library)."""
    return needle in Path(f"/proc/{pid}/maps").read_text()


@dataclass
class Server:
    name: str
    cmd: list[str]
    health: str
    env: dict[str, str] = field(default_factory=dict)
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, logdir: Path, launcher: list[str] | None = None) -> None:
        """Launch pinned to CPU 0 (behind ``launcher``, e.g. ``chrt -f 10``) and poll readiness every
        20 ms (at most ``READY_CAP`` s)."""
        log = (logdir / f"{self.name}.log").open("wb")
        started = time.perf_counter()
        self.proc = subprocess.Popen(
            [*(launcher or []), "taskset", "-c", "0", *self.cmd],
            env={**os.environ, **self.env},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=logdir,
        )
        while True:
            if self.proc.poll() is not None:
                tail = (logdir / f"{self.name}.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode} before it was ready:\n{tail}")
            try:
                status, _, _ = request(self.port, "GET", self.health)
                if status == 200:
                    break
            except OSError:
                pass
            if time.perf_counter() - started > READY_CAP:
                raise RuntimeError(f"{self.name} not ready after {READY_CAP:g} s")
            time.sleep(0.02)
        self.facts["startup_s"] = time.perf_counter() - started
        self.facts["ready"] = proc_status(self.pid)
        self.facts["children_at_ready"] = len(children(self.pid))

    def cpu(self) -> float:
        return proc_cpu(self.pid)

    def stop(self) -> int | None:
        """SIGTERM by pid; SIGKILL after 15 s. Returns the exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(5)


def upstream_server() -> Server:
    port = free_port()
    cmd = [str(VENV_BIN / "uvicorn"), "upstream:app", "--host", "127.0.0.1", "--port", str(port), *UVICORN_FLAGS]
    return Server("U", cmd, "/health", port=port)


@contextlib.contextmanager
def running_upstream(logdir: Path) -> Iterator[int]:
    """The fake upstream running (its log in ``logdir``) for the block; its port."""
    upstream = upstream_server()
    upstream.start(logdir)
    try:
        yield upstream.port
    finally:
        upstream.stop()


def relay_server(client: str, upstream: int) -> Server:
    port = free_port()
    cmd = [str(VENV_BIN / "uvicorn"), "relay:app", "--host", "127.0.0.1", "--port", str(port), *UVICORN_FLAGS]
    env = {"RELAY_CLIENT": client, "UPSTREAM": f"http://127.0.0.1:{upstream}"}
    return Server(f"R-{client}", cmd, "/health", env=env, port=port)


def multiturn_server(upstream: int, db: Path) -> Server:
    port = free_port()
    cmd = [str(VENV_BIN / "multiturn"), "serve", "--host", "127.0.0.1", "--port", str(port), "--no-access-log"]
    models = f'{{"qwen-plus": {{"backend": "upstream", "base_url": "http://127.0.0.1:{upstream}/v1"}}}}'
    env = {"MULTITURN_MODELS": models, "MULTITURN_CONFIG": "/nonexistent", "MULTITURN_DB": str(db)}
    return Server("M", cmd, "/healthz", env=env, port=port)


def litellm_server(upstream: int, workdir: Path, master_key: str) -> Server:
    port = free_port()
    config = workdir / "litellm_config.yaml"
    config.write_text(
        "model_list: [{model_name: qwen-plus, litellm_params: {model: openai/qwen-plus, "
        f'api_base: "http://127.0.0.1:{upstream}/v1", api_key: fake-upstream-key}}}}]\n'
        "litellm_settings: {drop_params: true}\n"
    )
    cmd = [str(LITELLM_VENV / "bin/litellm"), "--config", str(config), "--host", "127.0.0.1", "--port", str(port)]
    env = {"LITELLM_MASTER_KEY": master_key, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    return Server("L", cmd, "/health/liveliness", env=env, port=port)


def venv_version(python: Path, package: str) -> str | None:
    probe = f"import importlib.metadata as m; print(m.version({package!r}))"
    done = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, check=False)
    return done.stdout.strip() if done.returncode == 0 else None


def ensure_litellm(log: Any) -> None:
    """Create LiteLLM's own venv with the pinned version (about 30 s), or reuse it."""
    python = LITELLM_VENV / "bin/python"
    if python.exists() and venv_version(python, "litellm") == LITELLM_VERSION:
        return
    log(f"installing litellm[proxy]=={LITELLM_VERSION} into {LITELLM_VENV} (about 30 s)")
    if LITELLM_VENV.exists():
        shutil.rmtree(LITELLM_VENV)
    LITELLM_VENV.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["python3", "-m", "venv", str(LITELLM_VENV)], check=True)
    subprocess.run(
        [str(LITELLM_VENV / "bin/pip"), "install", "-q", f"litellm[proxy]=={LITELLM_VERSION}"], check=True, timeout=900
    )


def wait_idle(servers: list[Server], budget: float = 8.0, window: float = 0.5, limit: float = 0.010) -> float:
    """Wait until the servers together use under ``limit`` s of CPU in ``window`` s (at most ``budget``)."""
    started = time.perf_counter()
    while time.perf_counter() - started < budget:
        before = sum(s.cpu() for s in servers)
        time.sleep(window)
        if sum(s.cpu() for s in servers) - before < limit:
            break
    return time.perf_counter() - started
