"""The retrieval index: turns indexed when a conversation recalls, recalled by fusion.

Indexing: each unit of a round (an item, with the tool results of its calls) becomes one entry
of ``memory_entries`` under its first item's id, its text exactly as the planner quotes it
(``render_items``). With an embedder the entry also holds its vector (float32 bytes) and the
embedder's name; vectors of another embedder are ignored, never compared. The engine indexes a
round in the background after each answer of a turn whose policy recalls (``index_round``);
``recall`` first indexes whatever of the path is not indexed yet (the rounds of turns planned
under another policy, a fork, an import, another process's turns), so a conversation pays for
its index only once it recalls, and then once per round.

Recall (``recall``, before a turn is planned): the query (``query.build_query``: the new input,
plus the previous turn when the input leans on it) is searched lexically by the store's
full-text index (BM25 on SQLite, ``ts_rank_cd`` on PostgreSQL) and densely by exact cosine over
the conversation's vectors, which are held in memory per conversation: loaded once, extended by
``index_round``, reloaded when the path holds an item this process has not seen (another process
indexed it). The cosines are taken with the conversation's common directions removed
(``dense.py``, fitted once per set of vectors). ``ranking.rank`` fuses the two. Only units on
the request's path and outside its newest round are returned; the planner skips those already in
the window.

``recall_unstored`` ranks a path that is not stored (a stateless request's array) the same way,
in memory: BM25 over its turns (``lexical.BM25``) and their vectors, kept in a bounded cache by
text so a resent array is not embedded again.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections import OrderedDict
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ..context.retrieval import Recalled
from ..context.rounds import split_rounds
from ..embeddings import Embedder
from ..ids import now_ms
from ..records import IndexEntry, ItemRecord
from . import dense as dense_space
from .lexical import BM25
from .query import Query, build_query
from .ranking import Tuning, Unit, rank, unit_text, units
from .timing import Span, when

if TYPE_CHECKING:
    from ..embeddings import Vectors

log = logging.getLogger(__name__)


class MemoryStore(Protocol):
    """What recall needs of a store (``SQLStore`` has it)."""

    async def index_entries(self, conversation_id: str, entries: Sequence[IndexEntry], *, tenant_id: str) -> None: ...

    async def search_entries(
        self, conversation_id: str, query: str, *, limit: int = 50, tenant_id: str
    ) -> list[tuple[str, float]]: ...

    async def entries(self, conversation_id: str, *, tenant_id: str, with_vectors: bool = True) -> list[IndexEntry]: ...


@dataclass
class _Vectors:
    """One conversation's vectors in memory, rows in ``ids`` order."""

    ids: list[str] = field(default_factory=list)
    rows: list[Vectors] = field(default_factory=list)
    matrix: Vectors | None = None
    seen: set[str] = field(default_factory=set)
    """Every item id this cache knows of, indexed or not (a path item outside it: reload)."""
    space: dense_space.Space | None = None
    """The rows' space (``dense.fit``), fitted on the first query after a change."""

    def add(self, item_id: str, row: Vectors) -> None:
        self.ids.append(item_id)
        self.rows.append(row)
        self.seen.add(item_id)
        self.matrix = None
        self.space = None

    def stack(self) -> Vectors | None:
        if self.matrix is None and self.rows:
            import numpy as np

            self.matrix = np.vstack(self.rows)
        return self.matrix


class IndexRecall:
    """``Recall`` over the store's retrieval index, lexical + dense (see the module docstring).

    Args:
        store: a store with the retrieval index (``SQLStore``).
        embedder: ``None`` for lexical recall only.
        tuning: the ranking's knobs (benchmarks sweep them).
        cache_conversations: how many conversations' vectors to keep in memory.
        cache_texts: how many unstored turns' vectors to keep (``recall_unstored``).
        clock: the time (ms) a question is asked when its item has none (a preview's input is
            not written yet); a question's time expressions are read against it.
    """

    def __init__(
        self,
        store: MemoryStore,
        embedder: Embedder | None,
        *,
        tuning: Tuning | None = None,
        cache_conversations: int = 256,
        cache_texts: int = 50_000,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.tuning = tuning or Tuning()
        self.clock = clock
        self._vectors: OrderedDict[tuple[str, str], _Vectors] = OrderedDict()
        self._cache_conversations = cache_conversations
        self._texts: OrderedDict[bytes, Vectors] = OrderedDict()
        self._cache_texts = cache_texts
        self._blas: Any = None
        """A ``threadpoolctl.ThreadpoolController``, made on the first dense scoring."""
        self._indexed: OrderedDict[tuple[str, str], set[str]] = OrderedDict()
        """Per conversation: the first item ids of the units known to be indexed (or empty)."""

    def _one_blas_thread(self) -> AbstractContextManager[Any]:
        """BLAS on one thread for recall's matrix products (a few hundred rows: fitting a
        conversation's space, scoring a query). OpenBLAS splits them over its threads, which wait
        for each other when the cores are busy: on 2 shared cores ``dense.fit`` took p50 11 ms,
        p95 46 ms, and LongMemEval's cold recalls reached 300 ms at p95; on one thread 1.5 and
        5.7 ms. Scoped to these calls (``threadpoolctl``, the ``memory`` extra); without it BLAS
        keeps its threads."""
        if self._blas is None:
            try:
                from threadpoolctl import ThreadpoolController  # type: ignore[import-untyped]
            except ImportError:
                log.debug("threadpoolctl is not installed: BLAS keeps its own threads for recall")
                return contextlib.nullcontext()
            self._blas = ThreadpoolController()
        limited: AbstractContextManager[Any] = self._blas.limit(limits=1, user_api="blas")
        return limited

    async def aclose(self) -> None:
        """Release the embedder's connections (an upstream embedder's HTTP session)."""
        close = getattr(self.embedder, "aclose", None)
        if close is not None:
            await close()

    # -- indexing ----------------------------------------------------------------------------

    async def index_round(self, conversation_id: str, items: Sequence[ItemRecord], *, tenant_id: str) -> None:
        await self.index_path(conversation_id, items, tenant_id=tenant_id)

    async def index_path(self, conversation_id: str, path: Sequence[ItemRecord], *, tenant_id: str) -> None:
        """Index every unit of ``path`` (a round, or a whole path at once: a replay, a fork);
        an item indexed again is replaced."""
        await self._index_units(conversation_id, units(path), tenant_id)

    async def _index_units(self, conversation_id: str, found_units: Sequence[Unit], tenant_id: str) -> None:
        found = [(unit[0], text) for unit in found_units if (text := unit_text(unit)).strip()]
        if found:
            vectors = await self.embedder.embed([text for _, text in found]) if self.embedder is not None else None
            name = self.embedder.name if self.embedder is not None else None
            entries = [
                IndexEntry(
                    item_id=ids[0],
                    text=text,
                    vector=vectors[n].tobytes() if vectors is not None else None,
                    vector_model=name,
                )
                for n, (ids, text) in enumerate(found)
            ]
            await self.store.index_entries(conversation_id, entries, tenant_id=tenant_id)
            cached = self._vectors.get((tenant_id, conversation_id))
            if cached is not None and vectors is not None:
                for n, (ids, _) in enumerate(found):
                    if ids[0] not in cached.seen:
                        cached.add(ids[0], vectors[n])
                cached.seen.update(item.id for unit in found_units for item in unit[1])
        known = self._indexed.get((tenant_id, conversation_id))
        if known is not None:
            known.update(unit[0][0] for unit in found_units)

    async def _catch_up(
        self, conversation_id: str, candidates: Sequence[Unit], history: Sequence[ItemRecord], tenant_id: str
    ) -> None:
        """Index the units of ``candidates`` that are not indexed yet. The stored entries are
        read once per conversation; when the conversation's vectors are not in memory (or are
        stale) that one read brings them too (``_conversation_vectors`` then finds them)."""
        key = (tenant_id, conversation_id)
        known = self._indexed.get(key)
        loaded = None
        if known is None:
            vectors = self.embedder is not None and self._stale_vectors(key, history)
            stored = await self.store.entries(conversation_id, tenant_id=tenant_id, with_vectors=vectors)
            known = self._indexed[key] = {entry.item_id for entry in stored}
            while len(self._indexed) > self._cache_conversations:
                self._indexed.popitem(last=False)
            if vectors:
                loaded = self._keep_vectors(key, stored)
        self._indexed.move_to_end(key)
        missing = [unit for unit in candidates if unit[0][0] not in known]
        if missing:
            log.debug("indexing %d unit(s) of %s before recall", len(missing), conversation_id)
            await self._index_units(conversation_id, missing, tenant_id)
            known.update(unit[0][0] for unit in missing)
        if loaded is not None:  # every unit of the history is indexed and in memory now
            loaded.seen.update(item.id for item in history)

    # -- recall ------------------------------------------------------------------------------

    async def recall(
        self, conversation_id: str, path: Sequence[ItemRecord], *, tenant_id: str, budget: int | None = None
    ) -> list[Recalled]:
        split = _history(path)
        if split is None:
            return []
        history, query = split
        candidates = units(history)
        if not candidates:
            return []
        span = self._when(path, query)
        await self._catch_up(conversation_id, candidates, history, tenant_id)
        lexical, dense = await asyncio.gather(
            self._lexical(conversation_id, query, tenant_id, budget),
            self._dense(conversation_id, query, history, tenant_id),
        )
        return rank(
            candidates, lexical, dense, self.tuning, names=query.names, when=span, back=query.back, budget=budget
        )

    def _when(self, path: Sequence[ItemRecord], query: Query) -> Span | None:
        """The span the question's time expression names, read at the question's time (its
        item's ``created_at``, else the clock's)."""
        return when(query.text, path[-1].created_at or self.clock())

    async def recall_unstored(self, path: Sequence[ItemRecord], *, budget: int | None = None) -> list[Recalled]:
        split = _history(path)
        if split is None:
            return []
        history, query = split
        candidates = units(history)
        if not candidates:
            return []
        span = self._when(path, query)
        texts = [unit_text(unit) for unit in candidates]
        bm25 = BM25(texts).scores(f"{query.text}\n{query.previous}")
        lexical = {candidates[n][0][0]: score for n, score in bm25.items()}
        dense: dict[str, float] = {}
        if self.embedder is not None:
            matrix = await self._embed_cached(texts)
            q = await self._query_vector(query)
            if q is not None and matrix.shape[1] == q.shape[0]:
                with self._one_blas_thread():
                    space = dense_space.fit(matrix, self.tuning.common_directions)
                    sims = dense_space.similarities(space, matrix, q)
                dense = {unit[0][0]: float(s) for unit, s in zip(candidates, sims, strict=True)}
        return rank(
            candidates, lexical, dense, self.tuning, names=query.names, when=span, back=query.back, budget=budget
        )

    async def _lexical(
        self, conversation_id: str, query: Query, tenant_id: str, budget: int | None
    ) -> dict[str, float]:
        words = query.lexical
        if not words:
            return {}
        limit = round(self.tuning.lexical_limit * self.tuning.scale(budget))
        hits = await self.store.search_entries(conversation_id, words, limit=limit, tenant_id=tenant_id)
        return dict(hits)

    async def _dense(
        self, conversation_id: str, query: Query, history: Sequence[ItemRecord], tenant_id: str
    ) -> dict[str, float]:
        if self.embedder is None:
            return {}
        cached = await self._conversation_vectors(conversation_id, history, tenant_id)
        matrix = cached.stack()
        if matrix is None:
            return {}
        q = await self._query_vector(query)
        if q is None or q.shape[0] != matrix.shape[1]:
            return {}
        with self._one_blas_thread():
            if cached.space is None:
                cached.space = dense_space.fit(matrix, self.tuning.common_directions)
            sims = dense_space.similarities(cached.space, matrix, q)
        return {item_id: float(s) for item_id, s in zip(cached.ids, sims, strict=True)}

    async def _query_vector(self, query: Query) -> Vectors | None:
        import numpy as np

        assert self.embedder is not None
        texts = [query.text, query.previous] if query.previous else [query.text]
        rows = await self.embedder.embed(texts)
        q = rows[0] + self.tuning.context_weight * rows[1] if query.previous else rows[0]
        norm = float(np.linalg.norm(q))
        return q / norm if norm > 0 else None

    async def _conversation_vectors(
        self, conversation_id: str, history: Sequence[ItemRecord], tenant_id: str
    ) -> _Vectors:
        """The conversation's vectors, from memory unless the path holds items not seen here."""
        key = (tenant_id, conversation_id)
        if not self._stale_vectors(key, history):
            self._vectors.move_to_end(key)
            return self._vectors[key]
        cached = self._keep_vectors(key, await self.store.entries(conversation_id, tenant_id=tenant_id))
        cached.seen.update(item.id for item in history)
        return cached

    def _stale_vectors(self, key: tuple[str, str], history: Sequence[ItemRecord]) -> bool:
        """Whether the conversation's vectors must be read from the store: none in memory, or
        the path holds an item this process has not seen (another process indexed it)."""
        cached = self._vectors.get(key)
        return cached is None or not all(item.id in cached.seen for item in history)

    def _keep_vectors(self, key: tuple[str, str], stored: Sequence[IndexEntry]) -> _Vectors:
        """Keep the vectors of ``stored`` (this embedder's, of the first one's width) as the
        conversation's: one matrix made from their bytes at once."""
        import numpy as np

        assert self.embedder is not None
        name = self.embedder.name
        mine = [entry for entry in stored if entry.vector is not None and entry.vector_model == name]
        cached = _Vectors()
        if mine and mine[0].vector is not None:
            width = np.frombuffer(mine[0].vector, dtype=np.float32).shape[0]  # not float32s: ValueError
            kept = [entry for entry in mine if entry.vector is not None and len(entry.vector) == 4 * width]
            matrix = np.frombuffer(b"".join(entry.vector or b"" for entry in kept), dtype=np.float32)
            matrix = matrix.reshape(len(kept), width)
            cached.ids = [entry.item_id for entry in kept]
            cached.rows = list(matrix)
            cached.matrix = matrix
            cached.seen.update(cached.ids)
        self._vectors[key] = cached
        self._vectors.move_to_end(key)
        while len(self._vectors) > self._cache_conversations:
            self._vectors.popitem(last=False)
        return cached

    async def _embed_cached(self, texts: Sequence[str]) -> Vectors:
        """Vectors of ``texts``, embedding only those not embedded recently."""
        import numpy as np

        assert self.embedder is not None
        keys = [hashlib.blake2b(t.encode("utf-8", "surrogatepass"), digest_size=16).digest() for t in texts]
        missing = list(dict.fromkeys(k for k in keys if k not in self._texts))
        if missing:
            text_of = dict(zip(keys, texts, strict=True))
            fresh = await self.embedder.embed([text_of[k] for k in missing])
            for k, row in zip(missing, fresh, strict=True):
                self._texts[k] = row
            while len(self._texts) > self._cache_texts:
                self._texts.popitem(last=False)
        return np.vstack([self._texts[k] for k in keys])


def _history(path: Sequence[ItemRecord]) -> tuple[list[ItemRecord], Query] | None:
    """The path before its newest round, and the query built from that round."""
    rounds = split_rounds(path)
    if len(rounds) < 2:
        return None
    newest = rounds[-1].items
    history = list(path[: len(path) - len(newest)])
    return history, build_query(newest, history)


__all__ = ["IndexRecall", "MemoryStore", "Tuning", "Unit"]
