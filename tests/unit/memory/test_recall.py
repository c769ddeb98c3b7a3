"""``IndexRecall`` on small real stores (SQLite and PostgreSQL) with the real WordLlama embedder."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import pytest

from multiturn.embeddings import WordLlamaEmbedder
from multiturn.memory import dense
from multiturn.memory.recall import IndexRecall
from multiturn.records import ConversationRecord, IndexEntry, ItemRecord
from multiturn.store import NewItem, SQLStore
from multiturn.types import TextPart

TENANT = "default"
ROUNDS = [
    ("We adopted a beagle puppy and named him Biscuit.", "Biscuit is a great name for a beagle!"),
    ("My flight to Montreal leaves on March 3rd.", "Have a safe trip to Montreal."),
    ("I started learning the cello last week.", "The cello has a beautiful deep sound."),
    ("Our team switched the database to PostgreSQL.", "PostgreSQL is a solid choice."),
    ("I baked sourdough bread with rye flour.", "Rye sourdough sounds delicious."),
    ("The garden tomatoes finally turned red.", "Enjoy the fresh tomatoes."),
]


async def _replay(
    store: SQLStore, recall: IndexRecall, rounds: Sequence[tuple[str, str]]
) -> tuple[str, list[ItemRecord]]:
    conv = await store.create_conversation()
    parent = None
    for question, answer in rounds:
        user = await store.append(conv.id, parent, NewItem(role="user", content=(TextPart(question),)))
        reply = await store.append(conv.id, user.id, NewItem(role="assistant", content=(TextPart(answer),)))
        parent = reply.id
        await recall.index_round(conv.id, [user, reply], tenant_id=TENANT)
    return conv.id, await store.path(conv.id, parent)


def _ask(path: Sequence[ItemRecord], text: str) -> list[ItemRecord]:
    pending = ItemRecord(
        id="item_pending",
        conversation_id=path[0].conversation_id,
        parent_id=path[-1].id,
        role="user",
        content=(TextPart(text),),
        status="completed",
        created_at=0,
    )
    return [*path, pending]


async def test_the_matching_turn_ranks_first_and_its_answer_next(store: SQLStore) -> None:
    recall = IndexRecall(store, WordLlamaEmbedder())
    conv, path = await _replay(store, recall, ROUNDS)
    ranked = await recall.recall(conv, _ask(path, "What did we name the beagle puppy?"), tenant_id=TENANT)
    order = [r.item_ids[0] for r in ranked]
    assert order[:2] == [path[0].id, path[1].id]
    assert all(a.score >= b.score for a, b in itertools.pairwise(ranked))
    cello = await recall.recall(conv, _ask(path, "Which musical instrument do I play?"), tenant_id=TENANT)
    assert cello[0].item_ids[0] in (path[4].id, path[5].id)  # no shared word: the vectors find it


async def test_only_the_requests_path_outside_its_newest_round_is_recalled(store: SQLStore) -> None:
    recall = IndexRecall(store, WordLlamaEmbedder())
    conv, path = await _replay(store, recall, ROUNDS[:3])
    # another branch from the first answer: its items are indexed but not on the new path
    branch = await store.append(conv, path[1].id, NewItem(role="user", content=(TextPart("beagle Biscuit again"),)))
    answer = await store.append(conv, branch.id, NewItem(role="assistant", content=(TextPart("Biscuit beagle!"),)))
    await recall.index_round(conv, [branch, answer], tenant_id=TENANT)
    ranked = await recall.recall(conv, _ask(path, "beagle Biscuit"), tenant_id=TENANT)
    returned = {i for r in ranked for i in r.item_ids}
    assert returned and returned <= {item.id for item in path}
    newest = await recall.recall(conv, path[:5], tenant_id=TENANT)  # the third round's user item is new
    assert path[4].id not in {i for r in newest for i in r.item_ids}


async def test_vectors_indexed_by_another_process_are_loaded(store: SQLStore) -> None:
    first = IndexRecall(store, WordLlamaEmbedder())
    conv, path = await _replay(store, first, ROUNDS[:2])
    await first.recall(conv, _ask(path, "cello"), tenant_id=TENANT)  # caches two rounds
    other = IndexRecall(store, WordLlamaEmbedder())
    user = await store.append(conv, path[-1].id, NewItem(role="user", content=(TextPart(ROUNDS[2][0]),)))
    reply = await store.append(conv, user.id, NewItem(role="assistant", content=(TextPart(ROUNDS[2][1]),)))
    await other.index_round(conv, [user, reply], tenant_id=TENANT)
    longer = await store.path(conv, reply.id)
    ranked = await first.recall(conv, _ask(longer, "Which instrument am I learning?"), tenant_id=TENANT)
    assert ranked[0].item_ids == (user.id,)
    assert user.id in first._vectors[(TENANT, conv)].ids


async def test_lexical_only_without_an_embedder_and_foreign_vectors_ignored(store: SQLStore) -> None:
    lexical = IndexRecall(store, None)
    conv, path = await _replay(store, lexical, ROUNDS)
    assert all(e.vector is None for e in await store.entries(conv))
    ranked = await lexical.recall(conv, _ask(path, "When does my Montreal flight leave?"), tenant_id=TENANT)
    assert ranked[0].item_ids == (path[2].id,)
    dense = IndexRecall(store, WordLlamaEmbedder())  # the index holds no vectors of its model
    assert (await dense.recall(conv, _ask(path, "Montreal flight"), tenant_id=TENANT))[0].item_ids == (path[2].id,)
    assert await dense.recall(conv, _ask(path, "Which musical instrument?"), tenant_id=TENANT) == []


async def test_an_unstored_path_is_ranked_in_memory_like_a_stored_one(store: SQLStore) -> None:
    recall = IndexRecall(store, WordLlamaEmbedder())
    conv, path = await _replay(store, recall, ROUNDS)
    asked = _ask(path, "What did we name the beagle puppy?")
    stored = await recall.recall(conv, asked, tenant_id=TENANT)
    unstored = await recall.recall_unstored(asked)
    assert [r.item_ids for r in unstored[:2]] == [r.item_ids for r in stored[:2]] == [(path[0].id,), (path[1].id,)]
    again = await recall.recall_unstored(asked)  # vectors from the text cache this time
    assert again == unstored


class _CountingReads:
    """A store that counts the reads of a conversation's whole index."""

    def __init__(self, store: SQLStore) -> None:
        self._store = store
        self.reads = 0

    async def index_entries(self, conversation_id: str, entries: Sequence[IndexEntry], *, tenant_id: str) -> None:
        await self._store.index_entries(conversation_id, entries, tenant_id=tenant_id)

    async def search_entries(
        self, conversation_id: str, query: str, *, limit: int = 50, tenant_id: str
    ) -> list[tuple[str, float]]:
        return await self._store.search_entries(conversation_id, query, limit=limit, tenant_id=tenant_id)

    async def entries(self, conversation_id: str, *, tenant_id: str, with_vectors: bool = True) -> list[IndexEntry]:
        self.reads += 1
        return await self._store.entries(conversation_id, tenant_id=tenant_id, with_vectors=with_vectors)


async def test_a_first_recall_reads_the_index_once_and_ranks_as_the_indexing_process(store: SQLStore) -> None:
    """A process recalling a conversation another one indexed (a restart) reads its index once,
    for what is indexed and the vectors together, and ranks as the process that indexed it."""
    indexer = IndexRecall(store, WordLlamaEmbedder())
    conv, path = await _replay(store, indexer, ROUNDS)
    counting = _CountingReads(store)
    fresh = IndexRecall(counting, WordLlamaEmbedder())
    asked = _ask(path, "Which musical instrument do I play?")
    assert await fresh.recall(conv, asked, tenant_id=TENANT) == await indexer.recall(conv, asked, tenant_id=TENANT)
    assert counting.reads == 1
    await fresh.recall(conv, _ask(path, "What did we name the beagle?"), tenant_id=TENANT)
    assert counting.reads == 1  # from memory now
    user = await store.append(conv, path[-1].id, NewItem(role="user", content=(TextPart("I painted the fence."),)))
    reply = await store.append(conv, user.id, NewItem(role="assistant", content=(TextPart("Which colour?"),)))
    longer = await store.path(conv, reply.id)  # a round nobody indexed: this recall indexes it first
    ranked = await fresh.recall(conv, _ask(longer, "What did I paint, the fence?"), tenant_id=TENANT)
    assert ranked[0].item_ids == (user.id,) and counting.reads == 1


async def test_dense_scoring_runs_blas_on_one_thread(store: SQLStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """Recall's matrix products run on one BLAS thread (threads that wait for each other on busy
    cores made cold recalls slow); the process's own setting is back afterwards."""
    from threadpoolctl import threadpool_info

    def blas_threads() -> set[int]:
        return {int(lib["num_threads"]) for lib in threadpool_info() if lib["user_api"] == "blas"}

    seen: list[set[int]] = []
    fit = dense.fit

    def counting_fit(matrix: Any, components: int | None) -> dense.Space:
        seen.append(blas_threads())
        return fit(matrix, components)

    monkeypatch.setattr(dense, "fit", counting_fit)
    recall = IndexRecall(store, WordLlamaEmbedder())
    conv, path = await _replay(store, recall, ROUNDS * 3)
    before = blas_threads()
    await recall.recall(conv, _ask(path, "Which instrument do I play?"), tenant_id=TENANT)
    assert seen == [{1}] and blas_threads() == before


async def _dated(
    store: SQLStore, recall: IndexRecall, turns: Sequence[tuple[int, str, str]]
) -> tuple[str, list[ItemRecord]]:
    """A conversation imported with its items at the given times (ms), as a data set's replay is."""
    items: list[ItemRecord] = []
    for n, (at, role, text) in enumerate(turns):
        parent = items[-1].id if items else None
        content = (TextPart(text),)
        items.append(ItemRecord(f"t{n}", "src", parent, role, content, "completed", at))  # type: ignore[arg-type]
    source = ConversationRecord(
        "src", TENANT, items[0].created_at, items[-1].created_at, None, None, None, items[-1].id
    )
    record = await store.import_conversation(source, items, tenant_id=TENANT)
    path = await store.path(record.id, record.head_item_id)
    await recall.index_path(record.id, path, tenant_id=TENANT)
    return record.id, path


async def test_a_question_naming_a_past_period_prefers_the_turns_written_in_it(store: SQLStore) -> None:
    """ "four weeks ago", read at the question's time (the clock, for a preview's unwritten
    input; the input's own time, live), prefers the turn written then over a better word match."""
    asked_at = 1_680_307_200_000  # 1 April 2023
    week = 7 * 86_400_000
    clock = IndexRecall(store, WordLlamaEmbedder(), clock=lambda: asked_at)
    conv, path = await _dated(
        store,
        clock,
        [
            (
                asked_at - 9 * week,
                "user",
                "I bought a gift for my sister, a silver necklace: my sister loved the gift.",
            ),
            (asked_at - 9 * week + 1000, "assistant", "A necklace is a lovely gift."),
            (asked_at - 4 * week, "user", "Got a wool scarf for my sister today."),
            (asked_at - 4 * week + 1000, "assistant", "Wool scarves are warm."),
            (asked_at - week, "user", "The garden tomatoes finally turned red."),
            (asked_at - week + 1000, "assistant", "Enjoy the fresh tomatoes."),
        ],
    )
    plain = await clock.recall(conv, _ask(path, "What gift did I buy my sister?"), tenant_id=TENANT)
    assert plain[0].item_ids == (path[0].id,)
    timed = await clock.recall(conv, _ask(path, "What gift did I buy my sister four weeks ago?"), tenant_id=TENANT)
    assert timed[0].item_ids == (path[2].id,)
    later = IndexRecall(store, WordLlamaEmbedder(), clock=lambda: asked_at + 5 * week)  # asked weeks later
    question = _ask(path, "What gift did I buy my sister four weeks ago?")
    assert (await later.recall(conv, question, tenant_id=TENANT))[0].item_ids == (path[0].id,)  # nothing then
    live = [*question[:-1], replace(question[-1], created_at=asked_at)]  # a written input: its own time
    assert (await later.recall(conv, live, tenant_id=TENANT))[0].item_ids == (path[2].id,)


async def test_a_question_asking_back_gets_the_answer_that_matches_it_best_first(store: SQLStore) -> None:
    """Short questions about tea tree oil, each answered, and one long answer that holds what is
    asked: the neighbours' share and the length's cost rank the short run first; a question that
    says it asks after what the assistant said gets the long answer first."""
    filler = " ".join(f"Point {n}: patch test a small area of skin first and wait a day." for n in range(40))
    rounds = [
        ("Can I put tea tree oil on my face?", "Tea tree oil can irritate the face."),
        ("Does tea tree oil treat acne?", f"Dilute tea tree oil with a carrier oil, one part to ten. {filler}"),
        ("Can tea tree oil treat dandruff?", "Tea tree oil helps with dandruff."),
        ("Can tea tree oil repel insects?", "Tea tree oil repels some insects."),
        ("Is tea tree oil safe for pets?", "Tea tree oil is toxic to cats."),
    ]
    recall = IndexRecall(store, None)
    conv, path = await _replay(store, recall, rounds)
    plain = await recall.recall(conv, _ask(path, "How do I dilute tea tree oil with a carrier oil?"), tenant_id=TENANT)
    assert plain[0].item_ids != (path[3].id,)
    question = _ask(path, "You told me to dilute tea tree oil with a carrier oil: in what ratio?")
    back = await recall.recall(conv, question, tenant_id=TENANT)
    assert back[0].item_ids == (path[3].id,)
    assert (await recall.recall_unstored(question))[0].item_ids == (path[3].id,)
