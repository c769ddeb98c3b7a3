"""Shared fixtures: real SQLite files, a real PostgreSQL schema per test, the real model.

PostgreSQL tests need ``MULTITURN_TEST_PG_DSN`` (``make test`` starts the local cluster and
sets it); without it they are skipped, visibly. The embedded model is the default catalogue
model, pulled by ``make test`` into the user's cache; it is loaded once per test process.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from multiturn import AsyncClient, Settings, catalog
from multiturn.store import SQLStore
from support.pg import pg_schema

DEFAULT_MODEL_DIR = Settings().models_dir


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database on each backend: a SQLite file, or a PostgreSQL schema."""
    if request.param == "sqlite":
        yield str(tmp_path / "store.db")
        return
    with pg_schema() as url:
        yield url


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[SQLStore]:
    s = SQLStore(Settings(db=db_url).database_url)
    await s.migrate()
    yield s
    await s.close()


@pytest.fixture
def model_settings(tmp_path: Path) -> Settings:
    """Settings for the real default model, with a private database."""
    spec = catalog.find(Settings().model)
    if not catalog.is_pulled(spec, DEFAULT_MODEL_DIR):
        pytest.fail(f"the default model is not pulled: run `multiturn models pull {spec.name}` (make test does)")
    return Settings(data_dir=tmp_path, db=str(tmp_path / "chat.db"), cache_dir=DEFAULT_MODEL_DIR.parent)


@pytest.fixture
async def client(model_settings: Settings) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(model_settings) as c:
        yield c
