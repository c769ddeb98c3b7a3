"""What a recall searches for: the new input, plus the previous turn when the input leans on it.

"And what did she say about it?" names nothing; the turn before it does. The previous turn is
added only then: an input of at most one content word ("Why?", "And Bob?"), or a short one (two or
three content words) with a pronoun or a demonstrative and no name beside it. Added to every query,
it pulls recall toward whatever was said last, which the window already holds; and an input of four
content words or more names its own subject even when it holds a pronoun ("How many days before my
friend's party did I order her gift?": the pronoun's antecedent is in the input). Counting pronouns
in long inputs too sent LongMemEval's last haystack turn with 11 of its 120 development questions,
and cost 1.7 points of recall there (0.958 against 0.975, simulated; ``bench/results/memory_baseline.md``).

An input may also say that it asks after an earlier exchange of this conversation ("you recommended",
"you told me", "in our previous chat"): ``asks_back``. Such a question repeats that exchange's words,
so the ranking hands its best full-text match over first (``ranking.rank``'s ``back``).
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


_TOKEN = re.compile(r"\w+|[.!?\n]", re.UNICODE)
_CALENDAR_TEXT = """monday tuesday wednesday thursday friday saturday sunday january february march april
    june july august september october november december"""
_CALENDAR = frozenset(_CALENDAR_TEXT.split())
"""Capitalized, but a time, not something a turn about it names ("from whom last Saturday?")."""


def names(text: str) -> list[str]:
    """The names ``text`` holds, lower-cased, first occurrence first: capitalized words that do
    not open a sentence, stopwords, "I", days and months aside ("Did Jon and Gina meet in Paris
    on Monday?" -> jon, gina, paris)."""
    found: list[str] = []
    opening = True
    for token in _TOKEN.findall(text):
        if token in ".!?\n":
            opening = True
            continue
        word = token.lower()
        if not opening and token[:1].isupper() and token != "I" and word not in STOPWORDS and word not in _CALENDAR:
            found.append(word)
        opening = False
    return list(dict.fromkeys(found))


_BACK = re.compile(
    r"\byou(?:'ve| had| have| once| just| already| previously| earlier)? (?:recommended|suggested|mentioned|told"
    r"|said|provided|gave|wrote|listed|shared|explained|described|offered|proposed|came up with|created)\b"
    r"|\bdid you (?:recommend|suggest|mention|tell|say|provide|give|write|list|share|explain|describe|offer|propose)\b"
    r"|\b(?:our (?:earlier|last|past) |previous )(?:conversation|chat|discussion)s?\b"
    r"|\bremind me (?:of|what|which|who|where|when|how|about)\b",
    re.IGNORECASE,
)


def asks_back(text: str) -> bool:
    """Whether ``text`` asks after an earlier exchange of the conversation: what the assistant said
    ("the restaurant you recommended", "what did you suggest?", "remind me what..."), or "our
    previous conversation / chat". A request ("Can you recommend a film?") does not."""
    return _BACK.search(text) is not None


_SELF_CONTAINED = 4
"""Content words from which an input is taken to name its own subject."""


def leans_on_context(text: str) -> bool:
    """Whether an input needs the previous turn: a single content word ("Why?", "And Bob?"), or
    fewer than ``_SELF_CONTAINED`` with a pronoun or demonstrative and no name to anchor it (a
    capitalized word past the first)."""
    words = _WORD.findall(text)
    count = len(content_words(text))
    if count < 2:
        return True
    if count >= _SELF_CONTAINED:
        return False
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

    @property
    def names(self) -> list[str]:
        """The names the input holds (``names``; the previous turn's are not its subject)."""
        return names(self.text)

    @property
    def back(self) -> bool:
        """Whether the input asks after an earlier exchange (``asks_back``)."""
        return asks_back(self.text)


def build_query(newest: Sequence[ItemRecord], history: Sequence[ItemRecord]) -> Query:
    text = "\n".join(item.text for item in newest)
    previous = next((item.text for item in reversed(history) if item.text.strip()), "")
    return Query(text, previous if leans_on_context(text) else "")
