"""Conversations, their items and their Responses objects, as the engine's callers see them:
create, read, update, undo, fork, append items, delete. Every operation is scoped to the
engine's tenant (another tenant's object is ``NotFound``). Routers call these; none of them
reaches the store.

Appending items without an answer (the Conversations API) goes through the turn queue like a
turn: items appended while a turn of the conversation is open land after its answer, never
beside it on a branch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ..errors import InvalidInput, NotFound
from ..ids import new_id, now_ms
from ..records import ConversationRecord, ItemRecord, NewItem
from ..store.base import Store
from ..store.responses import ResponseRecord, ResponseStore, keeps_responses
from ..store.turns import TurnEntry
from ..types import Message

if TYPE_CHECKING:
    from .turns import TurnService


class ConversationOps:
    store: Store
    tenant_id: str
    turns: TurnService

    # -- conversations -----------------------------------------------------------------------

    async def create(
        self,
        *,
        system_prompt: str | None = None,
        model: str | None = None,
        title: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> ConversationRecord:
        return await self.store.create_conversation(
            tenant_id=self.tenant_id,
            title=title,
            model=model,
            system_prompt=system_prompt,
            metadata=metadata,
        )

    async def get(self, conversation_id: str) -> ConversationRecord:
        return await self.store.get_conversation(conversation_id, tenant_id=self.tenant_id)

    async def history(self, conversation_id: str) -> list[ItemRecord]:
        """The conversation's current branch: the path from its first item to its head."""
        conversation = await self.get(conversation_id)
        return await self.store.path(conversation_id, conversation.head_item_id, tenant_id=self.tenant_id)

    async def path(self, conversation_id: str, leaf_id: str | None) -> list[ItemRecord]:
        """The items from the conversation's first item down to ``leaf_id``."""
        return await self.store.path(conversation_id, leaf_id, tenant_id=self.tenant_id)

    async def update(self, conversation_id: str, **fields: Any) -> ConversationRecord:
        return await self.store.update_conversation(conversation_id, tenant_id=self.tenant_id, **fields)

    async def delete(self, conversation_id: str) -> None:
        """Delete the conversation and everything that names it. A turn still running on it
        ends without storing its answer."""
        await self.store.delete_conversation(conversation_id, tenant_id=self.tenant_id)

    async def page(self, *, after: str | None, limit: int, descending: bool) -> list[ConversationRecord]:
        """A page of the tenant's conversations in creation order, after ``after``."""
        return await self._responses().conversations_page(
            tenant_id=self.tenant_id, after=after, limit=limit, descending=descending
        )

    async def undo(self, conversation_id: str) -> list[ItemRecord]:
        """Move the head back to before the last user turn; returns the items left behind.

        Nothing is deleted: the undone turn stays in the tree as a branch.
        """
        path = await self.history(conversation_id)
        last_user = next((i for i in range(len(path) - 1, -1, -1) if path[i].role == "user"), None)
        if last_user is None:
            raise InvalidInput("nothing to undo")
        new_head = path[last_user - 1].id if last_user > 0 else None
        await self.update(conversation_id, head_item_id=new_head)
        return path[last_user:]

    async def fork(self, conversation_id: str, at_item_id: str | None = None) -> ConversationRecord:
        """A new conversation holding a copy of the path up to ``at_item_id`` (default: head)."""
        source = await self.get(conversation_id)
        leaf = at_item_id or source.head_item_id
        path = await self.store.path(conversation_id, leaf, tenant_id=self.tenant_id)
        now = now_ms()
        fork = replace(
            source,
            created_at=now,
            updated_at=now,
            head_item_id=leaf,
            metadata={**source.metadata, "forked_from": conversation_id, "forked_at": leaf},
        )
        # one transaction, the items in one statement, under new ids (their times kept); the
        # fork is indexed when it first recalls, as any conversation
        return await self.store.import_conversation(fork, path, tenant_id=self.tenant_id)

    # -- items -------------------------------------------------------------------------------

    async def append_items(self, conversation_id: str, messages: Sequence[Message]) -> list[ItemRecord]:
        """Store ``messages`` at the conversation's head, in order, without answering (after
        any turn of it still open); the items written."""
        if not messages:
            return []
        entry = TurnEntry(
            id=new_id("turn"),
            tenant_id=self.tenant_id,
            conversation_id=conversation_id,
            owner=self.store.owner,
            inputs=tuple(
                NewItem(
                    role=m.role,
                    content=m.content,
                    reasoning=m.reasoning,
                    tool_calls=m.tool_calls,
                    tool_call_id=m.tool_call_id,
                )
                for m in messages
            ),
            answers=False,
        )
        started = await self.turns.enter(entry)
        return list(started.written)

    async def answer_instructions(self, conversation_id: str) -> dict[str, str]:
        """The ``instructions`` each Responses turn of the conversation was asked with (they
        replaced the system prompt for that turn), by the id of its answer; empty for a store
        that keeps no Responses objects."""
        store = self.store
        if not keeps_responses(store):
            return {}
        return await store.answer_instructions(conversation_id, tenant_id=self.tenant_id)

    async def item(self, conversation_id: str, item_id: str) -> ItemRecord:
        """One item of the conversation. Raises NotFound (also for another conversation's)."""
        conversation = await self.get(conversation_id)
        item = await self.store.get_item(item_id, tenant_id=self.tenant_id)
        if item.conversation_id != conversation.id:
            raise NotFound(f"item {item_id!r} not found in conversation {conversation.id!r}")
        return item

    async def delete_item(self, conversation_id: str, item_id: str) -> ConversationRecord:
        """Delete an item and its subtree; the head moves back to its parent when it was in it.
        Returns the conversation after."""
        return await self._responses().delete_item(conversation_id, item_id, tenant_id=self.tenant_id)

    # -- Responses objects -------------------------------------------------------------------

    async def response(self, response_id: str) -> ResponseRecord:
        """Raises NotFound (also for another tenant's response)."""
        return await self._responses().get_response(response_id, tenant_id=self.tenant_id)

    async def response_and_conversation(self, response_id: str) -> tuple[ResponseRecord, ConversationRecord]:
        """A response and the conversation it belongs to, in one read. Raises NotFound."""
        return await self._responses().get_response_with_conversation(response_id, tenant_id=self.tenant_id)

    async def response_answer(self, record: ResponseRecord) -> ItemRecord | None:
        """The stored answer of a response (``None`` while it is in progress)."""
        if record.output_item_id is None:
            return None
        return await self.store.get_item(record.output_item_id, tenant_id=self.tenant_id)

    async def response_context(self, record: ResponseRecord) -> list[ItemRecord]:
        """A response's whole context as stored: the path to its newest input item."""
        if not record.input_item_ids:
            return []
        return await self.path(record.conversation_id, record.input_item_ids[-1])

    async def delete_response(self, response_id: str) -> None:
        """Delete a response object (its items stay: later responses may build on them); the
        last response of a chain ``/v1/responses`` made takes its conversation along."""
        await self._responses().delete_response(response_id, tenant_id=self.tenant_id)

    def _responses(self) -> ResponseStore:
        store = self.store
        if not keeps_responses(store):
            raise InvalidInput("this store does not keep responses")
        return store
