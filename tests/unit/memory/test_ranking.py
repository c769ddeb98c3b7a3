"""The pure parts of recall: units, fusion, neighbours, cost weighting, query building, BM25."""

from __future__ import annotations

from dataclasses import replace

from multiturn.memory.lexical import BM25, stem
from multiturn.memory.query import asks_back, build_query, content_words, leans_on_context, names
from multiturn.memory.ranking import Tuning, fuse, rank, units
from multiturn.records import ItemRecord
from multiturn.types import TextPart, ToolCall


def _item(n: int, role: str = "user", text: str = "", **extra: object) -> ItemRecord:
    return ItemRecord(
        id=f"i{n:03d}",
        conversation_id="c",
        parent_id=None,
        role=role,  # type: ignore[arg-type]
        content=(TextPart(text or f"turn {n}"),),
        status="completed",
        created_at=n,
        token_count=10,
        **extra,  # type: ignore[arg-type]
    )


def test_a_tool_call_and_its_results_are_one_unit_and_failed_items_none() -> None:
    call = ToolCall(id="call_1", name="weather", arguments='{"city": "Oslo"}')
    path = [
        _item(0, "user", "weather in Oslo?"),
        _item(1, "assistant", "", tool_calls=(call,)),
        _item(2, "tool", "rain, 4 C", tool_call_id="call_1"),
        _item(3, "assistant", "It rains in Oslo."),
        _item(4, "tool", "orphan result", tool_call_id="call_9"),
        replace(_item(5, "assistant", "broken"), status="failed"),
    ]
    assert [ids for ids, _ in units(path)] == [("i000",), ("i001", "i002"), ("i003",), ("i004",)]


def test_weighted_fusion_normalizes_each_ranking_and_rrf_uses_ranks() -> None:
    lexical = {"a": 10.0, "b": 5.0, "c": 0.0}
    dense = {"a": 0.1, "b": 0.9, "c": 0.5}
    weighted = fuse(lexical, dense, Tuning(lexical_weight=0.5))
    assert weighted == {"a": 0.5, "b": 0.5 * 0.5 + 0.5 * 1.0, "c": 0.5 * 0.5}
    only_dense = fuse({}, dense, Tuning(lexical_weight=0.5))
    assert only_dense["b"] == 1.0 and only_dense["a"] == 0.0
    rrf = fuse(lexical, dense, Tuning(fusion="rrf", lexical_weight=0.5, rrf_k=0))
    assert rrf == {"a": 0.5 / 1 + 0.5 / 3, "b": 0.5 / 2 + 0.5 / 1, "c": 0.5 / 3 + 0.5 / 2}


def test_neighbours_inherit_a_decayed_score_and_length_weighting_orders_by_cost() -> None:
    path = [_item(n, "user" if n % 2 == 0 else "assistant") for n in range(7)]
    found = units(path)
    lexical = {"i003": 1.0, "i000": 0.0}  # one hit in the middle; i000 is the zero of the scale
    plain = rank(found, lexical, {}, Tuning(neighbour=0.0, length_exponent=0.0))
    assert [r.item_ids for r in plain] == [("i003",)]
    spread = rank(found, lexical, {}, Tuning(neighbour=0.5, reach=2, length_exponent=0.0))
    assert {r.item_ids[0]: r.score for r in spread} == {
        "i003": 1.0,
        "i002": 0.5,
        "i004": 0.5,
        "i001": 0.25,
        "i005": 0.25,
    }
    summed = rank(
        found,
        {"i002": 1.0, "i004": 1.0, "i000": 0.0},
        {},
        Tuning(neighbour=0.5, reach=1, spread="sum", length_exponent=0.0),
    )
    summed_scores = {r.item_ids[0]: r.score for r in summed}
    assert summed_scores == {"i002": 1.0, "i003": 1.0, "i004": 1.0, "i001": 0.5, "i005": 0.5}  # i003: 0.5 + 0.5
    long = replace(path[5], token_count=400)
    found = units([*path[:5], long, path[6]])
    scores = {"i001": 1.0, "i005": 1.0, "i000": 0.0}
    cheap_first = rank(found, scores, {}, Tuning(neighbour=0.0, length_exponent=0.5))
    long_first = rank(found, scores, {}, Tuning(neighbour=0.0, length_exponent=-0.25))
    assert [r.item_ids[0] for r in cheap_first] == ["i001", "i005"]
    assert [r.item_ids[0] for r in long_first] == ["i005", "i001"]


def test_candidates_stop_past_the_token_cap() -> None:
    path = [_item(n) for n in range(50)]
    scores = {f"i{n:03d}": float(n) for n in range(50)}
    ranked = rank(units(path), scores, {}, Tuning(neighbour=0.0, length_exponent=0.0, candidate_tokens=100))
    assert [r.item_ids[0] for r in ranked] == [f"i{n:03d}" for n in range(49, 41, -1)]  # 8 x 14 tokens > 100


def test_a_larger_prompt_budget_gets_more_candidates_than_the_floor() -> None:
    tuning = Tuning(neighbour=0.0, length_exponent=0.0, max_candidates=4, candidate_tokens=100, candidate_budgets=3.0)
    assert tuning.scale(None) == tuning.scale(30) == 1.0  # 3 x 30 tokens is under the floor
    assert tuning.scale(100) == 3.0
    path = [_item(n) for n in range(50)]
    scores = {f"i{n:03d}": float(n) for n in range(50)}
    floor = rank(units(path), scores, {}, tuning)
    larger = rank(units(path), scores, {}, tuning, budget=100)
    assert [r.item_ids[0] for r in floor] == [f"i{n:03d}" for n in range(49, 45, -1)]  # 4 units
    assert [r.item_ids[0] for r in larger] == [f"i{n:03d}" for n in range(49, 37, -1)]  # 12 units
    assert Tuning().scale(8000) == Tuning().scale(None) == 1.0  # tuned at 1k-8k: the floors
    assert Tuning().scale(16_000) == 2.0


def test_the_previous_turn_joins_the_query_only_when_the_input_leans_on_it() -> None:
    history = [_item(0, "user", "My sister Dana moved to Lisbon."), _item(1, "assistant", "Exciting news!")]
    assert leans_on_context("What did she say about it?")
    assert leans_on_context("Why?")
    assert not leans_on_context("When did Caroline go to the support group?")
    assert not leans_on_context("What is the capital of France?")
    assert leans_on_context("Any tips for keeping it clean?")  # short: "it" is the previous turn's
    assert leans_on_context("How much did that cost?")
    # four content words or more name their own subject, pronoun or not
    assert not leans_on_context("How many days before my best friend's birthday party did I order her gift?")
    assert not leans_on_context("My kitchen is becoming a mess again. Any tips for keeping it clean?")
    query = build_query([_item(2, "user", "and what about her?")], history)
    assert query.previous == "Exciting news!" and "exciting" in query.lexical.split()
    named = build_query([_item(2, "user", "Where did Dana move to?")], history)
    assert named.previous == "" and named.lexical == "dana move"
    assert content_words("What is THE plan, the plan?") == ["plan"]


def test_names_are_capitalized_words_that_do_not_open_a_sentence() -> None:
    assert names("Did Jon and Gina meet in Paris? Jon said so.") == ["jon", "gina", "paris"]
    assert names("I have been sneezing. Do you think it is my living room?") == []
    assert names("What is my highest score in Ticket to Ride?") == ["ticket", "ride"]
    assert names("Who gave me a ring last Saturday, in June?") == []  # times, not things a turn names
    assert build_query([_item(1, "user", "What did Gina bake?")], [_item(0)]).names == ["gina"]


def test_units_naming_none_of_the_questions_names_keep_a_share_of_their_score() -> None:
    path = [
        _item(0, "user", "Gina: I baked a lemon tart."),
        _item(1, "assistant", "Jon: I baked bread."),
        _item(2, "user", "nothing"),
    ]
    scores = {"i000": 1.0, "i001": 1.0, "i002": 0.0}
    plain = Tuning(neighbour=0.0, length_exponent=0.0)
    ranked = {r.item_ids[0]: r.score for r in rank(units(path), scores, {}, plain, names=["gina"])}
    assert ranked == {"i000": 1.0, "i001": 0.7}
    either = rank(units(path), scores, {}, plain, names=["GINA", "jon"])
    assert [r.score for r in either] == [1.0, 1.0]
    off = rank(units(path), scores, {}, replace(plain, unnamed=1.0), names=["gina"])
    assert [r.score for r in off] == [1.0, 1.0]
    partial = rank(units(path), scores, {}, plain, names=["gin"])  # whole words only
    assert [r.score for r in partial] == [0.7, 0.7]


def test_a_question_asking_back_is_one_that_says_so_not_a_request() -> None:
    assert asks_back("What was the Italian restaurant in Rome you recommended?")
    assert asks_back("I remember you told me to dilute tea tree oil. What ratio?")
    assert asks_back("I'm checking our previous chat about the rotation sheet.")
    assert asks_back("What did you suggest for the garden?")
    assert asks_back("Can you remind me what the phone number was?")
    assert not asks_back("Can you recommend a show for tonight?")
    assert not asks_back("Remind me to call Dana tomorrow.")
    assert not asks_back("What did Gina say about my last conversation with Jon?")
    assert build_query([_item(1, "user", "What hike did you recommend?")], [_item(0)]).back


def test_a_question_asking_back_gets_its_best_full_text_match_first() -> None:
    """A run of short turns about the same thing outranks the long answer that matches the words
    best (the neighbours' share, the length's cost); asked back, that answer comes first."""
    path = [_item(n, "user" if n % 2 == 0 else "assistant", f"tea tree oil {n}") for n in range(6)]
    path[5] = replace(path[5], token_count=800)
    found = units([*path, _item(6, "user", "unrelated"), _item(7, "assistant", "unrelated")])
    lexical = {"i000": 0.8, "i001": 0.8, "i002": 0.8, "i003": 0.8, "i004": 0.8, "i005": 1.0, "i006": 0.1}
    plain = rank(found, lexical, {}, Tuning())
    assert plain[0].item_ids != ("i005",)
    back = rank(found, lexical, {}, Tuning(), back=True)
    assert back[0].item_ids == ("i005",) and back[0].score > back[1].score
    assert [r.item_ids for r in back[1:]] == [r.item_ids for r in plain if r.item_ids != ("i005",)]
    assert rank(found, lexical, {}, Tuning(back_first=0), back=True) == plain


def test_bm25_prefers_rarer_words_more_matches_and_shorter_documents() -> None:
    docs = [
        "the cat sat on the mat",
        "the dog chased the cat around the garden for a very long time indeed",
        "a zebra in the zoo",
        "cats and zebras",
    ]
    scores = BM25(docs).scores("zebra cat")
    assert set(scores) == {0, 1, 2, 3}
    assert max(scores, key=lambda n: scores[n]) == 3  # both words (zebras, cats stemmed)
    assert scores[2] > scores[0] > scores[1]  # the rarer word; then the shorter document
    assert BM25(docs).scores("unrelated words") == {}
    assert (stem("cities"), stem("walking"), stem("is")) == ("city", "walk", "is")
    assert stem("named") == stem("name") == stem("names")
