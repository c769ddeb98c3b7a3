"""The curated public API is pinned, importing it has no side effects, and the sync and async
faces offer the same methods."""

from __future__ import annotations

import inspect
import subprocess
import sys

import multiturn
from multiturn import AsyncClient, AsyncConversation, Client, Conversation

PUBLIC = [
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


def test_exported_members_are_pinned() -> None:
    assert sorted(multiturn.__all__) == sorted(PUBLIC)
    for name in PUBLIC:
        assert hasattr(multiturn, name), name


def test_importing_the_package_loads_no_model_runtime_cli_or_server() -> None:
    code = (
        "import sys, multiturn; "
        "heavy = [m for m in ('llama_cpp', 'typer', 'rich', 'prompt_toolkit', 'uvicorn', 'starlette') "
        "if m in sys.modules]; print(','.join(heavy))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""


def _public_methods(cls: type) -> dict[str, list[str]]:
    return {
        name: [p for p in inspect.signature(member).parameters if p != "self"]
        for name, member in inspect.getmembers(cls)
        if not name.startswith("_") and callable(member)
    }


def test_sync_and_async_conversations_have_the_same_methods_and_parameters() -> None:
    assert _public_methods(Conversation) == _public_methods(AsyncConversation)


def test_sync_and_async_clients_have_the_same_conversation_methods() -> None:
    shared = ["create", "conversation", "list", "latest"]
    for name in shared:
        sync_params = list(inspect.signature(getattr(Client, name)).parameters)
        async_params = list(inspect.signature(getattr(AsyncClient, name)).parameters)
        assert sync_params == async_params, name
        assert inspect.iscoroutinefunction(getattr(AsyncClient, name))
