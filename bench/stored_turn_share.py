"""What share of a stored turn's gateway CPU the store takes, and the throughput a free store would allow.

``stored_turns.py`` compares stored turns with stateless ones at c=32 on SQLite (the target:
stored turns/s >= 50 % of stateless). This tool says how far any store could move that ratio.
For each kind (``stateless``, ``responses``, ``stateful_chat``; ``gateway/kinds.py``) it starts
one gateway on a fresh SQLite file beside the fake instant upstream and warms it up (every run
of the load starts its own chains, as ``stored_turns.py``'s c=32 does), then:

1. plain runs, the kinds in turn, ``--rounds`` times (the machine's speed drifts; the kinds of
   a round see the same): throughput and the gateway's CPU a request (``/proc``, as
   ``stored_turns.py`` reads it), their medians;
2. one run of each kind under ``py-spy record`` (sampling the gateway, which it pauses at each sample so every stack
   is whole): the share of the gateway's samples whose stack passes through the store
   (``multiturn/store/``, SQLAlchemy, the ``sqlite3`` driver; the WAL checkpointer thread
   included, its waits not), and the share inside a commit (``do_commit``: SQLite writing the WAL).

From these: the store's CPU a request (share x CPU), the rest (parsing, planning, the upstream
call, encoding, the HTTP server), and the ceiling a store costing nothing would give: one core
per request's rest (the gateway's event loop is the bound at c=32), against the stateless
throughput measured beside it. A share measured
by sampling is an estimate (py-spy slows the process it pauses; the plain run's CPU is the one
multiplied).

Needs py-spy, which is not a dependency: ``python -m venv /tmp/spy && /tmp/spy/bin/pip install
py-spy``, then ``--py-spy /tmp/spy/bin/py-spy`` (or put it on ``PATH``).

    .venv/bin/python bench/stored_turn_share.py [--kinds stateless,responses,stateful_chat]
        [--n 3000] [--warmup 320] [--conc 32] [--rounds 3] [--py-spy PATH] [--json FILE]
"""

from __future__ import annotations

import argparse
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from gateway.fleet import gateway  # noqa: E402
from gateway.harness import cpu_ms  # noqa: E402
from gateway.servers import VENV_BIN, running_upstream  # noqa: E402
from stored_turns import code_facts, publish  # noqa: E402

STORE = re.compile(r"multiturn/store/|sqlalchemy/|sqlite3/")
COMMIT = re.compile(r"do_commit \(")
WAITING = re.compile(r"\(threading\.py:\d+\)$")
"""A stack ending in ``threading`` waits (the checkpointer between checkpoints): py-spy may
sample a thread blocked on a lock as active; such samples are not counted."""
SAMPLE_HZ = 200
PACKAGE = re.compile(r"multiturn/(\w+)(?:/|\.py)")
OUTSIDE = "no multiturn frame (a thread's own work)"
LABELS = {
    "cli": "cli (uvicorn and the event loop, under `multiturn serve`)",
    "server": "server (routes, middleware, Starlette)",
}


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _load(url: str, pid: int, kind: str, n: int, conc: int) -> dict[str, Any]:
    mix = [str(VENV_BIN / "python"), "-m", "gateway.mix", "--urls", url, "--kinds", kind, "--conc", str(conc)]
    done = subprocess.run([*mix, "--n", str(n), "--pids", f"M={pid}"], cwd=HERE, capture_output=True, check=True)
    result: dict[str, Any] = orjson.loads(done.stdout)
    if result["ok"] != n:
        raise RuntimeError(f"{kind}: {n - result['ok']} of {n} requests failed: {result['errors'][:2]}")
    return result


def shares(collapsed: Path) -> dict[str, Any]:
    """Shares of the samples in py-spy's ``raw`` output (``frame;frame;... count`` lines): the
    store's, its commits', and the rest by the package of its innermost ``multiturn`` frame."""
    counts: Counter[str] = Counter()
    rest: Counter[str] = Counter()
    for line in collapsed.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        weight = int(n)
        if WAITING.search(stack):
            continue
        counts["all"] += weight
        if STORE.search(stack):
            counts["store"] += weight
            if COMMIT.search(stack):
                counts["commit"] += weight
        else:
            packages = PACKAGE.findall(stack)
            rest[packages[-1] if packages else OUTSIDE] += weight
    total = max(counts["all"], 1)
    return {
        "samples": counts["all"],
        "store": counts["store"] / total,
        "commit": counts["commit"] / total,
        "rest_by_package": {name: n / total for name, n in rest.most_common()},
    }


def measure(args: argparse.Namespace, upstream: int, work: Path, kinds: list[str]) -> list[dict[str, Any]]:
    """A gateway per kind; ``--rounds`` rounds of plain runs, the kinds in turn (the machine's speed
    drifts: the kinds of one round see the same); then one sampled run per kind."""
    servers = {kind: gateway(upstream, str(work / f"{kind}.db"), f"M-{kind}") for kind in kinds}
    try:
        for server in servers.values():
            server.start(work)
        urls = {kind: f"http://127.0.0.1:{server.port}" for kind, server in servers.items()}
        for kind in kinds:
            _load(urls[kind], servers[kind].pid, kind, args.warmup, args.conc)
        plain: dict[str, list[dict[str, Any]]] = {kind: [] for kind in kinds}
        for round_ in range(args.rounds):
            for kind in kinds:
                plain[kind].append(_load(urls[kind], servers[kind].pid, kind, args.n, args.conc))
            _log(f"  round {round_ + 1}: " + ", ".join(f"{k} {plain[k][-1]['throughput']:.0f} req/s" for k in kinds))
        rows = []
        for kind in kinds:
            collapsed = work / f"{kind}.txt"
            spy = [args.py_spy, "record", "-r", str(SAMPLE_HZ), "-f", "raw", "-o", str(collapsed)]
            sampler = subprocess.Popen(
                [*spy, "-p", str(servers[kind].pid)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            time.sleep(1.0)  # py-spy attaches
            _load(urls[kind], servers[kind].pid, kind, args.n, args.conc)
            sampler.send_signal(signal.SIGINT)
            sampler.wait(timeout=60)
            rows.append(_row(kind, plain[kind], shares(collapsed)))
    finally:
        for server in servers.values():
            server.stop()
    return rows


def _row(kind: str, runs: list[dict[str, Any]], share: dict[str, float]) -> dict[str, Any]:
    """Medians over the plain runs, split by the sampled shares."""
    rps = statistics.median(r["throughput"] for r in runs)
    cpu = statistics.median(cpu_ms(r, ["M"]) for r in runs)
    row = {
        "kind": kind,
        "rps": rps,
        "rps_runs": [r["throughput"] for r in runs],
        "gateway_cpu_ms": cpu,
        **share,
        "store_ms": share["store"] * cpu,
        "commit_ms": share["commit"] * cpu,
        "rest_ms": (1 - share["store"]) * cpu,
    }
    _log(
        f"  {kind}: {rps:.0f} req/s, gateway CPU {cpu:.3f} ms a request, store {share['store']:.1%} "
        f"of {share['samples']} samples (commits {share['commit']:.1%})"
    )
    return row


def report(rows: list[dict[str, Any]]) -> str:
    stateless = next((r["rps"] for r in rows if r["kind"] == "stateless"), None)
    lines = [
        "| kind | req/s | ÷ stateless | gateway CPU ms/req | store share (commits) | store ms | rest ms "
        "| req/s with a free store | ÷ stateless |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        free = 1000 / r["rest_ms"]
        ratio = (lambda x: f"{x / stateless:.0%}") if stateless else (lambda x: "-")
        lines.append(
            f"| {r['kind']} | {r['rps']:.0f} | {ratio(r['rps'])} | {r['gateway_cpu_ms']:.3f} | "
            f"{r['store']:.1%} ({r['commit']:.1%}) | {r['store_ms']:.3f} | {r['rest_ms']:.3f} | "
            f"{free:.0f} | {ratio(free)} |"
        )
    lines += ["", "The rest, by the package of the innermost `multiturn` frame (share of the gateway's samples):", ""]
    lines += ["| kind | " + " | ".join(["package", "share", "ms/req"]) + " |", "|---|---|---|---|"]
    for r in rows:
        for name, share in r["rest_by_package"].items():
            label = LABELS.get(name, name)
            lines.append(f"| {r['kind']} | {label} | {share:.1%} | {share * r['gateway_cpu_ms']:.3f} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kinds", default="stateless,responses,stateful_chat", help="request kinds [%(default)s]")
    p.add_argument("--n", type=int, default=3000, help="requests a run (stored_turns.py's c=32) [3000]")
    p.add_argument("--warmup", type=int, default=320, help="requests before the runs [320]")
    p.add_argument("--conc", type=int, default=32, help="concurrent clients [32]")
    p.add_argument("--rounds", type=int, default=3, help="plain runs of each kind, interleaved [3]")
    p.add_argument("--py-spy", default=shutil.which("py-spy") or "", help="the py-spy executable")
    p.add_argument("--json", type=Path, help="write the results here too")
    args = p.parse_args()
    if not args.py_spy or not Path(args.py_spy).exists():
        raise SystemExit("py-spy not found: install it (see --help) and pass --py-spy PATH")
    work = Path(tempfile.mkdtemp(prefix="stored-turn-share-"))
    code = code_facts()
    _log(f"measuring {code['commit']} in {work}")
    with running_upstream(work) as upstream:
        rows = measure(args, upstream, work, [kind for kind in args.kinds.split(",") if kind])
    publish("stored_turn_share.py", code, report(rows), args.json, {"rows": rows})
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
