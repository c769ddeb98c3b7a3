"""multiturn: durable multi-turn conversations on top of stateless chat APIs.

The public API is the names below; everything else is private and may change. Importing this
package loads neither llama.cpp, nor the CLI, nor the server.
"""

from .client import AsyncClient, AsyncConversation
from .errors import (
    BackendError,
    ContextTooLong,
    InvalidInput,
    ModelError,
    ModelIntegrityError,
    ModelUnavailable,
    MultiturnError,
    NotFound,
    StoreError,
)
from .records import ConversationRecord, ItemRecord
from .settings import Settings
from .sync import Client, Conversation
from .types import (
    AudioPart,
    ContextReport,
    Cost,
    Delta,
    GenerationParams,
    ImagePart,
    Message,
    Reply,
    TextPart,
    ToolCall,
    Usage,
    VideoPart,
)

__version__ = "0.1.0"

__all__ = [
    "AsyncClient",
    "AsyncConversation",
    "AudioPart",
    "BackendError",
    "Client",
    "ContextReport",
    "ContextTooLong",
    "Conversation",
    "ConversationRecord",
    "Cost",
    "Delta",
    "GenerationParams",
    "ImagePart",
    "InvalidInput",
    "ItemRecord",
    "Message",
    "ModelError",
    "ModelIntegrityError",
    "ModelUnavailable",
    "MultiturnError",
    "NotFound",
    "Reply",
    "Settings",
    "StoreError",
    "TextPart",
    "ToolCall",
    "Usage",
    "VideoPart",
    "__version__",
]
