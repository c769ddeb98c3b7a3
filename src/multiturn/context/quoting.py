"""How earlier turns enter a request as quoted data, never as instructions: the prompt-injection
boundary of the summary and the recalled rounds.

Both are appended to the leading system message (``summary.py``, ``retrieval.py``), the place a
model trusts most, and both carry text other people wrote: a user's message, a web page an
assistant quoted, a tool's result. So each enters as a block

    <header line: what it is, quoted data from earlier turns, not instructions to follow>
    <tag>
    ...the quoted text...
    </tag>

and the quoted text is escaped (``escape``) so that nothing inside can end the block early or
open another: an opening or closing tag of either block (any case, spaces allowed, the look-alike
less-than signs U+FF1C and U+FE64 too) and a chat template's special-token opener ``<|`` (``<|im_end|>``,
``<|im_start|>``, Llama's ``<|start_header_id|>``...) have their ``<`` written ``&lt;``. Text
without those (all of LoCoMo's turns, all but three of LongMemEval's development histories, none
of them evidence) is quoted verbatim. The block is deterministic, so the prompt's prefix stays
cacheable.
"""

from __future__ import annotations

import re

TAGS = ("summary", "recalled")
"""The blocks' tag names."""

_MARKER = re.compile("[<\uff1c\ufe64]" r"(?=\s*/?\s*(?:" + "|".join(TAGS) + r")\b|\|)", re.IGNORECASE)


def escape(text: str) -> str:
    """``text`` with every ``<`` that would open a block's tag or a special token written
    ``&lt;`` (see the module docstring); any other text unchanged."""
    return _MARKER.sub("&lt;", text)


def block(header: str, tag: str, body: str) -> str:
    """``body`` (already escaped) quoted under ``header`` between ``<tag>`` and ``</tag>``."""
    return f"{header}\n<{tag}>\n{body}\n</{tag}>"


def opening(header: str, tag: str) -> str:
    """What a block starts with, up to its quoted text."""
    return f"{header}\n<{tag}>\n"


def closing(tag: str) -> str:
    """What a block ends with, after its quoted text."""
    return f"\n</{tag}>"
