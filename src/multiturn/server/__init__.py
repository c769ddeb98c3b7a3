"""The gateway: OpenAI-compatible and DashScope-native endpoints over the engine."""

from .app import create_app

__all__ = ["create_app"]
