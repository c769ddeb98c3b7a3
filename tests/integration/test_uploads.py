"""The DashScope SDK's local files through the gateway: the SDK asks the gateway for an upload
certificate, posts the file to it, and sends ``oss://<key>``; a vision upstream receives the very
bytes inline. Offline, the embedded model refuses the image in one message that names what
serves it and the config that maps a vision upstream. Nobody uploads without a grant, and a key
another tenant uploaded, an unknown one or an expired one is a 400 naming it."""

from __future__ import annotations

import base64
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import dashscope
import httpx
import pytest
from dashscope import MultiModalConversation

from support.fake_upstream import FakeUpstream
from support.serve import Server, serving

# 1x1 PNG, red
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, upstream: FakeUpstream) -> Iterator[Server]:
    models = {
        "qwen-vl-plus": {"backend": "upstream", "base_url": upstream.base_url, "capabilities": ["text", "vision"]},
        "qwen3-vl-plus": {"backend": "embedded"},
    }
    with serving("uploads", tmp_path_factory.mktemp("uploads"), models=models) as started:
        yield started


@pytest.fixture
def picture(tmp_path: Path) -> Path:
    path = tmp_path / "red.png"
    path.write_bytes(PNG)
    return path


def _ask(server: Server, model: str, picture: Path) -> object:
    dashscope.base_http_api_url = server.native
    messages = [{"role": "user", "content": [{"image": f"file://{picture}"}, {"text": "What colour is this?"}]}]
    return MultiModalConversation.call(api_key="any", model=model, messages=messages)


def test_a_local_file_reaches_a_vision_upstream_inline(server: Server, upstream: FakeUpstream, picture: Path) -> None:
    seen = len(upstream.requests)
    answer = _ask(server, "qwen-vl-plus", picture)
    assert answer.status_code == 200, answer.message  # type: ignore[attr-defined]
    [sent] = [r.body for r in upstream.requests[seen:] if r.path.endswith("/chat/completions")]
    images = [p for m in sent["messages"] for p in m["content"] if isinstance(p, dict) and p["type"] == "image_url"]
    assert [image["image_url"]["url"] for image in images] == [
        f"data:image/png;base64,{base64.b64encode(PNG).decode()}"
    ]
    with sqlite3.connect(server.home / "gateway.db") as db:
        [(key, size)] = db.execute("SELECT key, size FROM uploads").fetchall()
    assert key.endswith("/red.png") and size == len(PNG)


def test_offline_the_refusal_names_what_serves_the_model_and_the_config(server: Server, picture: Path) -> None:
    answer = _ask(server, "qwen3-vl-plus", picture)
    assert answer.status_code == 400  # type: ignore[attr-defined]
    message = answer.message  # type: ignore[attr-defined]
    assert "the embedded model qwen2.5-coder-0.5b" in message and "[models.qwen3-vl-plus]" in message
    assert 'capabilities = ["text", "vision"]' in message


def _grant(server: Server) -> dict[str, str]:
    got = httpx.get(f"{server.native}/uploads", params={"action": "getPolicy", "model": "qwen-vl-plus"})
    assert got.status_code == 200, got.text
    data: dict[str, str] = got.json()["data"]
    assert data["upload_host"] == f"{server.base}/api/v1/uploads/oss"
    return data


def test_an_upload_needs_a_grant_and_stays_in_its_directory(server: Server) -> None:
    grant = _grant(server)
    form = {"key": f"{grant['upload_dir']}/a.png", "policy": "forged", "success_action_status": "200"}
    forged = httpx.post(grant["upload_host"], data=form, files={"file": ("a.png", PNG, "image/png")})
    assert forged.status_code == 400 and "policy" in forged.json()["message"]
    outside = {**form, "policy": grant["policy"], "key": "multiturn/elsewhere/a.png"}
    escaped = httpx.post(grant["upload_host"], data=outside, files={"file": ("a.png", PNG, "image/png")})
    assert escaped.status_code == 400 and grant["upload_dir"] in escaped.json()["message"]
    fine = {**form, "policy": grant["policy"]}
    assert httpx.post(grant["upload_host"], data=fine, files={"file": ("a.png", PNG, "image/png")}).status_code == 200
    again = httpx.post(grant["upload_host"], data=fine, files={"file": ("a.png", PNG, "image/png")})
    assert again.status_code == 400 and "already" in again.json()["message"]  # no overwrite


def test_a_file_over_the_limit_is_a_413_and_not_stored(tmp_path_factory: pytest.TempPathFactory) -> None:
    with serving("small", tmp_path_factory.mktemp("small"), env={"MULTITURN_MAX_REQUEST_BYTES": "2048"}) as small:
        grant = _grant(small)
        form = {"key": f"{grant['upload_dir']}/big.bin", "policy": grant["policy"]}
        refused = httpx.post(grant["upload_host"], data=form, files={"file": ("big.bin", b"x" * 4096)})
        assert refused.status_code == 413
        with sqlite3.connect(small.home / "gateway.db") as db:
            assert db.execute("SELECT count(*) FROM uploads").fetchone() == (0,)


def test_an_unknown_key_is_a_400_naming_it(server: Server) -> None:
    body = {
        "model": "qwen-vl-plus",
        "input": {"messages": [{"role": "user", "content": [{"image": "oss://multiturn/nope/x.png"}, {"text": "hi"}]}]},
    }
    refused = httpx.post(f"{server.native}/services/aigc/multimodal-generation/generation", json=body)
    assert refused.status_code == 400
    assert "oss://multiturn/nope/x.png" in refused.json()["message"]
    assert set(refused.json()) >= {"request_id", "code", "message"}  # the native error shape
