"""Stored turns vs stateless ones: what the Responses API and stateful chat completions cost.

Every gateway (``multiturn serve``, alias ``qwen-plus`` -> the fake instant upstream
``gateway/upstream.py``) runs as a subprocess on a fresh store: a SQLite file in a temporary
directory, or a fresh PostgreSQL schema (dropped afterwards). The load is a separate process
(``python -m gateway.mix``: a closed loop of C workers, aiohttp + uvloop, every answer validated;
see ``gateway/kinds.py`` for the request kinds; ``gateway/harness.py`` runs it). Scenarios
(``gateway/scenarios.py`` and ``gateway/chain.py``):

- ``side``: stateless vs ``responses`` (chains, ``previous_response_id``) vs ``stateful_chat``
  (``conversation``), at c=1 and c=32, one gateway per database: latency, throughput, CPU.
- ``chain``: one chain of 1,000 ``responses`` turns at c=1, twice: with the alias's default
  131,072-token window (every turn sends the whole history) and with ``"context_window": 2048``
  (a bounded window: a late turn sends what turn 30 sends): latency of the first turns, of turns
  31-40 and of the last, per block, and the gateway's VmRSS before and after; then, on the bounded
  chain, stateless chat completions with the messages its last turn sent, interleaved with stored
  turns (``gateway/chain.py``, ``gateway/baseline.py``).
- ``procs``: 1, 2 and 4 gateways on one PostgreSQL schema, c=32 chains whose successive turns go
  to different processes: throughput, CPU per stored turn, lock waits (sampled every 50 ms from
  ``pg_stat_activity``), and every chain checked whole in the store afterwards.
- ``soak``: N mixed requests (all six kinds in rotation) at c=32: errors, tail latency and VmRSS
  early vs late, and the stored turns left ``in_progress`` (read from the database directly).

Nothing is pinned by default: the upstream, the gateways, PostgreSQL and the load generator share
the machine's cores (the report says so). ``--pin`` puts the servers on CPU 0 and the load
generator on CPU 1 (PostgreSQL stays unpinned).

    .venv/bin/python bench/stored_turns.py [--quick] [--scenarios side,chain,procs,soak]
        [--db sqlite,postgres] [--soak-n 10000] [--pin] [--route rotate|sticky|each] [--analyze-after-warmup]
        [--json bench/results/stored_turns.json] [--report bench/results/stored_turns.md]
    .venv/bin/python bench/stored_turns.py --from-json bench/results/stored_turns.json --report FILE

PostgreSQL: ``scripts/pg-test-db`` starts the local cluster; ``--pg-dsn`` (default
``$MULTITURN_TEST_PG_DSN`` or ``postgresql://mt:mt@127.0.0.1:5432/mt``).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import shlex
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import orjson
from gateway import stored_report
from gateway.chain import chain
from gateway.fleet import Fleet
from gateway.harness import log
from gateway.kinds import STORED
from gateway.mix import ROUTES, SOAK_MIX
from gateway.scenarios import procs, side, soak
from gateway.servers import ROOT, request
from gateway.storedb import postgres_version
from gateway_overhead import code_facts, other_load, wait_quiet

BENCH = Path(__file__).resolve().parent
SCENARIOS = ("side", "chain", "procs", "soak")
DATABASES = ("sqlite", "postgres")
# (N, warm-up) per load; the chain is N turns after a warm-up on another chain.
SIZES = {"side_c1": (500, 50), "side_c32": (3000, 320), "chain": (1000, 20), "procs": (3000, 320)}
QUICK_SIZES = {"side_c1": (100, 10), "side_c32": (640, 64), "chain": (200, 10), "procs": (640, 64)}
SOAK_N, QUICK_SOAK_N = 10_000, 1_000
PACKAGES = ["multiturn", "starlette", "uvicorn", "uvloop", "httptools", "httpx", "sqlalchemy", "aiosqlite"]
PACKAGES += ["psycopg", "psycopg-binary", "psycopg-pool", "aiohttp", "orjson"]


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small N: 200-turn chain, 1,000-request soak")
    p.add_argument("--scenarios", default=",".join(SCENARIOS), help=f"comma-separated subset of {','.join(SCENARIOS)}")
    p.add_argument("--db", default=",".join(DATABASES), help="comma-separated subset of sqlite,postgres")
    p.add_argument("--soak-n", type=int, help=f"soak requests [default {SOAK_N:,}; --quick {QUICK_SOAK_N:,}]")
    p.add_argument("--chain-n", type=int, help="turns of each chain variant [default 1,000; --quick 200]")
    p.add_argument("--conc", type=int, default=32, help="the high concurrency of side, procs and soak")
    p.add_argument(
        "--rss-cap-mb",
        type=int,
        default=4096,
        help="cut a run short when a gateway's VmRSS passes this many MiB (0: no cap) [default 4096]",
    )
    p.add_argument("--pin", action="store_true", help="servers on CPU 0 (taskset), the load generator on CPU 1")
    p.add_argument(
        "--route",
        choices=ROUTES,
        default="rotate",
        help="how a request picks its gateway with several (gateway/mix.py ROUTES) [default rotate]",
    )
    p.add_argument(
        "--analyze-after-warmup",
        action="store_true",
        help="procs: ANALYZE the schema after the warm-up (the statistics of a database autovacuum has seen grow)",
    )
    p.add_argument(
        "--pg-dsn", default=os.environ.get("MULTITURN_TEST_PG_DSN") or "postgresql://mt:mt@127.0.0.1:5432/mt"
    )
    p.add_argument("--json", type=Path, default=BENCH / "results/stored_turns.json")
    p.add_argument("--report", type=Path, default=BENCH / "results/stored_turns.md")
    p.add_argument("--from-json", type=Path, help="render the report of a saved --json run")
    p.add_argument("--quiet-wait", type=float, default=0.0, help="wait up to this many s for the machine to be idle")
    p.add_argument("--keep-logs", action="store_true", help="keep the servers' logs (printed path)")
    p.add_argument(
        "--at-commit",
        metavar="REV",
        help="measure src/ as committed at REV (extracted with `git archive`), not the working tree",
    )
    args = p.parse_args()
    args.scenarios = [s for s in args.scenarios.split(",") if s]
    args.db = [d for d in args.db.split(",") if d]
    unknown = set(args.scenarios) - set(SCENARIOS) | set(args.db) - set(DATABASES)
    if unknown:
        p.error(f"unknown scenario or database: {', '.join(sorted(unknown))}")
    sizes = dict(QUICK_SIZES if args.quick else SIZES)
    if args.chain_n:
        sizes["chain"] = (args.chain_n, sizes["chain"][1])
    args.sizes = sizes
    args.soak_n = args.soak_n or (QUICK_SOAK_N if args.quick else SOAK_N)
    return args


# -- facts and the run ---------------------------------------------------------------------------


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def facts(args: argparse.Namespace) -> dict[str, Any]:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")), "")
    mem = next(
        line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")
    )
    return {
        "cpu_model": model,
        "nproc": os.cpu_count(),
        "mem_gib": round(int(mem) / 1024**2, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "postgres": postgres_version(args.pg_dsn) if "postgres" in args.db else None,
        "packages": {name: v for name in PACKAGES if (v := _version(name))},
    }


def _digest(root: Path) -> str:
    """The sources' hash as ``gateway_overhead.code_facts`` computes it, for a tree under ``root``."""
    digest = hashlib.sha256()
    for path in sorted((root / "src").rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def snapshot(rev: str, dest: Path) -> dict[str, Any]:
    """Extract ``src/`` as committed at ``rev`` into ``dest`` (read-only for the repository)."""
    git = ["git", "-C", str(ROOT)]
    tar = subprocess.run([*git, "archive", "--format=tar", rev, "src"], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=tar, check=True)
    head = subprocess.run([*git, "log", "-1", "--format=%h %ci", rev], capture_output=True, text=True, check=True)
    return {"commit": head.stdout.strip(), "snapshot_of": rev, "uncommitted_src": [], "src_sha256": _digest(dest)}


def publish(script: str, code: dict[str, Any], table: str, json_path: Path | None, results: dict[str, Any]) -> None:
    """A bench tool's end: its command, the time, the commit and its table on stdout; the same
    and its ``results`` as JSON in ``json_path`` when given."""
    command = " ".join([".venv/bin/python", f"bench/{script}", *sys.argv[1:]])
    print(f"{command}\n{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {code['commit']}\n\n{table}")
    if json_path:
        json_path.write_bytes(orjson.dumps({"command": command, "code": code, **results}))


def measure(args: argparse.Namespace) -> dict[str, Any]:
    if "postgres" in args.db:
        try:
            postgres_version(args.pg_dsn)
        except Exception as exc:  # the one thing to tell the user before starting anything
            raise SystemExit(f"PostgreSQL not reachable at {args.pg_dsn} ({exc}); run scripts/pg-test-db") from exc
    workdir = Path(tempfile.mkdtemp(prefix="stored-turns-"))
    src = None
    if args.at_commit:
        code = snapshot(args.at_commit, workdir)
        src = workdir / "src"
        log(f"measuring src/ at {code['commit']} (git archive {args.at_commit} -> {src})")
    else:
        code = code_facts()
    busy_before = wait_quiet(args.quiet_wait) if args.quiet_wait else other_load(1.0)
    loadavg_before = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    meta = {
        "command": shlex.join([".venv/bin/python", "bench/stored_turns.py", *sys.argv[1:]]),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "quick": args.quick,
        "scenarios": args.scenarios,
        "databases": args.db,
        "sizes": args.sizes,
        "soak_n": args.soak_n,
        "conc": args.conc,
        "pin": args.pin,
        "route": args.route,
        "analyze_after_warmup": args.analyze_after_warmup,
        "machine": facts(args),
        "code": code,
        "soak_mix": list(SOAK_MIX),
        "cores_busy_before": busy_before,
        "loadavg_before": loadavg_before,
        "stored_kinds": list(STORED),
    }
    fleet = Fleet(workdir, pin=args.pin, src=src)
    results: dict[str, Any] = {s: {} for s in args.scenarios}
    started = time.perf_counter()
    ok = False
    try:
        up = fleet.start_upstream()
        log(f"upstream U on :{up.port} (pid {up.pid}); logs in {workdir}")
        for db in args.db:
            for scenario in args.scenarios:
                if scenario == "procs":
                    continue
                log(f"== {scenario} on {db}")
                run = {"side": side, "chain": chain, "soak": soak}[scenario]
                results[scenario][db] = run(args, fleet, db, workdir)
        if "procs" in args.scenarios:
            if "postgres" in args.db:
                log("== procs on postgres")
                results["procs"]["postgres"] = procs(args, fleet, workdir)
            else:
                results.pop("procs")
        _, stats, _ = request(up.port, "GET", "/stats")
        meta["upstream_stats"] = orjson.loads(stats)
        ok = True
    finally:
        exits = fleet.stop()
        meta["exit_codes"] = exits
        if ok and not args.keep_logs:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            log(f"logs kept in {workdir}")
    meta["wall_s"] = time.perf_counter() - started
    meta["loadavg_after"] = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    if not args.at_commit:
        meta["code_changed_during_run"] = code_facts()["src_sha256"] != code["src_sha256"]
    return {"meta": meta, "results": results}


def main() -> int:
    args = parse_args()
    raw = orjson.loads(args.from_json.read_bytes()) if args.from_json else measure(args)
    if not args.from_json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_bytes(orjson.dumps(raw, option=orjson.OPT_INDENT_2))
        log(f"raw results: {args.json}")
    text = stored_report.markdown(raw)
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(text)
    log(f"report: {args.report}")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
