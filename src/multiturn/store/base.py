"""The ``Store`` protocol: the durable conversation tree.

Invariants every implementation keeps:
- Items are never rewritten: a retry, an undo or a fork adds items or moves a head pointer.
- ``append`` writes the item and moves the conversation's head in one transaction, and refuses
  a parent that belongs to another conversation.
- Every read and write is scoped by tenant: another tenant's object is ``NotFound``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from ..records import ConversationRecord, ItemRecord, NewItem

DEFAULT_TENANT = "default"


class Store(Protocol):
    async def migrate(self) -> list[str]:
        """Apply pending named migrations.

        Returns:
            The names of the migrations applied by this call (empty when up to date).
        Raises:
            StoreError: the database cannot be opened or written.
        """
        ...

    async def create_conversation(
        self,
        *,
        tenant_id: str = DEFAULT_TENANT,
        title: str | None = None,
        model: str | None = None,
        system_prompt: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> ConversationRecord: ...

    async def get_conversation(self, conversation_id: str, *, tenant_id: str = DEFAULT_TENANT) -> ConversationRecord:
        """Raises:
        NotFound: no such conversation for this tenant."""
        ...

    async def list_conversations(self, *, tenant_id: str = DEFAULT_TENANT, limit: int = 50) -> list[ConversationRecord]:
        """Newest activity first."""
        ...

    async def update_conversation(
        self, conversation_id: str, *, tenant_id: str = DEFAULT_TENANT, **fields: Any
    ) -> ConversationRecord:
        """Update ``title``, ``model``, ``system_prompt``, ``metadata`` or ``head_item_id``."""
        ...

    async def delete_conversation(self, conversation_id: str, *, tenant_id: str = DEFAULT_TENANT) -> None:
        """Delete the conversation and every item of it. Raises NotFound."""
        ...

    async def append(
        self,
        conversation_id: str,
        parent_id: str | None,
        item: NewItem,
        *,
        tenant_id: str = DEFAULT_TENANT,
        move_head: bool = True,
    ) -> ItemRecord:
        """Write ``item`` under ``parent_id`` and (by default) make it the head.

        Raises:
            NotFound: the conversation, or the parent in this conversation, does not exist.
        """
        ...

    async def get_item(self, item_id: str, *, tenant_id: str = DEFAULT_TENANT) -> ItemRecord: ...

    async def path(
        self, conversation_id: str, leaf_id: str | None, *, tenant_id: str = DEFAULT_TENANT
    ) -> list[ItemRecord]:
        """The items from the root down to ``leaf_id`` inclusive (empty for ``None``)."""
        ...

    async def items(self, conversation_id: str, *, tenant_id: str = DEFAULT_TENANT) -> list[ItemRecord]:
        """Every item of the tree, oldest first."""
        ...

    async def children(
        self, conversation_id: str, parent_id: str | None, *, tenant_id: str = DEFAULT_TENANT
    ) -> Sequence[ItemRecord]: ...

    async def close(self) -> None: ...
