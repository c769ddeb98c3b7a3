"""The durable conversation tree: a ``Store`` protocol and its SQL implementation."""

from ..records import ConversationRecord, ItemRecord, NewItem
from .base import DEFAULT_TENANT, Store
from .sql import SQLStore

__all__ = ["DEFAULT_TENANT", "ConversationRecord", "ItemRecord", "NewItem", "SQLStore", "Store"]
