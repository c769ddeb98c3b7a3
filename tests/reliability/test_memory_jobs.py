"""Memory work never fails or blocks a turn: with an embedder whose upstream refuses every call,
turns that recall (and so index what is missing first) and the background indexing after each
answer fail, are logged, and every turn still completes with its answer stored."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from multiturn import AsyncClient, Settings
from support.fake_upstream import FakeUpstream


async def test_a_failing_embedder_never_fails_a_turn(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with FakeUpstream() as fake:  # it has no /v1/embeddings: every embedding call is a 404
        upstream = {"backend": "upstream", "base_url": fake.base_url}
        settings = Settings(
            db=str(tmp_path / "memory.db"),
            data_dir=tmp_path,
            model="qwen-plus",
            models={"qwen-plus": upstream, "embedder": upstream},
            embedder="embedder",
        )
        caplog.set_level(logging.WARNING, logger="multiturn")
        async with AsyncClient(settings) as client:
            conversation = await client.create()
            for text in ("My locker code is 4912.", "Name a fruit.", "What is my locker code?"):
                reply = await conversation.send(text, policy="retrieval")
                assert reply.status == "completed" and reply.content == f"You said: {text}"
            await client.engine.drain()
            history = await conversation.history()
        assert [item.status for item in history] == ["completed"] * 6
        failures = [r.getMessage() for r in caplog.records if "the turn goes on without it" in r.getMessage()]
        assert any(m.startswith("recall failed") for m in failures), failures
        assert any(m.startswith("index failed") for m in failures), failures
        assert [r for r in fake.requests if r.path.endswith("/embeddings")], "the embedder was never called"
