"""What every stored-turns scenario does: a fresh store, gateways on it, a load process, and the
digest of its result.

- ``store(db, ...)``: an empty SQLite file or PostgreSQL schema for one scenario, removed after.
- ``gateways(fleet, dsn, ...)``: ``count`` gateways on that store, stopped after (exit codes
  other than a clean or SIGTERM exit are logged).
- ``load(...)``: ``python -m gateway.mix`` as a separate process (on CPU 1 with ``--pin``) against
  the fleet; its JSON result. A failed request is in the result, a failed load process raises.
- ``lat``, ``errors_of``, ``cpu_ms``, ``usage``, ``server_log``: the numbers a report needs from a
  result or from the gateways' logs.
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson

from .common import percentile
from .fleet import Fleet
from .storedb import fresh_schema

BENCH = Path(__file__).resolve().parent.parent
RUN_DEADLINE = 1800.0  # seconds per load process


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def generator(args: argparse.Namespace, module: str) -> list[str]:
    """The command that runs ``python -m <module>`` as a load process (on CPU 1 with ``--pin``)."""
    return [*(["taskset", "-c", "1"] if args.pin else []), sys.executable, "-m", module]


def load(
    args: argparse.Namespace,
    fleet: Fleet,
    label: str,
    kinds: tuple[str, ...] | list[str],
    n: int,
    conc: int,
    warmup: int = 0,
    *,
    reset: bool = False,
    checkpoints: tuple[int, ...] = (),
    verify: bool = False,
    postgres: bool = False,
    analyze: str | None = None,
) -> dict[str, Any]:
    """Run ``python -m gateway.mix`` against the fleet's gateways; its JSON result. ``analyze``:
    a PostgreSQL DSN whose schema is analyzed after the warm-up."""
    cmd = generator(args, "gateway.mix")
    cmd += ["--urls", ",".join(fleet.urls), "--kinds", ",".join(kinds), "--conc", str(conc)]
    cmd += ["--n", str(n), "--warmup", str(warmup), "--label", label, "--deadline", str(RUN_DEADLINE)]
    cmd += ["--pids", ",".join(f"{k}={v}" for k, v in fleet.pids.items()), "--rss-cap-mb", str(args.rss_cap_mb)]
    if checkpoints:
        cmd += ["--checkpoints", ",".join(map(str, checkpoints))]
    cmd += ["--reset-after-warmup"] * reset + ["--verify"] * verify + ["--postgres-cpu"] * postgres
    cmd += ["--route", args.route] + (["--analyze", analyze] if analyze else [])
    done = subprocess.run(cmd, cwd=BENCH, stdout=subprocess.PIPE, text=True, timeout=RUN_DEADLINE + 120)
    if done.returncode != 0:
        raise RuntimeError(f"load generator failed ({label}), exit {done.returncode}")
    result: dict[str, Any] = orjson.loads(done.stdout)
    errors = len(result["errors"]) + len(result["warmup_errors"])
    if result["stopped"]:
        log(f"{label}: cut short: {result['stopped']}")
    log(
        f"{label}: {result['ok']}/{n} ok, {result['throughput']:.1f} req/s, {errors} errors"
        + (f" e.g. {(result['errors'] or result['warmup_errors'])[0]['error'][:160]}" if errors else "")
    )
    return result


def lat(values: list[float | None]) -> dict[str, float]:
    """p50 / p90 / p99 / max (ms) of the successful requests (None: failed)."""
    ok = [v for v in values if v is not None]
    if not ok:
        return {}
    return {"p50": percentile(ok, 0.5), "p90": percentile(ok, 0.9), "p99": percentile(ok, 0.99), "max": max(ok)}


def errors_of(result: dict[str, Any], keep: int = 10) -> dict[str, Any]:
    """Failures, their samples, and the response header sizes (``mix.MixResult.headers``)."""
    both = result["warmup_errors"] + result["errors"]
    return {
        "headers": result["headers"],
        "stopped": result["stopped"],
        "errors": len(result["errors"]),
        "warmup_errors": len(result["warmup_errors"]),
        "failures": result["statuses"],
        "error_samples": [e["error"] for e in both[:keep]],
        "complete": result["complete"],
    }


def cpu_ms(result: dict[str, Any], names: list[str]) -> float:
    """CPU (ms) the named processes used per successful measured request."""
    used: float = sum(result["cpu_s"].get(n, 0.0) for n in names)
    return 1000 * used / max(result["ok"], 1)


def usage(result: dict[str, Any]) -> dict[str, Any]:
    pg = result.get("postgres_cpu_s")
    return {
        "cores_busy": result["cores_busy"],
        "generator_cores": result["generator_cores"],
        "u_cpu_ms": cpu_ms(result, ["U"]),
        "pg_cpu_ms": None if pg is None else 1000 * pg / max(result["ok"], 1),
    }


def tally(values: Iterable[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return out


def server_log(fleet_logs: list[str]) -> dict[str, Any]:
    """Tracebacks in the gateways' logs: how many, and the last lines of the first."""
    found: dict[str, Any] = {"tracebacks": 0, "excerpt": []}
    for path in fleet_logs:
        lines = Path(path).read_text(errors="replace").splitlines()
        starts = [i for i, line in enumerate(lines) if line.startswith("Traceback")]
        found["tracebacks"] += len(starts)
        if starts and not found["excerpt"]:
            end = next(
                (j for j in range(starts[0] + 1, len(lines)) if lines[j] and not lines[j][0].isspace()), starts[0]
            )
            found["excerpt"] = [f"{Path(path).name}: {line}" for line in lines[max(starts[0], end - 12) : end + 1]]
    return found


@contextlib.contextmanager
def store(db: str, args: argparse.Namespace, workdir: Path, name: str) -> Iterator[str]:
    """A fresh, empty store: a SQLite file under ``workdir`` or a fresh PostgreSQL schema."""
    if db == "sqlite":
        path = workdir / f"{name}.db"
        yield str(path)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        return
    with fresh_schema(args.pg_dsn, prefix=f"bench_{name}") as dsn:
        yield dsn


@contextlib.contextmanager
def gateways(
    fleet: Fleet, dsn: str, count: int, logdir: Path, alias: dict[str, Any] | None = None
) -> Iterator[list[str]]:
    """``count`` gateways on ``dsn`` (``alias``: extra settings of the ``qwen-plus`` alias); their logs."""
    servers = fleet.start_gateways(dsn, count, logdir, alias=alias)
    logs = [s.facts["log"] for s in servers]
    log(f"  {count} gateway(s) up: " + ", ".join(f"{s.name} :{s.port} pid {s.pid}" for s in servers))
    try:
        yield logs
    finally:
        exits = fleet.stop_gateways()
        if any(code not in (0, None, -15) for code in exits.values()):  # -15: uvicorn re-raises SIGTERM
            log(f"  gateway exit codes: {exits}")
