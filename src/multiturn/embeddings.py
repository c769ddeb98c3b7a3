"""Dense embeddings for the retrieval index.

An ``Embedder`` turns texts into unit vectors (float32 rows); ``name`` identifies the model and
is stored with each vector, so vectors of different embedders are never compared.

- ``WordLlamaEmbedder``: static token embeddings averaged (the PyPI package ``wordllama``, extra
  ``memory``). Its weights ship inside the wheel and are loaded from the package's own directory
  with downloads disabled, once per process, on first use; embedding a sentence costs tens of
  microseconds, so it runs inline on the event loop.
- ``UpstreamEmbedder``: an OpenAI-compatible ``POST {base_url}/embeddings`` (a model alias of
  the settings with ``backend = "upstream"``).

``load_embedder(settings)`` picks one from ``settings.embedder`` (``wordllama``, ``none`` or a
model alias); without the ``memory`` extra it logs once and returns ``None``: recall is then
lexical only. numpy is imported only by the embedders themselves, never by ``import multiturn``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import threading
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from .errors import InvalidInput, MissingDependency, UpstreamError
from .settings import Settings

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Vectors = npt.NDArray[np.float32]
else:
    Vectors = Any

log = logging.getLogger(__name__)

WORDLLAMA = "wordllama"
NONE = "none"


class Embedder(Protocol):
    name: str

    async def embed(self, texts: Sequence[str]) -> Vectors:
        """One L2-normalized float32 row per text (a row of zeros for a text with no tokens).

        Raises:
            MissingDependency: the embedder's optional package is not installed.
            UpstreamError: a remote embedder failed.
        """
        ...


_wordllama_lock = threading.Lock()
_wordllama_model: Any = None


@contextlib.contextmanager
def _root_logging_kept() -> Iterator[None]:
    """Undo what an import does to the root logger: the ``wordllama`` package calls
    ``logging.basicConfig(level=INFO)`` when imported, which would print every INFO line of
    every library to stderr (into the chat REPL, into a benchmark's output)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield
    finally:
        for handler in root.handlers[:]:
            if handler not in handlers:
                root.removeHandler(handler)
        root.setLevel(level)


def _wordllama() -> Any:
    """The WordLlama model, loaded once per process from the package's bundled weights."""
    global _wordllama_model
    with _wordllama_lock:
        if _wordllama_model is None:
            try:
                with _root_logging_kept():
                    import wordllama
            except ImportError as exc:
                raise MissingDependency("wordllama", "memory") from exc
            package_dir = os.path.dirname(wordllama.__file__)
            _wordllama_model = wordllama.WordLlama.load(cache_dir=package_dir, disable_download=True)
        return _wordllama_model


class WordLlamaEmbedder:
    """WordLlama ``l2_supercat`` at 256 dimensions (its bundled configuration)."""

    name = "wordllama-l2_supercat-256"

    def __init__(self) -> None:
        self._model: Any = None

    def ensure(self) -> None:
        """Load the model now (raises ``MissingDependency`` without the ``memory`` extra)."""
        if self._model is None:
            self._model = _wordllama()

    async def embed(self, texts: Sequence[str]) -> Vectors:
        import numpy as np

        self.ensure()
        if not texts:
            return np.zeros((0, 256), dtype=np.float32)
        vectors = np.asarray(self._model.embed(list(texts), norm=False), dtype=np.float32)
        return _normalize(vectors)


class UpstreamEmbedder:
    """``POST {base_url}/embeddings`` on an OpenAI-compatible server, one call per batch."""

    def __init__(self, *, name: str, model: str, base_url: str, api_key: str | None, timeout: float) -> None:
        self.name = name
        self._model = model
        self._url = base_url.rstrip("/") + "/embeddings"
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._timeout = timeout
        self._session: Any = None

    async def embed(self, texts: Sequence[str]) -> Vectors:
        import aiohttp
        import numpy as np

        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self._timeout))
        body = {"model": self._model, "input": list(texts)}
        try:
            async with self._session.post(self._url, json=body, headers=self._headers) as response:
                payload = await response.json(content_type=None)
                if response.status != 200:
                    raise UpstreamError(f"embeddings upstream answered {response.status}", status=response.status)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise UpstreamError(f"embeddings upstream failed: {exc}") from exc
        try:
            rows = sorted(payload["data"], key=lambda row: row["index"])
            vectors = np.asarray([row["embedding"] for row in rows], dtype=np.float32)
        except (KeyError, TypeError, ValueError) as exc:
            raise UpstreamError("embeddings upstream answered an unexpected body") from exc
        if vectors.shape[0] != len(texts):
            raise UpstreamError(f"embeddings upstream returned {vectors.shape[0]} rows for {len(texts)} texts")
        return _normalize(vectors)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


def _normalize(vectors: Vectors) -> Vectors:
    import numpy as np

    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit: Vectors = np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)
    return unit


def load_embedder(settings: Settings) -> Embedder | None:
    """The embedder ``settings.embedder`` names, or ``None`` (lexical recall only).

    ``wordllama`` without the ``memory`` extra is logged and gives ``None``; with it, the
    weights load on the first embedding (a process that never recalls never loads them).

    Raises:
        InvalidInput: a name that is neither ``wordllama``, ``none`` nor an upstream alias.
    """
    choice = settings.embedder
    if choice == NONE:
        return None
    if choice == WORDLLAMA:
        if importlib.util.find_spec("wordllama") is None:  # found now, loaded on first use
            log.warning("%s; recall is lexical only", MissingDependency("wordllama", "memory").message)
            return None
        return WordLlamaEmbedder()
    alias = settings.models.get(choice)
    if alias is None or alias.backend != "upstream" or not alias.base_url:
        raise InvalidInput(f"unknown embedder {choice!r}: use wordllama, none, or an upstream model alias")
    api_key = alias.api_key or (os.environ.get(alias.api_key_env) if alias.api_key_env else None)
    return UpstreamEmbedder(
        name=f"upstream:{alias.model or choice}",
        model=alias.model or choice,
        base_url=alias.base_url,
        api_key=api_key,
        timeout=settings.upstream_read_timeout,
    )
