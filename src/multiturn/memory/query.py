"""What a recall searches for: the new input, plus the previous turn when the input leans on it.

"And what did she say about it?" names nothing; the turn before it does. The previous turn is
added only then (a pronoun or a demonstrative with no name beside it, or a single content word): added to every
query, it pulls recall toward whatever was said last, which the window already holds.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from ..records import ItemRecord

_STOPWORD_TEXT = """a about above after again against all am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further
    had has have having he her here hers herself him himself his how i if in into is it its itself
    just me more most my myself no nor not now of off on once only or other our ours ourselves out
    over own same she should so some such than that the their theirs them themselves then there
    these they this those through to too under until up very was we were what when where which
    while who whom why will with would you your yours yourself yourselves s t don ll re ve m d"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())
_ANAPHORA_TEXT = "it its he him his she her they them their this that these those there then"
_ANAPHORA = frozenset(_ANAPHORA_TEXT.split())
_WORD = re.compile(r"\w+", re.UNICODE)


def content_words(text: str) -> list[str]:
    """The words of ``text`` without English stopwords, lower-cased, first occurrence first."""
    words = (w.lower() for w in _WORD.findall(text))
    return list(dict.fromkeys(w for w in words if w not in STOPWORDS))


def leans_on_context(text: str) -> bool:
    """Whether an input needs the previous turn: a pronoun or demonstrative with no name to
    anchor it (a capitalized word past the first), or a single content word ("Why?", "And Bob?")."""
    words = _WORD.findall(text)
    if len(content_words(text)) < 2:
        return True
    named = any(w[:1].isupper() for w in words[1:] if w.lower() not in STOPWORDS)
    return not named and any(w.lower() in _ANAPHORA for w in words)


@dataclass(frozen=True, slots=True)
class Query:
    text: str
    """The new input's text."""
    previous: str
    """The previous turn's text when the input leans on it, else empty."""

    @property
    def lexical(self) -> str:
        """The content words of both, for a full-text search."""
        return " ".join(content_words(f"{self.text}\n{self.previous}"))


def build_query(newest: Sequence[ItemRecord], history: Sequence[ItemRecord]) -> Query:
    text = "\n".join(item.text for item in newest)
    previous = next((item.text for item in reversed(history) if item.text.strip()), "")
    return Query(text, previous if leans_on_context(text) else "")
