"""The durable conversation tree: a ``Store`` protocol and its SQL implementation."""

from .base import DEFAULT_TENANT, Store
from ..records import ConversationRecord, ItemRecord, NewItem
from .sql import SQLStore

__all__ = ["DEFAULT_TENANT", "ConversationRecord", "ItemRecord", "NewItem", "SQLStore", "Store"]
