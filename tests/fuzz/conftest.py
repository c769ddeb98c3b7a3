"""The fuzz suite's gateway: ``multiturn serve`` on an ephemeral port, a real SQLite file in a
temporary directory, and every model name it serves an alias of the fake upstream
(tests/support/fake_upstream.py), so thousands of generated requests run in seconds without the
embedded model. The gateway requires an API key (``KEY``) so the 401 paths are real too.

``cases_run`` counts the requests each operation was sent, by the class of the status answered
(``2xx``, ``4xx``, ``5xx``); the counts are printed at the end of the session
(``pytest_terminal_summary``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest

from support.fake_upstream import FakeUpstream
from support.serve import Server, start_serve

KEY = "sk-fuzz-gateway"
MODEL = "qwen-plus"
KEEP_ALIVE = 120  # the fake's keep-alive outlives the gateway pool's (tests/compat/upstreams.py says why)

_CASES: Counter[tuple[str, str]] = Counter()


@pytest.fixture(scope="session")
def fuzz_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with FakeUpstream(keep_alive=KEEP_ALIVE) as fake:
        alias = {"backend": "upstream", "base_url": fake.base_url, "capabilities": ["text", "vision"]}
        env = {"MULTITURN_MODEL": MODEL, "MULTITURN_EMBEDDER": "none"}
        server = start_serve("fuzz", tmp_path_factory.mktemp("fuzz-serve"), models={MODEL: alias}, api_key=KEY, env=env)
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture(scope="session")
def cases_run() -> Counter[tuple[str, str]]:
    return _CASES


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _CASES:
        return
    labels = sorted({label for label, _ in _CASES})
    terminalreporter.section("schemathesis: requests sent per operation")
    terminalreporter.write_line(f"{'sent':>6}  {'2xx':>5}  {'4xx':>5}  {'5xx':>5}  operation")
    for label in labels:
        by_class = [_CASES[label, kind] for kind in ("2xx", "4xx", "5xx")]
        counts = "  ".join(f"{n:5d}" for n in by_class)
        terminalreporter.write_line(f"{sum(by_class):6d}  {counts}  {label}")
    total = sum(_CASES.values())
    terminalreporter.write_line(f"{total:6d}  in all, over {len(labels)} operations (stateful steps apart)")
