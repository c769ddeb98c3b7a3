"""The context inspector on a conversation that overflows the window: a history of 18 rounds
(appended through the Conversations API, no model call), one turn under ``window`` and one
under ``auto`` (the real embedded model, 512-token window), so the second has a summary,
recalled rounds, drops and a cache miss caused by the policy change. What the page shows is
checked against the stored report, as the Responses API returns it with the turn's input
items; the what-if re-plan against the policies' own rules."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from multiturn.types import parse_spans
from support.serve import Server

from .conftest import Api, open_app, shot

NAMES = ["Rafael", "Beatriz", "Tomas", "Ines", "Duarte", "Leonor", "Gaspar", "Matilde", "Vasco"]
CITIES = ["Coimbra", "Braga", "Faro", "Evora", "Aveiro", "Viseu", "Leiria", "Tomar", "Sintra"]
FATES = ("kept", "recalled", "summarized", "dropped")


def _history() -> list[dict[str, str]]:
    items = []
    for n in range(18):
        name, city = NAMES[n % 9], CITIES[(n * 4) % 9]
        items.append({"role": "user", "content": f"My friend {name} moved to {city} in {1990 + n} with {n + 2} cats."})
        items.append({"role": "assistant", "content": f"Noted: {name} lives in {city} since {1990 + n}."})
    return items


@dataclass(frozen=True)
class Long:
    conversation_id: str
    first: dict[str, Any]
    """The turn under ``window``."""
    second: dict[str, Any]
    """The turn under ``auto``, right after it."""

    @property
    def answer_id(self) -> str:
        return str(self.second["output"][0]["id"])


@pytest.fixture(scope="module")
def long(api: Api) -> Iterator[Long]:
    conversation_id = api.conversation(_history())
    first = api.answer(conversation_id, "Which friend keeps the most cats?", "window")
    second = api.answer(conversation_id, "Where does Tomas live, and since when?", "auto")
    yield Long(conversation_id, first, second)


def _stored_fates(api: Api, response_id: str) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """The stored report of a response and each input item (its path) with the fate it gives."""
    report = api.call("GET", f"/v1/responses/{response_id}")["context_report"]
    path = [item["id"] for item in _input_items(api, response_id)]
    assert report["items"] == len(path)
    spans = {fate: parse_spans(report[fate]) for fate in FATES}

    def fate(n: int) -> str:
        return next(f for f in FATES if any(a <= n <= b for a, b in spans[f]))

    return report, [(item_id, fate(n)) for n, item_id in enumerate(path)]


def _inspect(page: Page, gateway: Server, long: Long) -> None:
    open_app(page, gateway, long.conversation_id)
    page.locator(f"#messages li[data-id='{long.answer_id}'] button.inspect").click()
    expect(page.locator("#inspector")).to_have_attribute("data-answer", long.answer_id)


def test_every_fate_shown_is_the_stored_reports(page: Page, gateway: Server, api: Api, long: Long) -> None:
    report, expected = _stored_fates(api, long.second["id"])
    assert {fate for _, fate in expected} == set(FATES), "the conversation must produce all four fates"
    _inspect(page, gateway, long)

    rows = page.locator("#inspector table.fates tbody tr")
    expect(rows).to_have_count(len(expected))
    shown = rows.evaluate_all("rows => rows.map(r => [r.dataset.id, r.dataset.fate])")
    assert [tuple(row) for row in shown] == expected
    for fate in FATES:
        count = sum(1 for _, f in expected if f == fate)
        expect(page.locator(f"#inspector .counts [data-fate={fate}]")).to_have_text(f"{fate} {count}")

    # the budget split is the stored one, component by component
    for part in ("system", "summary", "recalled", "history", "input", "template"):
        expect(page.locator(f"#inspector .legend li[data-part={part}] strong")).to_have_text(
            str(report["tokens_by_part"].get(part, 0))
        )
    expect(page.locator("#inspector .overview .policy")).to_have_text("auto")

    # the summary shown is the stored one: extractive, each line an item it covers, verbatim
    summary = page.locator("#inspector .summary-text").inner_text()
    covered = parse_spans(report["summarized"])
    texts = {
        f"{item['role']}: {item['content'][0]['text']}"
        for n, item in enumerate(_input_items(api, long.second["id"]))
        if any(a <= n <= b for a, b in covered)
    }
    lines = [line for line in summary.splitlines() if line.strip()]
    assert lines and all(line in texts for line in lines), (lines, texts)

    # each recalled row has its round's score and why it was recalled
    recalled = page.locator("#inspector table.fates tbody tr[data-fate=recalled]")
    for n in range(recalled.count()):
        row = recalled.nth(n)
        assert float(row.locator(".score").inner_text()) > 0
        expect(row.locator(".why")).to_contain_text("share")
    expect(recalled.filter(has_text="Tomas").first.locator(".why")).to_contain_text("tomas")
    shot(page, "inspector.png")


def _input_items(api: Api, response_id: str) -> list[dict[str, Any]]:
    return list(api.call("GET", f"/v1/responses/{response_id}/input_items?order=asc&limit=100")["data"])


def test_the_cache_miss_of_a_policy_change_is_explained(page: Page, gateway: Server, api: Api, long: Long) -> None:
    first, second = long.first["usage"], api.call("GET", f"/v1/responses/{long.second['id']}")["usage"]
    cached = second["input_tokens_details"]["cached_tokens"]
    # the backend really missed: far less reused than the previous prompt it had evaluated
    assert cached < first["input_tokens"] // 2, (cached, first)
    _inspect(page, gateway, long)

    expect(page.locator("#inspector .cached-tokens")).to_have_text(str(cached))
    diff = page.locator("#inspector .diff")
    expect(diff).to_have_attribute("data-cause", "summary_update")
    expect(diff.locator(".explanation")).to_contain_text("The policy changed from window to auto")
    expect(diff.locator(".explanation")).to_contain_text("summary")
    excerpts = page.locator("#inspector .excerpts pre.excerpt")
    expect(excerpts).to_have_count(2)
    expect(excerpts.nth(1)).to_contain_text(re.compile("summary", re.IGNORECASE))  # where the summary begins
    expect(excerpts.nth(0)).not_to_contain_text(re.compile("summary", re.IGNORECASE))

    # the turn before, under one policy throughout, is compared with an answer that has no report
    open_app(page, gateway, long.conversation_id)
    page.locator(f"#messages li[data-id='{long.first['output'][0]['id']}'] button.inspect").click()
    expect(page.locator("#inspector .diff-none")).to_be_visible()


def test_what_if_replans_the_turn_under_another_policy(page: Page, gateway: Server, api: Api, long: Long) -> None:
    _inspect(page, gateway, long)
    page.select_option("#inspector .whatif-policy", "window")
    page.fill("#inspector .whatif-budget", "200")
    page.click("#inspector button.replan")
    compare = page.locator("#inspector table.compare")
    expect(compare).to_have_attribute("data-policy", "window")

    planned = api.call(
        "POST",
        f"/v1/inspector/conversations/{long.conversation_id}/items/{long.answer_id}/whatif",
        {"policy": "window", "budget": 200},
    )
    tokens = int(compare.locator(".row-tokens .now").inner_text())
    assert tokens == planned["tokens"] <= 200  # the window fits its budget
    stored_tokens = int(compare.locator(".row-tokens .was").inner_text())
    assert stored_tokens == api.call("GET", f"/v1/responses/{long.second['id']}")["context_report"]["tokens"]
    expect(compare.locator(".row-cost .now")).to_have_text("$0.000000")  # the embedded model costs nothing

    # window neither summarizes nor recalls: every item is kept or dropped, the newest input kept
    whatif = page.locator("#inspector table.fates tbody tr").evaluate_all("rows => rows.map(r => r.dataset.whatif)")
    assert set(whatif) <= {"kept", "dropped"} and whatif[-1] == "kept"
    assert whatif.count("kept") == int(compare.locator(".row-kept .now").inner_text())
    assert whatif == [item["fate"] for item in planned["items"]]
    changed = page.locator("#inspector table.fates tbody tr.changed")
    assert changed.count() > 0  # the summarized and recalled items of the auto turn change fate
    page.locator("#inspector .whatif").evaluate("section => section.scrollIntoView()")
    shot(page, "whatif.png")


def test_search_finds_conversations_by_their_text(page: Page, gateway: Server, api: Api, long: Long) -> None:
    open_app(page, gateway)
    page.fill("#search", "Evora 1993")
    listed = page.locator(f"#conversations li[data-id='{long.conversation_id}']")
    expect(listed.locator(".matched")).to_contain_text("Evora")
    ids = page.locator("#conversations li[data-id]").evaluate_all("rows => rows.map(r => r.dataset.id)")
    for conversation_id in ids:  # every conversation listed holds both words
        texts = " ".join(
            item["text"] for item in api.call("GET", f"/v1/inspector/conversations/{conversation_id}")["items"]
        )
        assert "Evora" in texts and "1993" in texts
    page.fill("#search", "Zanzibar")
    expect(page.locator("#conversations li")).to_have_text(["No match."])
