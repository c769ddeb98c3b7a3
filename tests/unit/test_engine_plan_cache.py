"""The planner's cache is the engine's: made (or given) at construction, passed to every plan,
shared by the engine's tenant-scoped copies, never a module-level memo another engine sees."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from pathlib import Path

import pytest

from multiturn.backends.base import BackendInfo
from multiturn.context.cache import PlanCache
from multiturn.engine import Engine
from multiturn.store import SQLStore
from multiturn.types import TextPart


class InfoOnly:
    """A backend that is only asked what it is: previews plan and call no model."""

    def info(self) -> BackendInfo:
        return BackendInfo(name="plan-only", context_window=4096, max_output_tokens=512)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncGenerator[SQLStore, None]:
    sqlite = SQLStore(f"sqlite:///{tmp_path / 'c.db'}")
    await sqlite.migrate()
    yield sqlite
    await sqlite.close()


def _filled(cache: PlanCache) -> int:
    return sum(cache.sizes().values())


async def test_each_engine_plans_with_its_own_cache(store: SQLStore) -> None:
    backend = InfoOnly()
    given = PlanCache(size=32)
    first = Engine(store, lambda name: backend, default_model="scripted", plan_cache=given)
    second = Engine(store, lambda name: backend, default_model="scripted")
    assert first.plan_cache is given and isinstance(second.plan_cache, PlanCache)
    assert first.for_tenant("other").plan_cache is given  # a tenant's copy shares it
    conversation = await first.create(system_prompt="Be brief.")
    assert _filled(given) == 0
    await first.preview(conversation.id, [TextPart("hello")])
    assert _filled(given) > 0 and _filled(second.plan_cache) == 0  # nothing shared behind the engines
    for n in range(100):
        await first.preview(conversation.id, [TextPart(f"question {n}")])
    assert len(given.counts) <= 32 and len(given.blocks) <= 32  # bounded by the size it was given
