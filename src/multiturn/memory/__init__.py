"""Conversation memory beyond the window: the retrieval index and the rolling summary.

Both sit between the engine and the store: they read and write the store (``memory_entries``,
``summaries``), run the embedder or a summarizer model, and hand the pure planner
(``context.plan``) plain values (``Recalled``, ``Summary``). ``base.py`` holds the two
protocols the engine calls; ``recall.py`` and ``compaction.py`` implement them.
"""
