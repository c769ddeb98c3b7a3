"""The Qwen tokenizer, warmed once per session (the first count reads the vocabulary, ~0.2 s,
which would trip hypothesis' deadline inside a property)."""

from __future__ import annotations

import pytest

from multiturn.tokens import QwenTokenizer


@pytest.fixture(scope="session")
def qwen() -> QwenTokenizer:
    tokenizer = QwenTokenizer()
    tokenizer.count("warm up")
    return tokenizer
