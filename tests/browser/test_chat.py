"""The chat: a message streamed into the page through the Responses API, the answer's tokens as
stored; the tree: edit and resend (a branch), switching branches, retry (a sibling answer),
fork (a new conversation), undo. Every fact is checked against the gateway's API."""

from __future__ import annotations

from collections.abc import Callable

from playwright.sync_api import Page, expect

from support.serve import Server

from .conftest import ANSWER_TIMEOUT_MS, THINKER, THINKER_PRICE, Api, open_app, shot

WATCH_STREAM = """() => {
  window.seenLengths = [];
  new MutationObserver(() => {
    const text = document.querySelector("#messages li.streaming .text");
    if (text) window.seenLengths.push(text.textContent.length);
  }).observe(document.getElementById("messages"), { subtree: true, childList: true, characterData: true });
}"""


def _answered(page: Page, action: Callable[[], None]) -> None:
    """Run ``action``, which starts a turn, and wait until the page has ended it and shows the
    stored tree again (``body[data-turns]`` counts the turns the page ran to their end)."""
    done = int(page.locator("body").get_attribute("data-turns") or 0)
    action()
    page.wait_for_selector(f"body[data-turns='{done + 1}']", timeout=ANSWER_TIMEOUT_MS)
    expect(page.locator("#status")).to_have_text("")


def test_a_message_streams_in_and_shows_its_stored_tokens(page: Page, gateway: Server, api: Api) -> None:
    open_app(page, gateway)
    page.evaluate(WATCH_STREAM)
    page.select_option("#policy", "window")
    page.fill("#input", "Say hello to Lisbon in a few words.")
    _answered(page, lambda: page.click("#send"))

    # the answer arrived in pieces: the bubble grew through several lengths before it ended
    seen = [n for n in page.evaluate("window.seenLengths") if n > 0]
    assert len(set(seen)) >= 2, f"the answer did not stream: lengths seen {seen}"

    conversation_id = page.locator("#conversations li.current").get_attribute("data-id")
    assert conversation_id
    stored = api.branch(conversation_id)
    assert [item["role"] for item in stored] == ["user", "assistant"]
    answer_text = stored[1]["content"][0]["text"]
    answer = page.locator(f"#messages li[data-id='{stored[1]['id']}']")
    expect(answer.locator(".text")).to_have_text(answer_text)
    assert max(seen) == len(answer_text)

    tree = api.call("GET", f"/v1/inspector/conversations/{conversation_id}")
    usage = next(item for item in tree["items"] if item["id"] == stored[1]["id"])["usage"]
    expect(answer.locator(".tokens")).to_have_text(f"prompt {usage['prompt_tokens']}")
    expect(answer.locator(".cached")).to_have_text(f"cached {usage['cached_tokens']}")
    expect(answer.locator(".completion")).to_have_text(f"completion {usage['completion_tokens']}")
    expect(answer.locator(".policy")).to_have_text("policy window")
    if usage.get("cost") is not None:  # the embedded model is priced at zero
        expect(answer.locator(".cost")).to_contain_text(f"{usage['cost']['total']:.6f}")
    expect(page.locator("#conversations li.current .title")).to_have_text("Say hello to Lisbon in a few words.")
    shot(page, "chat.png")


def test_edit_switch_retry_fork_and_undo(page: Page, gateway: Server, api: Api) -> None:
    conversation_id = api.conversation(
        [{"role": "user", "content": "Name a color."}, {"role": "assistant", "content": "Blue."}]
    )
    original = api.branch(conversation_id)
    first_user, first_answer = original[0]["id"], original[1]["id"]
    open_app(page, gateway, conversation_id)
    expect(page.locator("#messages li.message")).to_have_count(2)

    # edit and resend the first message: a new branch beside the first, answered by the model
    page.locator(f"#messages li[data-id='{first_user}'] button.edit").click()
    page.fill("#messages textarea.edit-text", "Name a fruit.")
    _answered(page, lambda: page.click("#messages button.resend"))
    edited = api.branch(conversation_id)
    assert [item["role"] for item in edited] == ["user", "assistant"]
    assert edited[0]["content"][0]["text"] == "Name a fruit." and edited[0]["id"] != first_user
    user = page.locator(f"#messages li[data-id='{edited[0]['id']}']")
    expect(user.locator(".branch-position")).to_have_text("2/2")
    expect(page.locator("#branches")).to_have_text("2 branches")

    # the tree shows both branches; the previous branch is one click away
    page.click("#toggle-tree")
    expect(page.locator("#tree li")).to_have_count(4)
    user.locator("button.prev-branch").click()
    expect(page.locator(f"#messages li[data-id='{first_user}'] .branch-position")).to_have_text("1/2")
    expect(page.locator(f"#messages li[data-id='{first_answer}'] .text")).to_have_text("Blue.")
    assert [item["id"] for item in api.branch(conversation_id)] == [first_user, first_answer]

    # retry the stored answer: a sibling answer from the model, now the head
    _answered(page, lambda: page.locator(f"#messages li[data-id='{first_answer}'] button.retry").click())
    retried = api.branch(conversation_id)
    assert retried[0]["id"] == first_user and retried[1]["id"] != first_answer
    expect(page.locator(f"#messages li[data-id='{retried[1]['id']}'] .branch-position")).to_have_text("2/2")
    expect(page.locator("#branches")).to_have_text("3 branches")
    expect(page.locator("#tree li")).to_have_count(5)
    shot(page, "branches.png")

    # switch branches from the tree: the edited branch again
    page.locator(f"#tree li[data-id='{edited[0]['id']}'] > span").click()
    expect(page.locator(f"#messages li[data-id='{edited[1]['id']}']")).to_be_visible()
    assert [item["id"] for item in api.branch(conversation_id)] == [edited[0]["id"], edited[1]["id"]]

    # fork at the first message of this branch: a new conversation holding the path up to it
    page.locator(f"#messages li[data-id='{edited[0]['id']}'] button.fork").click()
    expect(page.locator("#status")).to_have_text("Forked into a new conversation.")
    fork_id = page.locator("#conversations li.current").get_attribute("data-id")
    assert fork_id and fork_id != conversation_id
    forked = api.branch(fork_id)
    assert [(item["role"], item["content"][0]["text"]) for item in forked] == [("user", "Name a fruit.")]
    expect(page.locator("#messages li.message")).to_have_count(1)
    assert [item["id"] for item in api.branch(conversation_id)] == [edited[0]["id"], edited[1]["id"]]

    # undo in the fork: the head goes back before its only message
    page.click("#undo")
    expect(page.locator("#messages li.message")).to_have_count(0)
    assert api.branch(fork_id) == []


def test_reasoning_is_collapsed_and_the_cost_is_the_price_tables(page: Page, gateway: Server, api: Api) -> None:
    open_app(page, gateway)
    page.select_option("#model", THINKER)
    page.fill("#input", "Plan a day in Porto.")
    _answered(page, lambda: page.click("#send"))
    conversation_id = page.locator("#conversations li.current").get_attribute("data-id")
    assert conversation_id
    tree = api.call("GET", f"/v1/inspector/conversations/{conversation_id}")
    stored = next(item for item in tree["items"] if item["role"] == "assistant")
    answer = page.locator(f"#messages li[data-id='{stored['id']}']")

    # the reasoning is there, collapsed, and opens to the stored reasoning
    details = answer.locator("details.reasoning")
    expect(details).not_to_have_attribute("open", "")
    expect(details.locator(".reasoning-text")).not_to_be_visible()
    details.locator("summary").click()
    expect(details.locator(".reasoning-text")).to_have_text(stored["reasoning"])
    assert stored["reasoning"].startswith("The user said: Plan a day in Porto.")  # the fake's reasoning
    expect(answer.locator(".text")).to_have_text("You said: Plan a day in Porto.")

    # the cost shown is the turn's tokens at the alias's price
    usage = stored["usage"]
    uncached = usage["prompt_tokens"] - usage["cached_tokens"]
    expected = (
        uncached * THINKER_PRICE["input"]
        + usage["cached_tokens"] * THINKER_PRICE["input"] * 0.2
        + usage["completion_tokens"] * THINKER_PRICE["output"]
    ) / 1_000_000
    assert expected > 0
    expect(answer.locator(".cost")).to_have_text(f"cost ${expected:.6f}")
