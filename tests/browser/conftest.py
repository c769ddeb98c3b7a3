"""The browser suite: a real ``multiturn serve`` (the embedded model, a small window so a short
conversation overflows it, and a thinking model of the fake upstream) on an ephemeral port,
driven by Playwright through Debian's Chromium, headless (Playwright from PyPI, never
``playwright install``: ``executable_path`` points at the system browser).

Without Chromium or Playwright the suite is skipped, visibly, on a developer's machine; under
``CI=true`` it fails instead (``make test`` installs both). Every page fails its test on a
JavaScript error, and on any request that leaves the gateway. Facts are checked through the
gateway's own API (``Api``), not through the page, and screenshots go to ``SHOTS``.
"""

from __future__ import annotations

import json
import os
import shutil
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from support.fake_upstream import FakeUpstream
from support.serve import Server, start_serve

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

CHROMIUM = os.environ.get("MULTITURN_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = Path(os.environ.get("MULTITURN_SCREENSHOTS") or Path(__file__).resolve().parents[2] / "build" / "screenshots")
"""Where the tests save their screenshots: ``build/screenshots`` (ignored by git), or
``$MULTITURN_SCREENSHOTS`` (``make screenshots`` points it at ``docs/images``, the README's)."""
MODEL = "qwen-plus"
"""An alias of the embedded model."""
THINKER = "thinker"
"""An alias of the fake upstream's thinking model (``support/fake_upstream.py``): reasoning, then
the answer, without a model; priced, so the page has a cost to show."""
THINKER_PRICE = {"currency": "USD", "input": 2.0, "output": 6.0}
"""Per million tokens (cached input at the default 20 % of input)."""
ANSWER_TIMEOUT_MS = 120_000
"""One answer of the embedded model on 2 shared cores, the first one loading it."""
GATEWAY_ENV = {
    "MULTITURN_N_CTX": "512",  # a window a short conversation overflows: drops, a summary, recall
    "MULTITURN_MAX_TOKENS": "16",  # short answers: the suite tests the page, not the model
    "MULTITURN_EMBEDDER": "none",  # lexical recall: every recalled round can say which words matched
    "MULTITURN_SYSTEM_PROMPT": "You are a concise assistant.",
}


def _missing(what: str) -> None:
    message = f"the browser tests need {what} (make test installs it)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message}; under CI it must be there")
    pytest.skip(message)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Chromium, for one module: Playwright's sync API keeps an event loop marked running on
    this thread while it is open, so it must be closed before another module's tests call
    ``asyncio.run`` or run a coroutine test."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright (pip: the dev extra)")
    if not Path(CHROMIUM).exists():
        _missing(f"Chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="session")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with FakeUpstream() as fake:
        models = {
            MODEL: {"backend": "embedded"},
            THINKER: {"backend": "upstream", "base_url": fake.base_url, "price": THINKER_PRICE},
        }
        server = start_serve("browser", tmp_path_factory.mktemp("browser-serve"), models=models, env=GATEWAY_ENV)
        try:
            yield server
        finally:
            server.stop()


@dataclass(frozen=True)
class Api:
    """The gateway's JSON API, called directly: what the page shows is checked against it."""

    base: str

    def call(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.base + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=ANSWER_TIMEOUT_MS / 1000) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"{method} {path}: {exc.code} {exc.read().decode(errors='replace')}") from None

    def conversation(self, items: list[dict[str, str]]) -> str:
        """A new conversation holding ``items`` (no model call), its id."""
        made = self.call("POST", "/v1/conversations", {"items": items[:20]})
        for start in range(20, len(items), 20):
            self.call("POST", f"/v1/conversations/{made['id']}/items", {"items": items[start : start + 20]})
        return str(made["id"])

    def branch(self, conversation_id: str) -> list[dict[str, Any]]:
        """The current branch's items, oldest first (the Conversations API)."""
        page = self.call("GET", f"/v1/conversations/{conversation_id}/items?order=asc&limit=100")
        return list(page["data"])

    def answer(self, conversation_id: str, text: str, policy: str) -> dict[str, Any]:
        """A stored turn through the Responses API (the real model); the response object."""
        body = {"model": MODEL, "conversation": conversation_id, "input": text, "context_policy": policy}
        return dict(self.call("POST", "/v1/responses", body))


@pytest.fixture(scope="session")
def api(gateway: Server) -> Api:
    return Api(gateway.base)


@pytest.fixture
def page(browser: Browser, gateway: Server) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    opened = context.new_page()
    errors: list[str] = []
    outside: list[str] = []
    opened.on("pageerror", lambda exc: errors.append(str(exc)))
    opened.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    opened.on("request", lambda r: None if r.url.startswith((gateway.base, "data:")) else outside.append(r.url))
    opened.set_default_timeout(30_000)
    try:
        yield opened
    finally:
        context.close()
    assert not errors, f"the page reported errors: {errors}"
    assert not outside, f"the page fetched from outside the gateway: {outside}"


def open_app(page: Page, gateway: Server, conversation_id: str | None = None) -> None:
    """The web app at ``/`` (redirected to ``/ui/``), ready, optionally on a conversation."""
    page.goto(gateway.base + "/" + (f"ui/?conversation={conversation_id}" if conversation_id else ""))
    page.wait_for_selector("body[data-ready=true]")


def shot(page: Page, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / name
    page.screenshot(path=str(path))
    return path
