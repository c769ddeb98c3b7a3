"""A short soak (the long one is ``bench/stored_turns.py --scenarios soak``): 1,200 mixed requests
(stateless, streamed, DashScope, Responses chains, streamed Responses, stateful chat) at c=16
against one gateway in front of the benchmark's instant upstream, on SQLite and PostgreSQL: no
error, every chain and conversation whole, no turn left open, no response left in progress."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from support.pg import pg_schema
from support.serve import start_serve

from .conftest import query

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

from gateway.mix import analyze_schema, run_mix  # noqa: E402
from gateway.storedb import response_statuses  # noqa: E402


@pytest.fixture(scope="module")
def instant() -> Iterator[str]:
    """The benchmark's upstream (``bench/gateway/upstream.py``): a fixed answer, at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    uvicorn = Path(sys.executable).with_name("uvicorn")
    args = [str(uvicorn), "upstream:app", "--app-dir", str(BENCH / "gateway"), "--port", str(port)]
    proc = subprocess.Popen([*args, "--log-level", "warning"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the benchmark upstream did not start"
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def test_a_short_soak_ends_with_no_error_and_nothing_open(instant: str, database: str, tmp_path: Path) -> None:
    models = {"qwen-plus": {"backend": "upstream", "base_url": instant}}
    server = start_serve("soak", tmp_path / "soak", models=models, env={"MULTITURN_DB": database})
    try:
        result = await run_mix([server.base], 1200, conc=16, verify=True, request_timeout=30)
    finally:
        server.stop()
    assert result.errors == [], result.errors[:5]
    assert result.verify_problems == [], result.verify_problems[:5]
    assert sum(1 for latency in result.latencies_ms if latency is not None) == 1200
    assert query(database, "SELECT id FROM turns") == []
    statuses = response_statuses(database)
    assert statuses.get("in_progress", 0) == 0 and statuses.get("completed", 0) >= 400, statuses


@pytest.mark.postgres
def test_the_bench_analyzes_its_schema_between_warm_up_and_measure() -> None:
    """``bench/stored_turns.py --analyze-after-warmup``: every table of the DSN's schema gets
    its statistics."""
    with pg_schema() as dsn, psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE a (x int)")
        conn.execute("CREATE TABLE b (y text)")
        conn.execute("INSERT INTO a SELECT generate_series(1, 500)")
        count = "SELECT reltuples FROM pg_class WHERE relname = %s AND relnamespace = current_schema()::regnamespace"
        assert conn.execute(count, ("a",)).fetchone() == (-1,)  # never analyzed
        analyze_schema(dsn)
        assert conn.execute(count, ("a",)).fetchone() == (500,)
        assert conn.execute(count, ("b",)).fetchone() == (0,)
