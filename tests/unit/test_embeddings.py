"""Embedders: WordLlama from its bundled weights, an OpenAI-compatible /embeddings endpoint over
real HTTP, and the choice from settings (including a missing extra)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator

import numpy as np
import pytest
from aiohttp import web

from multiturn.embeddings import UpstreamEmbedder, WordLlamaEmbedder, load_embedder
from multiturn.errors import InvalidInput, UpstreamError
from multiturn.settings import ModelAlias, Settings


async def test_wordllama_gives_unit_vectors_closer_for_related_sentences() -> None:
    embedder = WordLlamaEmbedder()
    vectors = await embedder.embed(["my dog loves the park", "the puppy enjoys walks outside", "quarterly tax form"])
    assert vectors.shape == (3, 256) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]
    assert (await embedder.embed([])).shape == (0, 256)


def test_loading_wordllama_leaves_the_root_logger_as_it_was() -> None:
    """The package calls ``logging.basicConfig(level=INFO)`` when imported: every library's INFO
    lines would reach stderr (the chat REPL, a benchmark's output). In a fresh process, since
    the package may already be imported here."""
    code = (
        "import logging, sys\n"
        "from multiturn.embeddings import WordLlamaEmbedder\n"
        "WordLlamaEmbedder().ensure()\n"
        "assert 'wordllama' in sys.modules\n"
        "root = logging.getLogger()\n"
        "print(root.level, len(root.handlers))\n"
        "logging.getLogger('multiturn.x').info('should not show')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.split() == [str(30), "0"]  # WARNING, no handler: as Python starts
    assert "should not show" not in done.stderr


def test_settings_choose_the_embedder() -> None:
    assert load_embedder(Settings(embedder="none")) is None
    embedder = load_embedder(Settings(embedder="wordllama"))
    assert isinstance(embedder, WordLlamaEmbedder) and embedder.name == "wordllama-l2_supercat-256"
    upstream = Settings(
        embedder="emb",
        models={"emb": ModelAlias(backend="upstream", base_url="http://127.0.0.1:9/v1", model="text-embedding-v4")},
    )
    chosen = load_embedder(upstream)
    assert isinstance(chosen, UpstreamEmbedder) and chosen.name == "upstream:text-embedding-v4"
    with pytest.raises(InvalidInput, match="unknown embedder 'qwen-plus'"):
        load_embedder(Settings(embedder="qwen-plus"))  # an embedded alias cannot embed


def test_without_the_memory_extra_recall_is_lexical_and_says_so() -> None:
    script = (
        "import logging, sys; sys.modules['wordllama'] = None; logging.basicConfig(level=logging.INFO)\n"
        "from multiturn.embeddings import load_embedder; from multiturn.settings import Settings\n"
        "print(load_embedder(Settings(embedder='wordllama')))\n"
        "import multiturn.memory.recall; print('numpy' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.split() == ["None", "False"]
    assert "pip install 'multiturn[memory]'" in done.stderr and "recall is lexical only" in done.stderr


@pytest.fixture
async def embeddings_server() -> AsyncIterator[tuple[str, list[dict[str, object]]]]:
    seen: list[dict[str, object]] = []

    async def handle(request: web.Request) -> web.Response:
        body = await request.json()
        seen.append({"body": body, "auth": request.headers.get("Authorization")})
        if body["model"] == "broken":
            return web.json_response({"error": {"message": "nope"}}, status=500)
        rows = [{"index": n, "embedding": [float(len(t)), 1.0, 0.0]} for n, t in enumerate(body["input"])]
        return web.json_response({"data": list(reversed(rows)), "model": body["model"]})

    app = web.Application()
    app.router.add_post("/v1/embeddings", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}/v1", seen
    await runner.cleanup()


async def test_upstream_embedder_posts_the_batch_and_normalizes_in_order(
    embeddings_server: tuple[str, list[dict[str, object]]],
) -> None:
    url, seen = embeddings_server
    embedder = UpstreamEmbedder(name="u", model="emb-1", base_url=url, api_key="sk-test", timeout=5)
    try:
        vectors = await embedder.embed(["abc", "a"])
        assert np.allclose(vectors, [[3 / 10**0.5, 1 / 10**0.5, 0], [2**-0.5, 2**-0.5, 0]])
        assert seen == [{"body": {"model": "emb-1", "input": ["abc", "a"]}, "auth": "Bearer sk-test"}]
        broken = UpstreamEmbedder(name="u", model="broken", base_url=url, api_key=None, timeout=5)
        with pytest.raises(UpstreamError, match="answered 500"):
            await broken.embed(["x"])
        await broken.aclose()
    finally:
        await embedder.aclose()
