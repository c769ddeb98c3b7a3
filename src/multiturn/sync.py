"""The sync library face: ``Client`` and ``Conversation`` run the async core on one private
event-loop thread, so sync and async callers get the same engine, store and backends.

A parity test keeps the public methods of the two faces equal.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Coroutine, Iterator, Sequence
from typing import Any, TypeVar

from .client import AsyncClient, AsyncConversation
from .records import ConversationRecord, ItemRecord
from .settings import Settings
from .types import Delta, Part, Reply

T = TypeVar("T")


class _LoopThread:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="multiturn-loop", daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result()
        except KeyboardInterrupt:
            future.cancel()
            raise

    def iterate(self, events: AsyncIterator[T]) -> Iterator[T]:
        """Drive an async iterator from sync code; leaving early closes it on the loop."""
        try:
            while True:
                try:
                    yield self.run(events.__anext__())  # type: ignore[arg-type]
                except StopAsyncIteration:
                    return
        finally:
            aclose = getattr(events, "aclose", None)
            if aclose is not None:
                self.run(aclose())

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        self.loop.close()


class Client:
    """Sync twin of ``AsyncClient``."""

    def __init__(self, settings: Settings | None = None) -> None:
        self._loop = _LoopThread()
        self.aio = AsyncClient(settings)
        self.settings = self.aio.settings

    def close(self) -> None:
        self._loop.run(self.aio.aclose())
        self._loop.stop()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def create(
        self,
        *,
        system: str | None = None,
        model: str | None = None,
        title: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Conversation:
        conversation = self._loop.run(self.aio.create(system=system, model=model, title=title, metadata=metadata))
        return Conversation(self, conversation)

    def conversation(self, conversation_id: str) -> Conversation:
        return Conversation(self, self._loop.run(self.aio.conversation(conversation_id)))

    def list(self, limit: int = 50) -> list[ConversationRecord]:
        return self._loop.run(self.aio.list(limit))

    def latest(self) -> Conversation | None:
        found = self._loop.run(self.aio.latest())
        return Conversation(self, found) if found else None


class Conversation:
    """Sync twin of ``AsyncConversation``.

    ``Conversation.create()`` and ``Conversation.open(id)`` make a private ``Client`` when none
    is given; pass ``client=`` to share one (and its loaded model) between conversations.
    """

    def __init__(self, client: Client, conversation: AsyncConversation) -> None:
        self.client = client
        self.aio = conversation
        self.id = conversation.id

    @classmethod
    def create(
        cls, *, system: str | None = None, model: str | None = None, client: Client | None = None
    ) -> Conversation:
        return (client or Client()).create(system=system, model=model)

    @classmethod
    def open(cls, conversation_id: str, *, client: Client | None = None) -> Conversation:
        return (client or Client()).conversation(conversation_id)

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.client._loop.run(coro)

    def record(self) -> ConversationRecord:
        return self._run(self.aio.record())

    def send(self, content: str | Sequence[Part], *, policy: str | None = None, **params: Any) -> Reply:
        return self._run(self.aio.send(content, policy=policy, **params))

    def stream(
        self, content: str | Sequence[Part], *, policy: str | None = None, **params: Any
    ) -> Iterator[Delta | Reply]:
        return self.client._loop.iterate(self.aio.stream(content, policy=policy, **params))

    def retry(self, *, policy: str | None = None, **params: Any) -> Reply:
        return self._run(self.aio.retry(policy=policy, **params))

    def stream_retry(self, *, policy: str | None = None, **params: Any) -> Iterator[Delta | Reply]:
        return self.client._loop.iterate(self.aio.stream_retry(policy=policy, **params))

    def undo(self) -> list[ItemRecord]:
        return self._run(self.aio.undo())

    def history(self) -> list[ItemRecord]:
        return self._run(self.aio.history())

    def fork(self, at_item: str | None = None) -> Conversation:
        return Conversation(self.client, self._run(self.aio.fork(at_item)))

    def set_system(self, text: str | None) -> None:
        self._run(self.aio.set_system(text))

    def set_policy(self, policy: str | None) -> None:
        self._run(self.aio.set_policy(policy))

    def set_model(self, model: str | None) -> None:
        self._run(self.aio.set_model(model))
