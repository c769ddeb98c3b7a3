"""Okapi BM25 in memory, for paths that are not stored (a stateless request's own array).

Stored conversations are searched by the store's full-text index (FTS5 BM25 on SQLite); an
unstored path has no index, so its turns are scored here, with the same formula (k1 = 1.2,
b = 0.75, idf = ln(1 + (N - n + 0.5) / (n + 0.5))). Words are lower-cased, English stopwords
dropped, and a plural or verb ending and a final e trimmed (a light stand-in for FTS5's Porter stemmer).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

from .query import STOPWORDS

_WORD = re.compile(r"\w+", re.UNICODE)
_SUFFIXES = ("ing", "ies", "es", "ed", "s")


def stem(word: str) -> str:
    """``named``, ``names``, ``name`` -> ``nam``; ``cities`` -> ``city``; ``walking`` -> ``walk``."""
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)] + ("y" if suffix == "ies" else "")
            break
    return word[:-1] if word.endswith("e") and len(word) > 3 else word


def terms(text: str) -> list[str]:
    return [stem(w) for w in (w.lower() for w in _WORD.findall(text)) if w not in STOPWORDS]


class BM25:
    """An index of ``documents`` (by position) that scores queries."""

    def __init__(self, documents: Sequence[str], *, k1: float = 1.2, b: float = 0.75) -> None:
        self._k1, self._b = k1, b
        self._tf = [Counter(terms(d)) for d in documents]
        self._lengths = [sum(tf.values()) for tf in self._tf]
        self._average = (sum(self._lengths) / len(self._lengths)) if self._lengths else 0.0
        self._postings: dict[str, list[int]] = {}
        for n, tf in enumerate(self._tf):
            for term in tf:
                self._postings.setdefault(term, []).append(n)

    def scores(self, query: str) -> dict[int, float]:
        """Document position -> score, for documents sharing a word with ``query``."""
        total = len(self._tf)
        out: dict[int, float] = {}
        for term in dict.fromkeys(terms(query)):
            posting = self._postings.get(term)
            if not posting:
                continue
            idf = math.log(1 + (total - len(posting) + 0.5) / (len(posting) + 0.5))
            for n in posting:
                tf = self._tf[n][term]
                norm = self._k1 * (1 - self._b + self._b * self._lengths[n] / (self._average or 1))
                out[n] = out.get(n, 0.0) + idf * tf * (self._k1 + 1) / (tf + norm)
        return out
