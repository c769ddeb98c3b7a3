"""The summarizers: the extractive one on real dialogue with the Qwen tokenizer (pure), the model
one against a real HTTP server speaking Model Studio's compatible mode (tests/support)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import replace

import pytest

from multiturn.backends.upstream import UpstreamBackend
from multiturn.errors import UpstreamError
from multiturn.memory.summarizer import (
    SUMMARY_INSTRUCTIONS,
    ExtractiveSummarizer,
    ModelSummarizer,
    salience,
    summary_request,
)
from multiturn.records import ItemRecord
from multiturn.tokens import QwenTokenizer
from multiturn.types import Role, TextPart
from support.fake_upstream import FakeUpstream


def items(*turns: tuple[Role, str]) -> list[ItemRecord]:
    return [
        ItemRecord(
            id=f"i{n}",
            conversation_id="c",
            parent_id=f"i{n - 1}" if n else None,
            role=role,
            content=(TextPart(text),),
            status="completed",
            created_at=n,
        )
        for n, (role, text) in enumerate(turns)
    ]


WEDDING = items(
    ("user", "Hi there! How are you today?"),
    ("assistant", "I'm fine, thanks. How can I help?"),
    ("user", "My sister Maria is getting married in Lisbon on 14 June 2025. I need to plan the trip."),
    ("assistant", "Congratulations! Lisbon is lovely in June. Do you want help with flights or hotels?"),
    ("user", "Flights first. We decided to fly from Berlin with TAP, budget 450 euros per person."),
    ("assistant", "Good choice. TAP flies direct from Berlin to Lisbon in about 3.5 hours."),
    ("user", "ok cool"),
    ("assistant", "Anything else?"),
)
HOTEL = items(
    ("user", "Should we book the Hotel Avenida or rent an apartment? Not sure yet."),
    ("assistant", "Both work. The Hotel Avenida is near the venue."),
    ("user", "Also my cousin Jonas arrives on Friday 13 June at 18:40."),
    ("assistant", "Noted: Jonas lands on Friday 13 June at 18:40."),
)


@pytest.fixture(scope="module")
def extractive() -> ExtractiveSummarizer:
    tokenizer = QwenTokenizer()
    tokenizer.count("warm up")
    return ExtractiveSummarizer(tokenizer)


def test_salience_counts_facts_not_small_talk() -> None:
    assert salience("Hi there! How are you today?", "user") == 0
    assert salience("Anything else?", "assistant") == 0
    fact = salience("My sister Maria is getting married in Lisbon on 14 June 2025.", "user")
    decision = salience("We decided to fly with TAP.", "user")
    assert fact > decision > salience("Flights are nice.", "user")
    assert salience("Maria arrives on 14 June.", "user") > salience("Maria arrives on 14 June.", "assistant")
    assert salience("Should we book the Hotel Avenida?", "user") > salience("Should we book the hotel", "user")


async def test_extractive_keeps_names_numbers_dates_and_drops_small_talk(extractive: ExtractiveSummarizer) -> None:
    text = await extractive.summarize(None, WEDDING, target_tokens=120)
    assert text.splitlines()[0] == (
        "user: My sister Maria is getting married in Lisbon on 14 June 2025. I need to plan the trip."
    )  # the fact, and the task it opens
    assert "We decided to fly from Berlin with TAP, budget 450 euros per person." in text
    assert "3.5 hours" in text
    for chatter in ("How are you", "ok cool", "Anything else", "How can I help"):
        assert chatter not in text
    assert extractive.extract(None, WEDDING, target_tokens=120) == text  # deterministic


async def test_extractive_stays_within_the_target_keeping_the_best(extractive: ExtractiveSummarizer) -> None:
    tokenizer = QwenTokenizer()
    for target in (20, 35, 60, 120, 400):
        text = await extractive.summarize(None, WEDDING, target_tokens=target)
        assert 0 < tokenizer.count(text) <= target, target
    short = await extractive.summarize(None, WEDDING, target_tokens=25)
    assert "Maria" in short and "14 June 2025" in short  # the most salient sentence survives


async def test_extractive_merges_the_previous_summary_with_the_new_rounds(extractive: ExtractiveSummarizer) -> None:
    first = await extractive.summarize(None, WEDDING, target_tokens=120)
    second = await extractive.summarize(first, HOTEL, target_tokens=120)
    lines = second.splitlines()
    maria = next(i for i, line in enumerate(lines) if "Maria" in line)
    jonas = next(i for i, line in enumerate(lines) if "Jonas arrives on Friday 13 June at 18:40" in line)
    assert maria < jonas  # chronological: the previous summary's facts first
    assert "Hotel Avenida" in second
    assert second.count("Jonas") == 2 or "Noted" not in second  # both turns or only the user's, never garbled
    # a tight target keeps the most salient facts of both, not just the newest
    tight = await extractive.summarize(first, HOTEL, target_tokens=45)
    assert "Maria" in tight and "Jonas" in tight


async def test_extractive_reads_a_summary_it_did_not_write(extractive: ExtractiveSummarizer) -> None:
    previous = "- The user's budget is 900 euros.\n- Flight booked on 3 May with TAP."
    text = await extractive.summarize(previous, HOTEL[:2], target_tokens=100)
    assert "The user's budget is 900 euros." in text and "Flight booked on 3 May with TAP." in text
    assert "Hotel Avenida" in text


async def test_extractive_skips_failed_items_and_duplicates(extractive: ExtractiveSummarizer) -> None:
    failed = [*WEDDING[:2], *items(("user", "The code is 7741 for the gate."))]
    failed[2] = replace(failed[2], status="failed")
    assert "7741" not in await extractive.summarize(None, failed, target_tokens=100)
    first = await extractive.summarize(None, WEDDING, target_tokens=120)
    again = await extractive.summarize(first, WEDDING, target_tokens=400)
    assert again.count("Maria is getting married") == 1


async def test_extractive_without_anything_salient_keeps_the_topics(extractive: ExtractiveSummarizer) -> None:
    plain = items(("user", "tell me about the weather in general"), ("assistant", "it varies a lot"))
    assert await extractive.summarize(None, plain, target_tokens=50) == "user: tell me about the weather in general"
    assert await extractive.summarize(None, items(("user", "ok")), target_tokens=50) == ""


def test_the_model_prompt_asks_for_the_facts_and_carries_the_material() -> None:
    system, user = summary_request("- budget 900 euros", WEDDING, target_tokens=200)
    assert system.text == SUMMARY_INSTRUCTIONS
    for kept in ("name", "number", "date", "decision", "open"):
        assert kept in SUMMARY_INSTRUCTIONS
    assert "Previous summary:\n- budget 900 euros" in user.text
    assert "user: My sister Maria is getting married in Lisbon on 14 June 2025." in user.text
    assert "at most 150 words" in user.text
    assert "(none yet)" in summary_request(None, WEDDING, target_tokens=200)[1].text


@pytest.fixture
def fake() -> Iterator[FakeUpstream]:
    with FakeUpstream() as server:
        yield server


@pytest.fixture
async def upstream(fake: FakeUpstream) -> AsyncIterator[UpstreamBackend]:
    def make(model: str) -> UpstreamBackend:
        return UpstreamBackend(
            name="summarizer",
            upstream_model=model,
            base_url=fake.base_url,
            api_key=None,
            capabilities=frozenset({"text", "stream"}),
            context_window=None,
            max_output_tokens=None,
            connect_timeout=2.0,
            read_timeout=10.0,
            retries=0,
        )

    backend = make("qwen-plus")
    yield backend
    await backend.aclose()


async def test_model_summarizer_makes_one_bounded_call(fake: FakeUpstream, upstream: UpstreamBackend) -> None:
    summarizer = ModelSummarizer(upstream)
    text = await summarizer.summarize("- budget 900 euros", WEDDING, target_tokens=64)
    (body,) = fake.bodies()
    assert body["max_tokens"] == 64 and body["temperature"] == 0.2
    assert body["messages"][0] == {"role": "system", "content": SUMMARY_INSTRUCTIONS}
    # the fake upstream echoes the last user message: the summary is what the model wrote
    assert text.startswith("You said: Previous summary:") and "Maria" in text
    assert summarizer.name == "summarizer"


async def test_model_summarizer_failure_is_raised(fake: FakeUpstream, upstream: UpstreamBackend) -> None:
    fake.fault = "error-500"
    with pytest.raises(UpstreamError):
        await ModelSummarizer(upstream).summarize(None, WEDDING, target_tokens=64)
