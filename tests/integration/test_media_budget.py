"""Through the gateway, media go before text: a stored conversation whose images no longer fit the
model's window sends the upstream every earlier round's text with the older images replaced by
placeholders, and the newest image whole."""

from __future__ import annotations

import base64
import struct
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from support.fake_upstream import FakeUpstream
from support.serve import Server, serving


def _png(width: int, height: int) -> str:
    header = b"\x89PNG\r\n\x1a\n" + struct.pack(">I4sII", 13, b"IHDR", width, height) + b"\x08\x02\x00\x00\x00"
    return "data:image/png;base64," + base64.b64encode(header).decode()


BIG = _png(1120, 1120)  # ~1,200 tokens each for Qwen-VL: four do not fit a 4,096-token window


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, upstream: FakeUpstream) -> Iterator[Server]:
    vision = {
        "backend": "upstream",
        "base_url": upstream.base_url,
        "model": "qwen-vl-plus",
        "capabilities": ["text", "vision"],
        "context_window": 4096,
        "max_output_tokens": 256,
    }
    with serving("media", tmp_path_factory.mktemp("media"), models={"qwen-vl-plus": vision}) as started:
        yield started


def test_older_images_go_before_any_text(server: Server, upstream: FakeUpstream) -> None:
    previous: str | None = None
    for n in range(4):
        content = [{"type": "input_text", "text": f"picture {n}"}, {"type": "input_image", "image_url": BIG}]
        body: dict[str, Any] = {"model": "qwen-vl-plus", "input": [{"role": "user", "content": content}]}
        if previous:
            body["previous_response_id"] = previous
        seen = len(upstream.requests)
        answered = httpx.post(f"{server.base}/v1/responses", json=body, timeout=60)
        assert answered.status_code == 200, answered.text
        previous = answered.json()["id"]
    [sent] = [r.body for r in upstream.requests[seen:] if r.path.endswith("/chat/completions")]
    texts = " ".join(
        p["text"] if isinstance(p, dict) else p
        for m in sent["messages"]
        for p in (m["content"] if isinstance(m["content"], list) else [m["content"]])
        if isinstance(p, str) or p.get("type") == "text"
    )
    parts = [p for m in sent["messages"] if isinstance(m["content"], list) for p in m["content"]]
    images = [p for p in parts if p["type"] == "image_url"]
    assert all(f"picture {n}" in texts for n in range(4)), sent["messages"]  # every round's text went
    assert 1 <= len(images) < 4 and "[image omitted]" in texts
    assert sent["messages"][-1]["content"][-1]["type"] == "image_url"  # the newest image whole
