"""Fixtures of the reliability suite (docs/reliability.md maps each guarantee to its test):
real ``multiturn serve`` processes on SQLite or PostgreSQL, in front of the fake upstream, which
plays the faults a real model server cannot be made to produce on demand."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Connection

from compat.upstreams import PatientFakeUpstream
from support.fake_upstream import FakeUpstream
from support.pg import pg_schema
from support.serve import Server, start_serve

INSTANT = "qwen-plus"
"""Answers at once: ``You said: <the user's text>``."""
HANG = "hang"
"""Never answers, streamed or not, until the client leaves."""
SLOW = "stall-1"
"""Streams two chunks, then one a second (one word each); not streamed, answers at once."""
LATE = "delay-2"
"""Answers after 2 s, streamed or not."""


def models(fake: FakeUpstream) -> dict[str, Any]:
    def alias() -> dict[str, Any]:
        return {"backend": "upstream", "base_url": fake.base_url, "capabilities": ["text"]}

    return {INSTANT: alias(), HANG: alias(), SLOW: alias(), LATE: alias()}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeUpstream]:
    with PatientFakeUpstream() as server:
        yield server


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Where a test's gateways keep their store: a SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield str(tmp_path / "gateway.db")
        return
    with pg_schema() as url:
        yield url


class Gateways:
    """Starts ``multiturn serve`` processes on one store; stops them all at the end."""

    def __init__(self, fake: FakeUpstream, database: str, home: Path) -> None:
        self.fake, self.database, self.home = fake, database, home
        self.started: list[Server] = []

    def start(self, name: str = "gateway") -> Server:
        server = start_serve(
            name,
            self.home / f"{name}-{len(self.started)}",
            models=models(self.fake),
            env={"MULTITURN_DB": self.database, "MULTITURN_EMBEDDER": "none"},
        )
        self.started.append(server)
        return server

    def stop(self) -> None:
        for server in self.started:
            server.stop()


@pytest.fixture
def gateways(fake: FakeUpstream, database: str, tmp_path: Path) -> Iterator[Gateways]:
    started = Gateways(fake, database, tmp_path)
    try:
        yield started
    finally:
        started.stop()


def query(database: str, sql: str) -> list[dict[str, Any]]:
    """Rows of a gateway's store, read directly (not through multiturn)."""
    import sqlalchemy as sa

    with connected(database) as conn:
        return [dict(row) for row in conn.execute(sa.text(sql)).mappings()]


@contextmanager
def connected(database: str) -> Iterator[Connection]:
    """A direct connection to a gateway's store (a SQLite file or a PostgreSQL URL)."""
    import sqlalchemy as sa

    url = database if database.startswith("postgresql") else f"sqlite:///{database}"
    if url.startswith("postgresql"):
        url = sa.make_url(url).set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            yield conn
    finally:
        engine.dispose()
