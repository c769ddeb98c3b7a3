"""Fixtures shared by the integration tests: a fake upstream and an OpenAI client for a gateway."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from support.fake_upstream import FakeUpstream


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    """A real HTTP server playing an OpenAI-compatible upstream (``support/fake_upstream.py``)."""
    with FakeUpstream() as server:
        yield server
