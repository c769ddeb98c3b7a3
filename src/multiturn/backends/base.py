"""The ``Backend`` protocol: something that turns messages into a stream of deltas.

A backend knows nothing about conversations, ids or storage. It receives canonical messages and
parameters, and yields ``Delta`` values; the last delta carries ``finish_reason`` and ``usage``.
Closing the iterator early (the caller was cancelled) must stop the generation promptly.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeGuard

from ..tokens import ImageEstimate
from ..types import Completion, Delta, GenerationParams, Message


@dataclass(frozen=True, slots=True)
class BackendInfo:
    name: str
    context_window: int
    max_output_tokens: int
    capabilities: frozenset[str] = field(default_factory=lambda: frozenset({"text"}))
    description: str = ""
    served_by: str = ""
    """What runs the name, in words a client may see (``the embedded model qwen2.5-coder-0.5b``,
    ``an upstream alias``: never a URL)."""
    honours: Honours | None = None
    """What of a request's parameters this backend can do, when it decides (``None``: it passes
    every parameter on and the server behind it answers for them: an upstream)."""
    image_tokens: ImageEstimate = "qwen-vl"
    """How the model counts an image (``tokens.image_tokens``), from its alias's ``image_tokens``."""


@dataclass(frozen=True, slots=True)
class Honours:
    """The request parameters a backend that decides for itself honours: beyond these, a
    request is refused (``capabilities.check_params``), never quietly answered without them."""

    backend: str
    """How the refusal names the backend (``the embedded llama.cpp backend``)."""
    choices: int = 1
    """The most choices (``n``) it answers."""
    thinking: bool = False
    logprobs: bool = False
    grammar: bool = False
    """Tools and response formats are enforced by a grammar built from them (``tool_calls.py``):
    one that cannot be built is refused before the turn starts."""
    extra: frozenset[str] = frozenset()
    """Fields of ``GenerationParams.extra`` it honours (or that change nothing: ``user``)."""


class Backend(Protocol):
    def info(self) -> BackendInfo: ...

    async def prepare(self) -> None:
        """Make the backend ready (load and verify a model) before anything is stored.

        Raises:
            ModelError: the model is missing, corrupt or cannot be loaded.
        """
        ...

    def generate(self, messages: Sequence[Message], params: GenerationParams) -> AsyncGenerator[Delta, None]:
        """Stream the reply to ``messages``.

        Raises:
            ContextTooLong: the prompt does not fit the window.
            BackendError: the generation failed.
        """
        ...

    async def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` in this backend's vocabulary (no template overhead)."""
        ...

    async def aclose(self) -> None: ...


class CompletingBackend(Backend, Protocol):
    """A backend with a cheaper path for a whole answer than folding its stream."""

    async def complete(self, messages: Sequence[Message], params: GenerationParams) -> Completion:
        """The whole answer at once. Raises as ``generate`` does."""
        ...


def completes(backend: Backend) -> TypeGuard[CompletingBackend]:
    return callable(getattr(backend, "complete", None))
