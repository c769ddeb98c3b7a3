"""What a model can read: its capabilities against a request's content parts."""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import UnsupportedContent
from ..types import AudioPart, ImagePart, Message, VideoPart


def check_capabilities(messages: Sequence[Message], capabilities: frozenset[str], model: str) -> None:
    """Refuse parts the model cannot read, naming the first one found."""
    for message in messages:
        for part in message.content:
            needed = _CAPABILITY.get(type(part))
            if needed is not None and needed not in capabilities:
                raise UnsupportedContent(
                    f"the model {model!r} does not accept {part.type} input; use a model with {needed} support"
                )


_CAPABILITY: dict[type, str] = {ImagePart: "vision", AudioPart: "audio", VideoPart: "video"}
