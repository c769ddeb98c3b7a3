"""The planner's cache is the engine's: made (or given) at construction, passed to every plan,
shared by the engine's tenant-scoped copies, never a module-level memo another engine sees."""

from __future__ import annotations

import base64
import struct
from collections.abc import AsyncGenerator
from dataclasses import replace
from pathlib import Path

import pytest

from multiturn.backends.base import BackendInfo
from multiturn.context.cache import PlanCache
from multiturn.engine import Engine
from multiturn.store import SQLStore
from multiturn.tokens import image_tokens
from multiturn.types import ImagePart, TextPart


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


class CountsImagesAs(InfoOnly):
    """A vision backend whose alias counts an image as a fixed number of tokens."""

    def __init__(self, images: int | None) -> None:
        self.images = images

    def info(self) -> BackendInfo:
        base = BackendInfo(
            name="vision", context_window=65_536, max_output_tokens=512, capabilities=frozenset({"text", "image"})
        )
        return base if self.images is None else replace(base, image_tokens=self.images)


async def test_images_are_planned_as_the_model_counts_them_with_a_cache_per_count(store: SQLStore) -> None:
    header = b"\x89PNG\r\n\x1a\n" + struct.pack(">I4sII", 13, b"IHDR", 1120, 1120) + b"\x08\x02\x00\x00\x00"
    picture = ImagePart("data:image/png;base64," + base64.b64encode(header).decode())  # 1120 x 1120
    tokens = {}
    for images in (None, 7):
        backend = CountsImagesAs(images)
        engine = Engine(store, lambda name, b=backend: b, default_model="vision")
        conversation = await engine.create()
        _, report = await engine.preview(conversation.id, [TextPart("what is this?"), picture])
        tokens[images] = report.tokens
        counted = engine.plan_cache if images is None else engine._other_plan_caches[7]
        assert _filled(counted) > 0
        if images is not None:
            assert _filled(engine.plan_cache) == 0  # the default cache never holds another count
    assert tokens[None] - tokens[7] == image_tokens(picture) - 7 > 0
