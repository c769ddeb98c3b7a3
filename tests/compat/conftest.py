"""Session fixtures of the compat suite: real ``multiturn serve`` processes and a fake upstream.

- ``embedded``: ``multiturn serve`` with the default alias table, every Model Studio name served
  by the embedded model (the guide's text examples run here, on the real model). No API key.
- ``fake``: the OpenAI-compatible test upstream (tests/support/fake_upstream.py), in-process,
  with a long keep-alive (upstreams.py says why).
- ``gateway``: a second ``multiturn serve`` whose ``MULTITURN_MODELS`` sends the guide's
  ``qwen-plus`` (thinking examples) and ``qwen3-vl-plus`` (vision examples), plus one alias per
  fault, to the fake upstream; started with ``--api-key`` so 401s can be probed too.

All three live for the whole session; tests that look at what the fake received take the
requests recorded after a mark (``fake_since``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from dashscope.api_entities.http_request import close_shared_sync_session

from multiturn import catalog
from multiturn.settings import DEFAULT_MODEL
from support.fake_upstream import FakeUpstream, Recorded
from support.serve import GATEWAY_KEY, Server, default_cache_dir, start_serve, upstream_models

from .calls import close_clients
from .guide import Curl, curl_executable
from .java_runner import Jdk, compile_java
from .node_runner import node_executable
from .upstreams import PatientFakeUpstream


@pytest.fixture(scope="session", autouse=True)
def _dashscope_connections() -> Iterator[None]:
    """The dashscope SDK pools connections in one process-wide session: release them when the
    session ends (the servers they point to stop then), not at interpreter exit."""
    yield
    close_shared_sync_session()


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    """Close the OpenAI clients a test made (``calls.openai_client``). Left to the collector, a
    client caught in a cycle (a ``pytest.raises`` traceback holds the test's frame) may lose its
    socket before it can close it, and the socket warns."""
    yield
    close_clients()


@pytest.fixture(scope="session")
def fake() -> Iterator[FakeUpstream]:
    with PatientFakeUpstream() as server:  # see upstreams.py: a keep-alive the gateway's pool never outlives
        yield server


@pytest.fixture(scope="session")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    spec = catalog.find(DEFAULT_MODEL)
    if not catalog.is_pulled(spec, default_cache_dir() / "models"):
        pytest.fail(f"the default model is not pulled: run `multiturn models pull {spec.name}` (make test does)")
    server = start_serve("embedded", tmp_path_factory.mktemp("embedded-serve"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def gateway(fake: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("upstream-serve")
    server = start_serve("gateway", home, models=upstream_models(fake.base_url), api_key=GATEWAY_KEY)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def fake_since(fake: FakeUpstream) -> Callable[[], list[Recorded]]:
    """A function returning the chat requests the fake received since the test started."""
    mark = len(fake.requests)

    def since() -> list[Recorded]:
        return [r for r in fake.requests[mark:] if r.path.endswith("/chat/completions")]

    return since


@pytest.fixture(scope="module")
def node() -> str:
    """``node`` with the guide's pinned ``openai`` npm package installed (skips without node)."""
    return node_executable()


@pytest.fixture(scope="session")
def jdk(tmp_path_factory: pytest.TempPathFactory) -> Jdk:
    """Debian's OpenJDK with the programs of ``java/`` compiled (fails without a JDK)."""
    return compile_java(tmp_path_factory.mktemp("java-classes"))


@pytest.fixture(scope="session")
def curl() -> Curl:
    """The ``curl`` binary (skips without it)."""
    return curl_executable()
