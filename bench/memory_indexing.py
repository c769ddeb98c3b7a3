"""What indexing an answered round costs, as the engine does it after each turn that recalls.

The first conversations of a LoCoMo or LongMemEval file are written into a temporary SQLite store
round by round (a user item, its answer), and after each round ``IndexRecall.index_round`` indexes
it (render, embed with the default embedder, write the entries and the full-text index), timed
alone: wall time and the process's CPU time.

    .venv/bin/python bench/memory_indexing.py --data ../shared/data/longmemeval/longmemeval_s_dev120.json.gz
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from multiturn.bench.memory_data import load
from multiturn.embeddings import load_embedder
from multiturn.memory.recall import IndexRecall
from multiturn.records import ItemRecord
from multiturn.settings import Settings
from multiturn.store import NewItem, SQLStore
from multiturn.types import TextPart


async def measure(data: Path, conversations: int, embedder: str) -> tuple[list[float], list[float]]:
    wall: list[float] = []
    cpu: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings.load(db=str(Path(tmp) / "i.db"), data_dir=Path(tmp), embedder=embedder)
        store = SQLStore(settings.database_url)
        await store.migrate()
        recall = IndexRecall(store, load_embedder(settings))
        try:
            for conversation in load(data)[:conversations]:
                record = await store.create_conversation()
                parent: str | None = None
                pending: list[ItemRecord] = []
                for turn in conversation.turns:
                    if turn.role == "user" and pending:
                        await _index(recall, record.id, pending, wall, cpu)
                        pending = []
                    item = NewItem(role=turn.role, content=(TextPart(turn.text),))
                    stored = await store.append(record.id, parent, item)
                    parent = stored.id
                    pending.append(stored)
                if pending:
                    await _index(recall, record.id, pending, wall, cpu)
        finally:
            await store.close()
    return wall, cpu


async def _index(
    recall: IndexRecall, conversation_id: str, items: list[ItemRecord], wall: list[float], cpu: list[float]
) -> None:
    started, used = time.perf_counter(), time.process_time()
    await recall.index_round(conversation_id, items, tenant_id="default")
    wall.append((time.perf_counter() - started) * 1000)
    cpu.append((time.process_time() - used) * 1000)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, -(-len(ordered) * q // 100) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--conversations", type=int, default=3)
    parser.add_argument("--embedder", default="wordllama")
    args = parser.parse_args()
    wall, cpu = asyncio.run(measure(args.data, args.conversations, args.embedder))
    print(f"{len(wall)} rounds indexed ({args.embedder})")
    for name, values in (("wall", wall), ("cpu", cpu)):
        p50, p95 = statistics.median(values), _percentile(values, 95)
        print(f"{name}: p50 {p50:.2f} ms, p95 {p95:.2f} ms, max {max(values):.2f} ms")


if __name__ == "__main__":
    main()
