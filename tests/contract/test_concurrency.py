"""Many writers, one conversation: appends at the head serialize on the conversation's row.

64 asyncio tasks over several engines (so several connections really are open at once), on
SQLite and PostgreSQL; then two OS processes on PostgreSQL. Each time the result must be one
linear chain holding every appended item exactly once.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
import textwrap
from pathlib import Path

import pytest

from multiturn import Settings
from multiturn.records import ItemRecord
from multiturn.store import NewItem, SQLStore
from multiturn.store.base import HEAD
from multiturn.types import TextPart

WRITERS = 64
ENGINES = 3  # up to 16 connections each: 48 at most, well under PostgreSQL's default 100 shared with the suite


def _chain(items: list[ItemRecord], head: str | None) -> list[ItemRecord]:
    """The items from the root to ``head``; asserts the tree is exactly that one chain."""
    by_id = {item.id: item for item in items}
    chain: list[ItemRecord] = []
    current = head
    while current is not None:
        chain.append(by_id[current])
        current = by_id[current].parent_id
    chain.reverse()
    assert len(chain) == len(items), "some items are off the chain: an append did not see the previous head"
    assert [item.parent_id for item in chain] == [None] + [item.id for item in chain[:-1]]
    return chain


async def test_64_concurrent_appends_at_the_head_build_one_chain(db_url: str) -> None:
    url = Settings(db=db_url).database_url
    stores = [SQLStore(url) for _ in range(ENGINES)]
    try:
        await stores[0].migrate()
        conversation = await stores[0].create_conversation()
        root = await stores[0].append(conversation.id, None, NewItem(role="system", content=(TextPart("root"),)))
        start = asyncio.Event()

        async def write(n: int) -> ItemRecord:
            await start.wait()
            store = stores[n % ENGINES]
            return await store.append(conversation.id, HEAD, NewItem(role="user", content=(TextPart(f"w{n}"),)))

        tasks = [asyncio.create_task(write(n)) for n in range(WRITERS)]
        await asyncio.sleep(0)
        start.set()
        written = await asyncio.gather(*tasks)

        items = await stores[0].items(conversation.id)
        head = (await stores[0].get_conversation(conversation.id)).head_item_id
        chain = _chain(items, head)
        assert chain[0].id == root.id
        texts = [item.text for item in chain[1:]]
        assert sorted(texts) == sorted(f"w{n}" for n in range(WRITERS))
        assert len(set(texts)) == WRITERS
        assert {item.id for item in written} == {item.id for item in chain[1:]}
        # Each returned record says the parent it was really written under.
        assert {item.id: item.parent_id for item in written} == {item.id: item.parent_id for item in chain[1:]}
        assert head == chain[-1].id
    finally:
        for store in stores:
            await store.close()


WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from multiturn.store import NewItem, SQLStore
    from multiturn.store.base import HEAD
    from multiturn.types import TextPart

    async def main(url, conversation_id, tag, count):
        store = SQLStore(url)
        try:
            print("ready", flush=True)
            sys.stdin.readline()  # start together
            for n in range(count):
                await store.append(conversation_id, HEAD, NewItem(role="user", content=(TextPart(f"{tag}{n}"),)))
        finally:
            await store.close()

    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
    """
)


@pytest.mark.postgres
async def test_two_processes_appending_to_one_postgres_conversation_build_one_chain(
    db_url: str, tmp_path: Path
) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("the two-process test is for PostgreSQL")
    url = Settings(db=db_url).database_url
    store = SQLStore(url)
    try:
        await store.migrate()
        conversation = await store.create_conversation()
        script = tmp_path / "writer.py"
        script.write_text(WRITER)
        per_process = 40
        procs = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                str(script),
                url,
                conversation.id,
                tag,
                str(per_process),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            for tag in ("a", "b")
        ]
        try:
            for proc in procs:
                assert proc.stdout is not None
                assert (await asyncio.wait_for(proc.stdout.readline(), 60)).strip() == b"ready"
            for proc in procs:
                assert proc.stdin is not None
                proc.stdin.write(b"go\n")
            results = await asyncio.wait_for(asyncio.gather(*(proc.communicate() for proc in procs)), 120)
            for proc, (_, err) in zip(procs, results, strict=True):
                assert proc.returncode == 0, err.decode()
        finally:
            for proc in procs:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
        items = await store.items(conversation.id)
        head = (await store.get_conversation(conversation.id)).head_item_id
        chain = _chain(items, head)
        texts = [item.text for item in chain]
        assert sorted(texts) == sorted([f"a{n}" for n in range(per_process)] + [f"b{n}" for n in range(per_process)])
        # Each process's own writes keep their order along the chain.
        for tag in ("a", "b"):
            mine = [t for t in texts if t.startswith(tag)]
            assert mine == [f"{tag}{n}" for n in range(per_process)], json.dumps(mine)
        # The two processes really interleaved (they ran at once, not one after the other).
        switches = sum(1 for x, y in itertools.pairwise(texts) if x[0] != y[0])
        assert switches > 1, texts
    finally:
        await store.close()
