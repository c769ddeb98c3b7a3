"""The async library face: ``AsyncClient`` wires settings, store, backends and engine;
``AsyncConversation`` is one conversation seen through it.

Each round appends the user's message and the assistant's reply to the history sent next
time; reasoning is stored but never appended (the Model Studio rule).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from dataclasses import replace
from typing import Any

from .backends.base import Backend
from .backends.registry import BackendRegistry
from .context.cache import PlanCache
from .context.plan import Policy, preset
from .embeddings import load_embedder
from .engine import Engine
from .errors import MultiturnError
from .memory.compaction import build_compaction
from .memory.recall import IndexRecall
from .pricing import price_for
from .records import ConversationRecord, ItemRecord
from .settings import Settings
from .store.sql import SQLStore
from .tokens import default_tokenizer
from .types import Delta, GenerationParams, Part, Reply, text_parts


def build_engine(settings: Settings, store: SQLStore, backends: BackendRegistry) -> Engine:
    """The engine every face (library, CLI, gateway) runs: settings' policies and model
    aliases applied."""

    def alias_policy(model: str) -> str | None:
        alias = settings.models.get(model)
        return alias.policy if alias else None

    def tune(model: str, policy: Policy) -> Policy:
        alias = settings.models.get(model)
        if alias is not None and policy.reasoning_replay == "drop":
            policy = replace(policy, reasoning_replay=alias.reasoning_replay)
        if settings.keep_media_rounds is not None and policy.keep_images_rounds is None:
            policy = replace(policy, keep_images_rounds=settings.keep_media_rounds)
        if settings.inline_media_bytes is not None and policy.media_bytes is None:
            policy = replace(policy, media_bytes=settings.inline_media_bytes)
        return policy

    tokenizer = default_tokenizer()
    return Engine(
        store,
        backends.get,
        default_model=settings.model,
        default_policy=settings.context_policy,
        policy_for_model=alias_policy,
        tune_policy=tune,
        price_for=lambda model: price_for(settings, model),
        tokenizer=tokenizer,
        plan_cache=PlanCache(size=settings.cache_items // 2),
        recall=IndexRecall(store, load_embedder(settings)),
        compaction=build_compaction(settings, store, backends.get, tokenizer),
        background_compaction=settings.summary_mode == "background",
    )


class AsyncClient:
    """Owns the store and the backends. Open it once; make conversations from it."""

    def __init__(self, settings: Settings | None = None, *, backends: BackendRegistry | None = None) -> None:
        self.settings = settings or Settings()
        self.store = SQLStore(self.settings.database_url, cache_items=self.settings.cache_items)
        self._owns_backends = backends is None
        self.backends = backends or BackendRegistry(self.settings)
        self.engine = build_engine(self.settings, self.store, self.backends)
        self._migrated = False

    async def open(self) -> AsyncClient:
        """Apply pending migrations and take over turns that processes which died left open;
        idempotent."""
        if not self._migrated:
            await self.store.migrate()
            await self.engine.turns.open()  # closes turns a killed process left open
            self._migrated = True
        return self

    async def aclose(self) -> None:
        """Finish background work (turn ends, indexing, summaries), then close the backends this client made
        (upstream connections, the embedded model's thread) and the store."""
        await self.engine.aclose()
        if self._owns_backends:
            await self.backends.aclose()
        await self.store.close()

    async def __aenter__(self) -> AsyncClient:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def backend(self, model: str | None = None) -> Backend:
        return self.backends.get(model or self.settings.model)

    def params(self, **overrides: Any) -> GenerationParams:
        """Generation parameters: the settings' defaults, then ``overrides`` that are not None."""
        s = self.settings
        values: dict[str, Any] = {
            "max_tokens": s.max_tokens,
            "temperature": s.temperature,
            "top_p": s.top_p,
            "top_k": s.top_k,
            "repetition_penalty": s.repeat_penalty,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        if isinstance(values.get("stop"), str):
            values["stop"] = (values["stop"],)
        elif "stop" in values:
            values["stop"] = tuple(values["stop"])
        return GenerationParams(**values)

    async def create(
        self,
        *,
        system: str | None = None,
        model: str | None = None,
        title: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> AsyncConversation:
        await self.open()
        record = await self.engine.create(
            system_prompt=system if system is not None else self.settings.system_prompt,
            model=model or self.settings.model,
            title=title,
            metadata=metadata,
        )
        return AsyncConversation(self, record.id)

    async def conversation(self, conversation_id: str) -> AsyncConversation:
        """Open an existing conversation. Raises ``NotFound``."""
        await self.open()
        await self.engine.get(conversation_id)
        return AsyncConversation(self, conversation_id)

    async def list(self, limit: int = 50) -> list[ConversationRecord]:
        await self.open()
        return await self.store.list_conversations(tenant_id=self.engine.tenant_id, limit=limit)

    async def latest(self) -> AsyncConversation | None:
        found = await self.list(limit=1)
        return AsyncConversation(self, found[0].id) if found else None


class AsyncConversation:
    def __init__(self, client: AsyncClient, conversation_id: str) -> None:
        self.client = client
        self.id = conversation_id

    @classmethod
    async def create(
        cls, *, system: str | None = None, model: str | None = None, client: AsyncClient | None = None
    ) -> AsyncConversation:
        return await (client or AsyncClient()).create(system=system, model=model)

    @classmethod
    async def open(cls, conversation_id: str, *, client: AsyncClient | None = None) -> AsyncConversation:
        return await (client or AsyncClient()).conversation(conversation_id)

    @property
    def _engine(self) -> Engine:
        return self.client.engine

    async def record(self) -> ConversationRecord:
        return await self._engine.get(self.id)

    async def send(self, content: str | Sequence[Part], *, policy: str | None = None, **params: Any) -> Reply:
        """Send a user message and wait for the whole reply. ``policy`` names a context preset
        for this turn (``full``, ``window``, ``summary``, ``retrieval``, ``auto``)."""
        return await _last(self.stream(content, policy=policy, **params))

    def stream(
        self, content: str | Sequence[Part], *, policy: str | None = None, **params: Any
    ) -> AsyncGenerator[Delta | Reply, None]:
        """Send a user message; yields ``Delta`` values, then the final ``Reply``."""
        return self._engine.send(self.id, text_parts(content), self.client.params(**params), policy=policy)

    async def retry(self, *, policy: str | None = None, **params: Any) -> Reply:
        return await _last(self.stream_retry(policy=policy, **params))

    def stream_retry(self, *, policy: str | None = None, **params: Any) -> AsyncGenerator[Delta | Reply, None]:
        return self._engine.retry(self.id, self.client.params(**params), policy=policy)

    async def undo(self) -> list[ItemRecord]:
        return await self._engine.undo(self.id)

    async def history(self) -> list[ItemRecord]:
        return await self._engine.history(self.id)

    async def fork(self, at_item: str | None = None) -> AsyncConversation:
        record = await self._engine.fork(self.id, at_item)
        return AsyncConversation(self.client, record.id)

    async def set_system(self, text: str | None) -> None:
        await self._engine.update(self.id, system_prompt=text)

    async def set_policy(self, policy: str | None) -> None:
        """Use this context preset for the conversation's next turns (None: the default)."""
        record = await self.record()
        metadata = {k: v for k, v in record.metadata.items() if k != "policy"}
        if policy is not None:
            preset(policy)  # unknown names fail before anything changes
            metadata["policy"] = policy
        await self._engine.update(self.id, metadata=metadata)

    async def set_model(self, model: str | None) -> None:
        if model is not None:
            self.client.backends.get(model)  # unknown names fail here, before anything changes
        await self._engine.update(self.id, model=model)


async def _last(events: AsyncGenerator[Delta | Reply, None]) -> Reply:
    reply: Reply | None = None
    async for event in events:
        if isinstance(event, Reply):
            reply = event
    if reply is None:  # the engine always ends a turn with a Reply; this guards the contract
        raise MultiturnError("the turn ended without a reply")
    return reply
