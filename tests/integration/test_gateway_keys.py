"""Stored API keys against a real ``multiturn serve`` process: the first key turns
authentication on, a revoked key stops working, both protocols answer 401 in their own shape.
The waits are the authenticator's cache lifetime (5 s), polled with a deadline."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

LISTENING = re.compile(r"listening on (http://[\d.]+:\d+)")
EXE = Path(sys.executable).with_name("multiturn")
DASHSCOPE = "/api/v1/services/aigc/text-generation/generation"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MULTITURN_")},
        "MULTITURN_DB": str(tmp_path / "gateway.db"),
        "MULTITURN_CONFIG": str(tmp_path / "absent.toml"),
        "MULTITURN_DATA_DIR": str(tmp_path),
    }
    proc = subprocess.Popen([str(EXE), "serve", "--port", "0"], env=env, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    match = LISTENING.search(proc.stdout.readline())
    try:
        assert match
        yield match.group(1), env
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        proc.stdout.close()


def _keys(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([str(EXE), "keys", *args], env=env, capture_output=True, text=True, check=False, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def _until(check: Callable[[], bool], deadline_s: float = 15.0) -> None:
    deadline = time.monotonic() + deadline_s
    while not check():
        assert time.monotonic() < deadline, "the gateway did not pick up the key change in time"
        time.sleep(0.2)


def test_stored_keys_are_required_once_one_exists_and_revocation_applies(
    served: tuple[str, dict[str, str]],
) -> None:
    base, env = served
    with httpx.Client(base_url=base, timeout=10) as http:
        assert http.get("/v1/models").status_code == 200  # no key exists: loopback is open

        key = _keys(env, "create", "--tenant", "acme", "--name", "test")
        _until(lambda: http.get("/v1/models").status_code == 401)

        refused = http.get("/v1/models", headers={"Authorization": "Bearer mt-wrong"})
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "invalid_api_key"
        assert key not in refused.text
        native = http.post(DASHSCOPE, json={"model": "qwen-plus", "input": {"prompt": "hi"}})
        assert (native.status_code, native.json()["code"]) == (401, "InvalidApiKey")
        assert http.get("/v1/models", headers={"Authorization": f"Bearer {key}"}).status_code == 200

        key_id = json.loads(_keys(env, "list", "--json"))["id"]
        _keys(env, "revoke", key_id)
        _until(lambda: http.get("/v1/models", headers={"Authorization": f"Bearer {key}"}).status_code == 401)
        # Every key revoked: authentication stays on.
        assert http.get("/v1/models").status_code == 401
