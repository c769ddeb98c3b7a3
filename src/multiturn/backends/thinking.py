"""Split ``<think>...</think>`` out of a streamed text into reasoning.

Models such as Qwen3 or DeepSeek-R1 write their reasoning inline between think tags. The
splitter consumes text pieces of any size (a tag may arrive cut across pieces) and returns
``(content, reasoning)`` increments, so reasoning is streamed apart, stored apart and never
replayed. Text before an opening tag and after the closing tag is content.
"""

from __future__ import annotations

OPEN = "<think>"
CLOSE = "</think>"


class ThinkSplitter:
    def __init__(self) -> None:
        self._buffer = ""
        self._thinking = False
        self._done = False  # a think block has closed: everything after is content
        self._strip = False  # newlines right after </think> are dropped, whatever the chunking

    def feed(self, text: str) -> tuple[str, str]:
        """Add ``text``; return the ``(content, reasoning)`` that is now certain."""
        self._buffer += text
        content: list[str] = []
        reasoning: list[str] = []
        while self._buffer:
            if self._done:
                if self._strip:
                    self._buffer = self._buffer.lstrip("\n")
                    self._strip = not self._buffer
                content.append(self._buffer)
                self._buffer = ""
                break
            tag = CLOSE if self._thinking else OPEN
            index = self._buffer.find(tag)
            sink = reasoning if self._thinking else content
            if index >= 0:
                sink.append(self._buffer[:index])
                self._buffer = self._buffer[index + len(tag) :]
                if self._thinking:
                    self._done = self._strip = True
                self._thinking = not self._thinking
                continue
            keep = _partial_suffix(self._buffer, tag)
            sink.append(self._buffer[: len(self._buffer) - keep])
            self._buffer = self._buffer[len(self._buffer) - keep :]
            break
        return "".join(content), "".join(reasoning)

    def flush(self) -> tuple[str, str]:
        """End of stream: whatever is held back is released where it belongs."""
        rest, self._buffer = self._buffer, ""
        return ("", rest) if self._thinking else (rest, "")


def _partial_suffix(text: str, tag: str) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of ``tag``."""
    for size in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:size]):
            return size
    return 0


def split_thinking(text: str) -> tuple[str, str]:
    """Split a whole text at once: ``(content, reasoning)``."""
    splitter = ThinkSplitter()
    content, reasoning = splitter.feed(text)
    more_content, more_reasoning = splitter.flush()
    return content + more_content, reasoning + more_reasoning
