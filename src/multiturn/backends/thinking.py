"""Split ``<think>...</think>`` out of a streamed text into reasoning.

Models such as Qwen3 or DeepSeek-R1 write their reasoning inline between think tags. The
splitter consumes text pieces of any size (a tag may arrive cut across pieces) and returns
``(content, reasoning)`` increments, so reasoning is streamed apart, stored apart and never
replayed. Text before an opening tag and after the closing tag is content.

``InlineThink`` applies it to an upstream's deltas (Qwen3 served by llama.cpp or Ollama without a
reasoning parser writes ``<think>...</think>`` at the start of ``content``): it decides at the
first content, and only an answer whose content *opens* with the tag (after blank space) is
split; any other passes through untouched, at the cost of one attribute test per delta.
"""

from __future__ import annotations

from dataclasses import replace

from ..types import Delta

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

    @property
    def finished(self) -> bool:
        """The think block has closed and everything after it is plain content from now on."""
        return self._done and not self._strip and not self._buffer

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


UNDECIDED, SPLITTING, PASSING = 0, 1, 2


class InlineThink:
    """Moves a leading ``<think>...</think>`` of streamed content into reasoning.

    ``state`` is ``PASSING`` once nothing more can change: a caller skips ``feed`` then. Until
    the first content that is not blank space decides, that content is held back (a tag may
    arrive cut across chunks); reasoning and tool-call pieces are never held.
    """

    __slots__ = ("_held", "_splitter", "state")

    def __init__(self) -> None:
        self.state = UNDECIDED
        self._held = ""
        self._splitter: ThinkSplitter | None = None

    def feed(self, delta: Delta) -> Delta | None:
        """The delta with its content split (``None`` when nothing of it is certain yet); a
        delta with a finish reason releases everything held back."""
        content, reasoning = self._split(delta.content) if delta.content else ("", "")
        if delta.finish_reason is not None:
            more_content, more_reasoning = self.flush()
            content, reasoning = content + more_content, reasoning + more_reasoning
        out = replace(delta, content=content, reasoning=delta.reasoning + reasoning)
        if out.content or out.reasoning or out.tool_calls or out.finish_reason or out.usage:
            return out
        return None

    def _split(self, text: str) -> tuple[str, str]:
        if self.state == PASSING:
            return text, ""
        if self.state == UNDECIDED:
            self._held += text
            start = self._held.lstrip()
            if OPEN.startswith(start):  # blank, or a prefix of the tag: not decided yet
                return "", ""
            held, self._held = self._held, ""
            if not start.startswith(OPEN):
                self.state = PASSING
                return held, ""
            self.state = SPLITTING
            self._splitter = ThinkSplitter()
            text = start
        assert self._splitter is not None
        content, reasoning = self._splitter.feed(text)
        if self._splitter.finished:
            self.state = PASSING
        return content, reasoning

    def flush(self) -> tuple[str, str]:
        """At the end of the answer: ``(content, reasoning)`` still held back."""
        if self.state == UNDECIDED:
            held, self._held = self._held, ""
            self.state = PASSING
            return held, ""
        if self.state == SPLITTING and self._splitter is not None:
            self.state = PASSING
            return self._splitter.flush()
        return "", ""
