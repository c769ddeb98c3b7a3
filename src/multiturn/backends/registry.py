"""Model names to backends.

A name resolves, in order, to: an alias of the settings' ``models`` table (embedded or
upstream), the local GGUF file given by ``model_path`` (as ``local`` or the configured model
name), or a catalogue model run by the embedded backend. Unknown names are ``ModelNotFound``.
Backends are created on first use and kept for the life of the registry; embedded ones share
one loaded model per file.
"""

from __future__ import annotations

import os
import threading

from .. import catalog
from ..errors import ModelNotFound, NotFound
from ..settings import ModelAlias, Settings
from .base import Backend


class BackendRegistry:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._backends: dict[str, Backend] = {}
        self._lock = threading.Lock()

    def names(self) -> list[str]:
        """Every name this registry answers to: aliases, then catalogue models."""
        names = list(self.settings.models)
        if self.settings.model_path is not None:
            names.append("local")
        names.extend(spec.name for spec in catalog.CATALOG if spec.name not in names)
        return names

    def get(self, name: str) -> Backend:
        """The backend serving ``name``. Raises ``ModelNotFound`` for an unknown name (no I/O)."""
        with self._lock:
            backend = self._backends.get(name)
            if backend is None:
                backend = self._create(name)
                self._backends[name] = backend
            return backend

    def _create(self, name: str) -> Backend:
        alias = self.settings.models.get(name)
        if alias is not None and alias.backend == "upstream":
            return self._upstream(name, alias)
        embedded = catalog.embedded_model(self.settings.model, self.settings.model_path)
        target = (alias.model or embedded) if alias is not None else name
        return self._embedded(target, requested=name)

    def _embedded(self, name: str, *, requested: str) -> Backend:
        from .llamacpp import LlamaCppBackend, LlamaOptions, Sampling

        s = self.settings
        options = LlamaOptions(n_ctx=s.n_ctx, n_threads=s.n_threads, flash_attn=s.flash_attn)
        sampling = Sampling(
            max_tokens=s.max_tokens,
            temperature=s.temperature,
            top_p=s.top_p,
            top_k=s.top_k,
            repeat_penalty=s.repeat_penalty,
        )
        if s.model_path is not None and name in ("local", s.model):
            return LlamaCppBackend.for_file(requested, s.model_path, options, sampling=sampling)
        try:
            spec = catalog.find(name)
        except NotFound as exc:
            raise ModelNotFound(f"Model not exist: {requested!r} is neither an alias nor a catalogue model") from exc
        return LlamaCppBackend.for_catalog(spec, s.models_dir, options, name=requested, sampling=sampling)

    def _upstream(self, name: str, alias: ModelAlias) -> Backend:
        from .upstream import UpstreamBackend

        if not alias.base_url:
            raise ModelNotFound(f"the upstream alias {name!r} has no base_url configured")
        api_key = alias.api_key or (os.environ.get(alias.api_key_env) if alias.api_key_env else None)
        s = self.settings
        return UpstreamBackend(
            name=name,
            upstream_model=alias.model or name,
            base_url=alias.base_url,
            api_key=api_key,
            capabilities=frozenset(alias.capabilities) | {"text", "stream"},
            context_window=alias.context_window,
            max_output_tokens=alias.max_output_tokens,
            connect_timeout=s.upstream_connect_timeout,
            read_timeout=s.upstream_read_timeout,
            first_byte_timeout=s.upstream_first_byte_timeout,
            retries=s.upstream_retries,
            reasoning_replay=alias.reasoning_replay,
            image_tokens=alias.image_tokens,
        )

    async def aclose(self) -> None:
        for backend in self._backends.values():
            await backend.aclose()
