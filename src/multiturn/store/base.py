"""The ``Store`` protocol: the durable conversation tree.

Invariants every implementation keeps:
- Items are never rewritten: a retry, an undo or a fork adds items or moves a head pointer.
- ``append`` writes the item and moves the conversation's head in one transaction, and refuses
  a parent that belongs to another conversation.
- Appends to one conversation are serialized on its row: ``append(..., HEAD, ...)`` reads the
  head and moves it in one transaction, so concurrent writers (tasks, processes) build one
  chain and lose nothing.
- Every read and write is scoped by tenant: another tenant's object is ``NotFound``.
- Deleting a conversation deletes every row that names it or its items.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol

from ..records import ConversationRecord, ItemRecord, NewItem

if TYPE_CHECKING:
    from .turns import Blocked, OpenTurn, Started, TurnEntry

DEFAULT_TENANT = "default"


class _Head(enum.Enum):
    HEAD = "head"

    def __repr__(self) -> str:
        return "HEAD"


HEAD: Final = _Head.HEAD
"""The ``parent_id`` that means "the conversation's head when the write happens" (read under
the conversation's row lock, not before it)."""

Parent = str | None | Literal[_Head.HEAD]
"""An item's parent as ``append`` takes it: an item id, ``None`` (a new root) or ``HEAD``."""


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    """A stored gateway key. The key itself is never stored: only its SHA-256 (``key_hash``)
    and its first characters (``prefix``), for people to tell keys apart."""

    id: str
    tenant_id: str
    name: str | None
    prefix: str
    key_hash: str
    policy: str | None
    created_at: int
    revoked_at: int | None = None


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

    async def find_conversations(
        self, words: Sequence[str], *, tenant_id: str = DEFAULT_TENANT, limit: int = 50
    ) -> list[tuple[ConversationRecord, ItemRecord | None]]:
        """Conversations whose title, or one of whose items, holds every word (a substring,
        case-insensitive), newest activity first, each with its oldest matching item (``None``
        when the title matched)."""
        ...

    async def first_user_items(
        self, conversation_ids: Sequence[str], *, tenant_id: str = DEFAULT_TENANT
    ) -> dict[str, ItemRecord]:
        """The oldest user item of each conversation that has one."""
        ...

    async def update_conversation(
        self, conversation_id: str, *, tenant_id: str = DEFAULT_TENANT, **fields: Any
    ) -> ConversationRecord:
        """Update ``title``, ``model``, ``system_prompt``, ``metadata`` or ``head_item_id``."""
        ...

    async def delete_conversation(self, conversation_id: str, *, tenant_id: str = DEFAULT_TENANT) -> None:
        """Delete the conversation and every row that names it or its items (items,
        summaries, index entries and their full-text rows). Raises NotFound."""
        ...

    async def prune(self, older_than_ms: int, *, tenant_id: str | None = DEFAULT_TENANT) -> list[str]:
        """Delete the conversations with no activity (``updated_at``) since ``older_than_ms``,
        of one tenant or (``None``) of all; returns their ids."""
        ...

    async def import_conversation(
        self, conversation: ConversationRecord, tree: Sequence[ItemRecord], *, tenant_id: str = DEFAULT_TENANT
    ) -> ConversationRecord:
        """Write a copy of a whole tree (``tree``: every item, parents first) under new ids, in
        one transaction, times kept; item ids named in the items' context reports are renamed
        too.

        Raises:
            InvalidInput: a parent or the head names no item of ``tree``, or a parent comes
                after its child.
        """
        ...

    async def append(
        self,
        conversation_id: str,
        parent_id: Parent,
        item: NewItem,
        *,
        tenant_id: str = DEFAULT_TENANT,
        move_head: bool = True,
    ) -> ItemRecord:
        """Write ``item`` under ``parent_id`` (``HEAD``: the head at the time of the write) and
        (by default) make it the head.

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

    # -- open turns (``store/turns.py`` says what each step writes) ---------------------------

    @property
    def owner(self) -> str:
        """This process's owner token for the turns it runs."""
        ...

    @property
    def announces_turn_ends(self) -> bool:
        """Whether turns ending in other processes are announced (else waiters poll)."""
        ...

    async def own_turns(self, wake: Callable[[str], None]) -> None:
        """Start owning turns; ``wake(turn_id)`` hears of turns ended in other processes."""
        ...

    async def enter_turn(self, entry: TurnEntry) -> Started | Blocked:
        """Queue a turn behind the open turns of its conversation, or start it.

        Raises:
            NotFound: the conversation, or the parent asked for, does not exist.
        """
        ...

    async def turn_ahead(self, turn_id: str, conversation_id: str) -> Blocked | None:
        """The open turn right before ``turn_id`` in its queue, if any."""
        ...

    async def end_turn(
        self,
        turn_id: str,
        conversation_id: str,
        records: Sequence[ItemRecord],
        *,
        response: dict[str, Any] | None = None,
        parent_id: str | None = None,
        discard: bool = False,
    ) -> bool:
        """Write a started turn's items and outcome and close it; ``False`` (nothing written)
        when its conversation, response or parent was deleted while it ran. ``discard``: close
        it with nothing stored and its Responses object deleted."""
        ...

    async def leave_turn(self, turn_id: str, conversation_id: str) -> None:
        """Drop a queued turn whose caller left."""
        ...

    async def save_draft(self, turn_id: str, text: str) -> None:
        """Keep the answer so far with the open turn (a dead owner's turn keeps it)."""
        ...

    async def abandoned_turns(self) -> list[OpenTurn]:
        """Open turns whose owner process is dead."""
        ...

    async def is_alive(self, owner: str) -> bool: ...

    async def close_abandoned(self, turn_id: str, conversation_id: str, owner: str) -> bool:
        """Close a dead owner's turn as ``incomplete`` with what it saved; ``False`` if its
        owner lives or it is already closed."""
        ...

    async def known_path(self, leaf_id: str | None, conversation: ConversationRecord) -> list[ItemRecord]:
        """``path`` to an item known to exist in ``conversation`` (as just read), without looking
        the item up first. Raises NotFound if it was deleted all the same."""
        ...


class KeyStore(Protocol):
    """The gateway's API keys, stored hashed."""

    async def create_api_key(
        self, *, tenant_id: str = DEFAULT_TENANT, name: str | None = None, policy: str | None = None
    ) -> tuple[ApiKeyRecord, str]:
        """A new random key. Returns its record and the key itself, which is not stored and
        cannot be shown again."""
        ...

    async def list_api_keys(self, *, tenant_id: str | None = None) -> list[ApiKeyRecord]:
        """Keys of one tenant, or of all (``None``), oldest first, revoked ones included."""
        ...

    async def revoke_api_key(self, key_id: str, *, tenant_id: str | None = None) -> ApiKeyRecord:
        """Revoke a key (again is a no-op). Raises ``NotFound``, also for another tenant's key."""
        ...

    async def api_key_by_hash(self, key_hash: str) -> ApiKeyRecord | None:
        """The key with this SHA-256, revoked or not; ``None`` when there is none."""
        ...

    async def has_api_keys(self) -> bool:
        """Whether any key was ever created (revoked ones count: revoking every key does not
        open the gateway)."""
        ...
