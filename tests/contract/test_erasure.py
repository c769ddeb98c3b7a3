"""Deletion erases: after every way of deleting (a conversation, ``prune``, a response inside a
chain or at its end, an item's subtree) no deleted word is left in any table, in the full-text
index, or — on SQLite — anywhere in the bytes of the database file and its WAL. Both
databases; the tables are enumerated from the database itself, so a table added later is
checked too (``support/scan.py``).

PostgreSQL keeps a deleted row's bytes in its table files until VACUUM reuses the space; that
is checked as rows and tsvectors here and documented in ``docs/reliability.md``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from multiturn.errors import NotFound
from multiturn.ids import now_ms
from multiturn.records import IndexEntry
from multiturn.store import SQLStore, dialect
from multiturn.store.responses import ORIGIN_KEY, ORIGIN_RESPONSES
from multiturn.store.turns import Blocked, Started
from support.scan import fts_hits, in_files, leftovers
from support.turns import Stored, answer, entry, stored_turn

SECRET = "xylophonequirk"
"""The deleted words. Starting with a letter no other indexed word starts with, the full word
is written in FTS5's segment pages (which compress a term against the one before it)."""
KEPT = "keepsake"
"""Words that must survive (they show the scans can see text at all)."""


@dataclass
class Chain:
    conversation_id: str
    turns: list[Stored]


async def _chain(store: SQLStore, words: list[str], *, origin: bool = False) -> Chain:
    """A conversation of stored turns, one per word (``"<word> question"`` / ``"<word> answer"``),
    every item indexed (full text), and a summary through each answer."""
    metadata = {ORIGIN_KEY: ORIGIN_RESPONSES} if origin else {}
    conv = await store.create_conversation(metadata=metadata)
    turns: list[Stored] = []
    for word in words:
        turn = await stored_turn(store, conv.id, f"{word} question", f"{word} answer")
        turns.append(turn)
        await store.index_entries(
            conv.id,
            [
                IndexEntry(item_id=turn.input_ids[0], text=f"{word} question"),
                IndexEntry(item_id=turn.answer_id, text=f"{word} answer"),
            ],
        )
        await store.add_summary(
            text=f"so far: {' '.join(words[: len(turns)])}", conversation_id=conv.id, through_item_id=turn.answer_id
        )
    return Chain(conv.id, turns)


def _in_files(store: SQLStore, word: str) -> list[str]:
    path = dialect.sqlite_file(store._db.url)
    assert path is not None
    return in_files(path, word)


Delete = Callable[[SQLStore, Chain, Chain], Awaitable[None]]


async def _conversation(store: SQLStore, doomed: Chain, kept: Chain) -> None:
    await store.delete_conversation(doomed.conversation_id)


async def _prune(store: SQLStore, doomed: Chain, kept: Chain) -> None:
    cutoff = now_ms() + 1
    assert doomed.conversation_id in await store.prune(cutoff)
    # prune took the kept chain too (it was as idle): write it again, as it was, to compare
    again = await _chain(store, [KEPT])
    kept.conversation_id, kept.turns = again.conversation_id, again.turns


async def _middle_response(store: SQLStore, doomed: Chain, kept: Chain) -> None:
    await store.delete_response(str(doomed.turns[1].response_id))


async def _last_response(store: SQLStore, doomed: Chain, kept: Chain) -> None:
    await store.delete_response(str(doomed.turns[-1].response_id))


async def _subtree(store: SQLStore, doomed: Chain, kept: Chain) -> None:
    after = await store.delete_item(doomed.conversation_id, doomed.turns[1].input_ids[0])
    assert after.head_item_id == doomed.turns[0].answer_id


DELETIONS: dict[str, tuple[Delete, list[str]]] = {
    # what is deleted, and the words of the doomed conversation's turns
    "conversation": (_conversation, [SECRET, SECRET]),
    "prune": (_prune, [SECRET, SECRET]),
    "response in the middle of a chain": (_middle_response, [KEPT, SECRET, KEPT]),
    "last response of a chain": (_last_response, [KEPT, SECRET]),
    "item subtree": (_subtree, [KEPT, SECRET, SECRET]),
}


@pytest.mark.parametrize("how", list(DELETIONS))
async def test_no_deleted_word_is_left_anywhere(store: SQLStore, how: str) -> None:
    delete, words = DELETIONS[how]
    doomed = await _chain(store, words)
    kept = await _chain(store, [KEPT])
    assert await fts_hits(store, SECRET) == 2 * words.count(SECRET)
    assert {table for table, _, _ in await leftovers(store, {SECRET})} >= {"items", "memory_entries", "summaries"}

    await delete(store, doomed, kept)

    assert await leftovers(store, {SECRET}) == []
    assert await fts_hits(store, SECRET) == 0
    assert await fts_hits(store, KEPT) >= 2
    assert {table for table, _, _ in await leftovers(store, {KEPT})} >= {"items", "memory_entries"}
    if store.dialect == "sqlite":
        assert _in_files(store, SECRET) == []
        assert _in_files(store, KEPT)  # the scan sees what is still there
    # What survives of the doomed conversation (if anything) is whole and goes on.
    try:
        conversation = await store.get_conversation(doomed.conversation_id)
    except NotFound:
        return
    path = await store.path(conversation.id, conversation.head_item_id)
    assert all(SECRET not in str(item.content) for item in path)
    follow = await stored_turn(store, conversation.id, f"{KEPT} follow-up", "fine")
    assert (await store.path(conversation.id, follow.answer_id))[: len(path)] == path


async def test_a_response_deleted_inside_a_chain_is_spliced_out(store: SQLStore) -> None:
    chain = await _chain(store, ["first", SECRET, "third"])
    first, doomed, third = chain.turns
    before = await store.path(chain.conversation_id, third.answer_id)
    assert len(before) == 6

    await store.delete_response(str(doomed.response_id))

    after = await store.path(chain.conversation_id, third.answer_id)
    assert [item.id for item in after] == [first.input_ids[0], first.answer_id, third.input_ids[0], third.answer_id]
    assert after[2].parent_id == first.answer_id  # the next turn now follows the one before
    with pytest.raises(NotFound):
        await store.get_response(str(doomed.response_id))
    for item_id in (*doomed.input_ids, doomed.answer_id):
        with pytest.raises(NotFound):
            await store.get_item(item_id)
    # The other responses are whole; the summaries that could quote the turn went, the one
    # before it stayed.
    assert (await store.get_response(str(third.response_id))).output_item_id == third.answer_id
    summaries = await store.summaries(chain.conversation_id)
    assert [s.through_item_id for s in summaries] == [first.answer_id]
    assert (await store.get_conversation(chain.conversation_id)).erasures == 1


async def test_deleting_the_only_response_of_a_chain_takes_its_conversation(store: SQLStore) -> None:
    chain = await _chain(store, [SECRET], origin=True)
    await store.delete_response(str(chain.turns[0].response_id))
    with pytest.raises(NotFound):
        await store.get_conversation(chain.conversation_id)
    assert await leftovers(store, {SECRET, chain.conversation_id}) == []


async def test_an_open_turn_under_a_spliced_item_goes_under_the_item_before(store: SQLStore) -> None:
    chain = await _chain(store, ["first", SECRET])
    first, doomed = chain.turns
    turn = entry(store, chain.conversation_id, "next", parent_id=doomed.answer_id)
    started = await store.enter_turn(turn)
    assert isinstance(started, Started) and started.parent_id == doomed.answer_id

    await store.delete_response(str(doomed.response_id))

    records = answer(turn, started, "done")
    assert await store.end_turn(turn.id, chain.conversation_id, records, response={"status": "completed"})
    path = await store.path(chain.conversation_id, started.answer_id)
    assert [item.id for item in path][:2] == [first.input_ids[0], first.answer_id]
    assert path[2].parent_id == first.answer_id and path[2].id == started.input_ids[0]


async def test_another_process_does_not_serve_a_path_cached_before_an_erasure(store: SQLStore) -> None:
    """Two stores on one database are two processes: the one that did not delete drops the
    paths it cached once it sees the conversation's erasure count move."""
    other = SQLStore(store.url)
    try:
        chain = await _chain(store, ["first", SECRET, "third"])
        head = chain.turns[-1].answer_id
        assert len(await other.path(chain.conversation_id, head)) == 6  # cached there
        conversation = await other.get_conversation(chain.conversation_id)
        assert [item.id for item in await other.known_path(head, conversation)] == [
            item.id for item in await other.path(chain.conversation_id, head)
        ]

        await store.delete_response(str(chain.turns[1].response_id))

        fresh = await other.path(chain.conversation_id, head)
        assert len(fresh) == 4 and all(SECRET not in str(item.content) for item in fresh)
        # A turn entered there (the conversation read under its lock) does not use the old path.
        turn = entry(other, chain.conversation_id, "next")
        started = await other.enter_turn(turn)
        assert isinstance(started, Started)
        known = await other.known_path(started.parent_id, started.conversation)
        assert [item.id for item in known] == [item.id for item in fresh]
        await other.end_turn(turn.id, chain.conversation_id, [], discard=True)
    finally:
        await other.close()


async def test_a_queued_turns_input_is_erased_with_its_conversation(store: SQLStore) -> None:
    chain = await _chain(store, [KEPT])
    generating = await store.enter_turn(entry(store, chain.conversation_id, f"{SECRET} now"))
    queued = await store.enter_turn(entry(store, chain.conversation_id, f"{SECRET} later"))
    assert isinstance(generating, Started) and isinstance(queued, Blocked)
    assert {table for table, _, _ in await leftovers(store, {SECRET})} == {"turns"}

    await store.delete_conversation(chain.conversation_id)

    assert await leftovers(store, {SECRET}) == []
    if store.dialect == "sqlite":
        assert _in_files(store, SECRET) == []


async def test_sqlite_files_and_their_directory_are_private(tmp_path: Path) -> None:
    private = SQLStore(f"sqlite:///{tmp_path}/new/dir/private.db")
    try:
        await private.migrate()
        await _chain(private, [KEPT])
        directory = tmp_path / "new" / "dir"
        assert directory.stat().st_mode & 0o777 == 0o700
        for path in [directory / "private.db", directory / "private.db-wal", directory / "private.db-shm"]:
            assert path.exists() and path.stat().st_mode & 0o777 == 0o600, path
    finally:
        await private.close()
