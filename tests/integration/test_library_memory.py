"""Memory through the library as users build it (``AsyncClient``): recall of rounds the
window left behind, in conversations and their forks, and the rolling summary, on the real model.
"""

from __future__ import annotations

import pytest

from multiturn import AsyncClient, Settings
from support.reports import fated

pytestmark = pytest.mark.model

FILLER = [
    "Describe the colour of the sky at noon in one word.",
    "Name a fruit that is yellow.",
    "What is the opposite of cold?",
    "Name a large animal that lives in the sea.",
    "How many legs does a spider have?",
    "Name a musical instrument with strings.",
    "Which season comes after winter?",
]


async def _chat(client: AsyncClient, policy: str, turns: list[str]) -> tuple[str, list[str]]:
    conversation = await client.create()
    for text in turns:
        await conversation.send(text, policy=policy, max_tokens=4, temperature=0)
    return conversation.id, [item.id for item in await conversation.history()]


async def test_retrieval_recalls_a_round_the_window_dropped_and_forks_recall_theirs(model_settings: Settings) -> None:
    settings = replace_settings(model_settings, n_ctx=512)
    async with AsyncClient(settings) as client:
        turns = ["Remember this: my locker code is 4912.", *FILLER, "What is my locker code?"]
        conversation_id, ids = await _chat(client, "retrieval", turns)
        history = await client.engine.history(conversation_id)
        report = history[-1].context_report
        assert report is not None
        locker = ids[0]
        assert locker not in fated(report, history[:-1], "kept")  # the window alone had lost it...
        assert locker in fated(report, history[:-1], "recalled")  # ...and recall brought it back
        assert report.recalled_scores[0] > 0  # by position: the locker code was said first

        window_id, _ = await _chat(client, "window", turns)
        window_context = (await client.engine.history(window_id))[-1].context_report
        # The window policy never recalls (its window holds all 9 here).
        assert window_context is not None and window_context.recalled == ()

        fork = await client.engine.fork(conversation_id, at_item_id=ids[-3])
        forked = await client.conversation(fork.id)
        await forked.send("What is my locker code?", policy="retrieval", max_tokens=4, temperature=0)
        fork_path = await forked.history()
        fork_report = fork_path[-1].context_report
        assert fork_report is not None
        assert fork_path[0].id in fated(fork_report, fork_path[:-1], "recalled")  # the fork's own copy


async def test_the_summary_policy_compacts_and_reports_what_it_summarized(model_settings: Settings) -> None:
    settings = replace_settings(model_settings, n_ctx=512)
    async with AsyncClient(settings) as client:
        notes = [f"Note {n}: Ada booked room {100 + n} for March {n + 1}." for n in range(13)]
        turns = [*notes, "Which room is for March 1?"]
        conversation_id, ids = await _chat(client, "summary", turns)
        summaries = await client.store.summaries(conversation_id)
        assert summaries, "the history passed 70 % of the window: a summary was written"
        history = await client.engine.history(conversation_id)
        report = history[-1].context_report
        assert report is not None
        assert ids[0] in fated(report, history[:-1], "summarized") and report.tokens_by_part["summary"] > 0
        said = {f"user: {text}" for text in turns}
        lines = summaries[-1].text.splitlines()
        assert lines and all(line in said for line in lines), lines  # extractive: notes kept verbatim


def replace_settings(settings: Settings, **changes: object) -> Settings:
    return Settings(**{**settings.model_dump(), **changes})
