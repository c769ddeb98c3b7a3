"""Model names to backends.

A name resolves, in order, to: the local GGUF file given by ``model_path`` (under the name
``local`` or the configured model name), or a catalogue entry run by the embedded llama.cpp
backend. Backends are created on first use and kept for the life of the registry.
"""

from __future__ import annotations

import threading

from .. import catalog
from ..settings import Settings
from .base import Backend


class BackendRegistry:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._backends: dict[str, Backend] = {}
        self._lock = threading.Lock()

    def names(self) -> list[str]:
        names = [spec.name for spec in catalog.CATALOG]
        if self.settings.model_path is not None:
            names.insert(0, "local")
        return names

    def get(self, name: str) -> Backend:
        """The backend serving ``name``. Raises ``NotFound`` for an unknown name (no I/O)."""
        with self._lock:
            backend = self._backends.get(name)
            if backend is None:
                backend = self._create(name)
                self._backends[name] = backend
            return backend

    def _create(self, name: str) -> Backend:
        from .llamacpp import LlamaCppBackend, LlamaOptions

        s = self.settings
        options = LlamaOptions(n_ctx=s.n_ctx, n_threads=s.n_threads, flash_attn=s.flash_attn)
        if s.model_path is not None and name in ("local", s.model):
            return LlamaCppBackend.for_file(name, s.model_path, options)
        spec = catalog.find(name)
        return LlamaCppBackend.for_catalog(spec, s.models_dir, options)

    async def aclose(self) -> None:
        for backend in self._backends.values():
            await backend.aclose()
