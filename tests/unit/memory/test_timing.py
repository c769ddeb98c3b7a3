"""``timing.when``: the span of times a question's time expression points to, and how recall uses it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from multiturn.memory.ranking import Tuning, rank, units
from multiturn.memory.timing import DAY_MS, Span, when
from multiturn.records import ItemRecord
from multiturn.types import TextPart


def _ms(day: str) -> int:
    return int(datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=UTC).timestamp() * 1000)


def _day(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d")


NOW = _ms("2023-04-01") + 8 * 3_600_000  # Saturday 1 April 2023, 08:00


@pytest.mark.parametrize(
    ("question", "start", "end"),
    [
        ("What did I buy for the competition four weeks ago?", "2023-02-28", "2023-03-12"),
        ("I received a piece of jewelry last Saturday from whom?", "2023-03-25", "2023-03-27"),
        ("I mentioned cooking something a couple of days ago. What was it?", "2023-03-28", "2023-04-01"),
        ("How many plants did I acquire in the last month?", "2023-02-23", "2023-04-01"),
        ("How many fun runs did I miss in March?", "2023-03-01", "2023-04-01"),
        ("What did Joanna write yesterday?", "2023-03-31", "2023-04-01"),
        ("Which restaurant did we go to last night?", "2023-03-31", "2023-04-01"),
        ("What was the recipe I mentioned the other day?", "2023-03-26", "2023-04-01"),
        ("What did I say about the roof earlier this week?", "2023-03-25", "2023-04-01"),
        ("Was the first half of September 2022 a good month?", "2022-09-01", "2022-09-29"),
        ("What did we see on the camping trip last summer?", "2022-06-01", "2022-09-14"),
        ("What was the page count of the novels I finished in January and March?", "2023-01-01", "2023-04-01"),
    ],
)
def test_a_past_period_is_read_as_the_span_its_telling_falls_in(question: str, start: str, end: str) -> None:
    span = when(question, NOW)
    assert span is not None
    assert (_day(span.start), _day(span.end)) == (start, end)


@pytest.mark.parametrize(
    ("question", "start", "end"),
    [
        ("What did Maria do last weekend before April 10, 2023?", "2023-04-08", "2023-04-11"),
        ("What did John do the week before August 3, 2023?", "2023-07-27", "2023-08-05"),
        ("What puppy did she get two weeks before August 11, 2023?", "2023-07-24", "2023-08-03"),
        ("What did Nate make on 9 November, 2022?", "2022-11-09", "2022-11-11"),
        ("How long has John been playing the drums as of 27 March, 2022?", "2022-01-26", "2022-04-02"),
        (
            "Where was Dave in the last two weeks of August 2023?",
            "2023-08-16",
            "2023-09-14",
        ),  # not "the past two weeks"
    ],
)
def test_an_explicit_date_anchors_the_words_beside_it(question: str, start: str, end: str) -> None:
    span = when(question, _ms("2024-01-01"))
    assert span is not None
    assert (_day(span.start), _day(span.end)) == (start, end)


@pytest.mark.parametrize(
    "question",
    [
        "May I ask what you recommended?",  # the verb, not the month
        "Any tips for the theme park this weekend?",  # a plan
        "Can you recommend a movie for me to watch tonight?",
        "How many months ago did I book the Airbnb?",  # asks how long, names no period
        "When did Caroline go to the support group?",
    ],
)
def test_no_past_period_no_span(question: str) -> None:
    assert when(question, NOW) is None


def _item(n: int, text: str, at: int) -> ItemRecord:
    return ItemRecord(
        id=f"i{n:03d}",
        conversation_id="c",
        parent_id=None,
        role="user" if n % 2 == 0 else "assistant",
        content=(TextPart(text),),
        status="completed",
        created_at=at,
        token_count=10,
    )


def test_units_written_outside_the_span_are_discounted_only_when_some_inside_match() -> None:
    path = [_item(n, f"turn {n}", _ms("2023-01-01") + n * 7 * DAY_MS) for n in range(10)]
    found = units(path)
    lexical = {"i002": 1.0, "i008": 0.9, "i005": 0.0}  # the better match was written weeks before the span
    tuning = Tuning(neighbour=0.0, length_exponent=0.0, out_of_time=0.5)
    span = Span(_ms("2023-02-26"), _ms("2023-03-01"))  # holds i008 (26 February)
    assert [r.item_ids[0] for r in rank(found, lexical, {}, tuning)] == ["i002", "i008"]
    timed = rank(found, lexical, {}, tuning, when=span)
    assert [(r.item_ids[0], round(r.score, 6)) for r in timed] == [("i008", 0.9), ("i002", 0.5)]
    empty = Span(_ms("2024-01-01"), _ms("2024-02-01"))  # nothing written then: ranked as without
    assert [r.item_ids[0] for r in rank(found, lexical, {}, tuning, when=empty)] == ["i002", "i008"]
