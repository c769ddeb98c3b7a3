"""SQLite's WAL is checkpointed by the store's own thread, never by a commit (``checkpoints.py``)."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

from multiturn import Settings
from multiturn.store import NewItem, SQLStore
from multiturn.store.base import HEAD
from multiturn.store.checkpoints import CHECKPOINT_EVERY_S, Checkpointer
from multiturn.types import TextPart


async def _append(store: SQLStore, conversation_id: str, n: int) -> None:
    for i in range(n):
        role = "user" if i % 2 == 0 else "assistant"
        await store.append(conversation_id, HEAD, NewItem(role=role, content=(TextPart(f"{i} " + "x" * 2000),)))


async def _checkpointed(checkpointer: Checkpointer) -> None:
    deadline = time.monotonic() + 10 * CHECKPOINT_EVERY_S + 5
    while checkpointer.checkpoints == 0:
        assert time.monotonic() < deadline, "no checkpoint ran"
        await asyncio.sleep(0.05)


async def test_commits_never_checkpoint_and_the_wal_is_recycled_all_the_same(tmp_path: Path) -> None:
    db = tmp_path / "store.db"
    wal = tmp_path / "store.db-wal"
    store = SQLStore(Settings(db=str(db)).database_url)
    try:
        await store.migrate()
        pragma = lambda conn: conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar()  # noqa: E731
        for long in (False, True):  # the loop's connection and the threads'
            assert await store._read(pragma, long=long) == 0
        conversation = await store.create_conversation()
        store._db._checkpointer.stop()  # type: ignore[attr-defined]
        await _append(store, conversation.id, 600)  # ~1,800 pages: past SQLite's own 1,000-page trigger
        grown = wal.stat().st_size
        assert grown > 4_000_000  # no commit checkpointed (one would have started the WAL over)

        checkpointer = store._db._checkpointer = Checkpointer(db)  # type: ignore[attr-defined]
        checkpointer.wrote()
        await _checkpointed(checkpointer)
        probe = sqlite3.connect(db)
        try:  # everything in the WAL is in the database file
            busy, frames, copied = probe.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            assert busy == 0 and frames == copied
        finally:
            probe.close()
        await _append(store, conversation.id, 600)  # the next writes start the WAL over
        assert wal.stat().st_size <= grown * 1.1
        head = (await store.get_conversation(conversation.id)).head_item_id
        assert len(await store.path(conversation.id, head)) == 1200
    finally:
        await store.close()
    assert not wal.exists() or wal.stat().st_size == 0  # the last connection to close checkpoints the rest


async def test_an_erasure_truncates_the_wal_while_the_thread_checkpoints(tmp_path: Path) -> None:
    """A truncation that finds a checkpoint running gives up at once: the thread pauses for
    it (``Checkpointer.paused``), so erasures between commits always leave an empty WAL."""
    db = tmp_path / "store.db"
    store = SQLStore(Settings(db=str(db)).database_url)
    checkpointer: Checkpointer = store._db._checkpointer  # type: ignore[attr-defined]
    try:
        await store.migrate()
        checkpointer._every_s = 0.001  # checkpointing all the time
        for _ in range(30):
            conversation = await store.create_conversation()
            await _append(store, conversation.id, 20)
            await store.delete_conversation(conversation.id)
            assert (tmp_path / "store.db-wal").stat().st_size == 0
        checkpointer._every_s = CHECKPOINT_EVERY_S
        assert checkpointer.checkpoints > 0
        with checkpointer.paused():
            before = checkpointer.checkpoints
            await _append(store, (await store.create_conversation()).id, 4)
            await asyncio.sleep(3 * CHECKPOINT_EVERY_S)
            assert checkpointer.checkpoints == before  # none while paused
        await _checkpointed_after(checkpointer, before)
    finally:
        await store.close()


async def _checkpointed_after(checkpointer: Checkpointer, count: int) -> None:
    deadline = time.monotonic() + 10 * CHECKPOINT_EVERY_S + 5
    while checkpointer.checkpoints == count:
        assert time.monotonic() < deadline, "no checkpoint ran after the pause"
        await asyncio.sleep(0.05)
