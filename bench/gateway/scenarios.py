"""The side, procs and soak scenarios of the stored-turns benchmark (``bench/stored_turns.py``
describes them; the chain has its own module, ``gateway/chain.py``).

Each takes the parsed arguments, the fleet (its upstream running) and a working directory, runs
on a fresh store, and returns the JSON entry ``gateway/stored_report.py`` renders.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .fleet import Fleet
from .harness import cpu_ms, errors_of, gateways, lat, load, log, server_log, store, tally, usage
from .mix import SOAK_MIX
from .storedb import LockSampler, response_statuses

SIDE_KINDS = ("stateless", "stateless_history", "responses", "stateful_chat")
"""``stateless_history`` sends what a stored chain of as many turns sends, from the client."""
PROCESS_COUNTS = (1, 2, 4)


def side(args: argparse.Namespace, fleet: Fleet, db: str, workdir: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with store(db, args, workdir, "side") as dsn, gateways(fleet, dsn, 1, workdir / f"side-{db}") as logs:
        for conc, key in ((1, "side_c1"), (args.conc, "side_c32")):
            n, warmup = args.sizes[key]
            for kind in SIDE_KINDS:
                label = f"[side {db}] c={conc} {kind}"
                r = load(args, fleet, label, [kind], n, conc, warmup, postgres=db == "postgres")
                out[f"c{conc}/{kind}"] = {
                    "conc": conc,
                    "kind": kind,
                    "n": n,
                    "warmup": warmup,
                    "ok": r["ok"],
                    "rps": r["throughput"],
                    **lat(r["latencies_ms"]),
                    "cpu_ms": cpu_ms(r, ["M1"]),
                    **usage(r),
                    **errors_of(r),
                }
        out["stored_statuses"] = response_statuses(dsn)
        out["server_log"] = server_log(logs)
    return out


def procs(args: argparse.Namespace, fleet: Fleet, workdir: Path) -> dict[str, Any]:
    n, warmup = args.sizes["procs"]
    out: dict[str, Any] = {}
    for count in PROCESS_COUNTS:
        with (
            store("postgres", args, workdir, f"procs{count}") as dsn,
            gateways(fleet, dsn, count, workdir / f"procs-{count}") as logs,
        ):
            sampler = LockSampler(dsn).start()
            try:
                r = load(
                    args,
                    fleet,
                    f"[procs postgres] {count} process(es)",
                    ["responses"],
                    n,
                    args.conc,
                    warmup,
                    verify=True,
                    postgres=True,
                    analyze=dsn if args.analyze_after_warmup else None,
                )
            finally:
                locks = sampler.stop()
            statuses = response_statuses(dsn)
            server = server_log(logs)
        names = [f"M{k}" for k in range(1, count + 1)]
        turns = sum(c["turns"] for c in r["chains"])
        out[str(count)] = {
            "processes": count,
            "n": n,
            "warmup": warmup,
            "ok": r["ok"],
            "rps": r["throughput"],
            **lat(r["latencies_ms"]),
            "cpu_ms": cpu_ms(r, names),
            "cpu_ms_by_process": {k: cpu_ms(r, [k]) for k in names},
            **usage(r),
            "locks": locks,
            "chains": len(r["chains"]),
            "chain_turns": turns,
            "verified": r["verified"],
            "verify_problems": r["verify_problems"][:10],
            "verify_failed": len(r["verify_problems"]),
            "stored_statuses": statuses,
            **errors_of(r),
            "server_log": server,
        }
        log(
            f"  locks: {locks['samples_with_waiters']}/{locks['samples']} samples with waiters, "
            f"max {locks['max_waiters']}; "
            f"verify problems {len(r['verify_problems'])}; responses {statuses}"
        )
    return out


def soak(args: argparse.Namespace, fleet: Fleet, db: str, workdir: Path) -> dict[str, Any]:
    n = args.soak_n
    window = max(1, min(1000, n // 10))
    with store(db, args, workdir, "soak") as dsn, gateways(fleet, dsn, 1, workdir / f"soak-{db}") as logs:
        r = load(
            args,
            fleet,
            f"[soak {db}] {n} requests",
            list(SOAK_MIX),
            n,
            args.conc,
            0,
            checkpoints=(window,),
            verify=True,
            postgres=db == "postgres",
        )
        statuses = response_statuses(dsn)
        server = server_log(logs)
        fleet.stop_gateways()
        statuses_after_stop = response_statuses(dsn)
    values, kinds = r["latencies_ms"], r["kinds"]
    first, last = lat(values[:window]), lat(values[-window:])
    warm, end = r["rss_kb"][f"@{window}"]["M1"], r["rss_kb"]["end"]["M1"]
    by_kind = {}
    for kind in SOAK_MIX:
        mine = [v for v, k in zip(values, kinds, strict=True) if k == kind]
        by_kind[kind] = {"n": len(mine), "errors": sum(v is None for v in mine), **lat(mine)}
    return {
        "n": n,
        "conc": args.conc,
        "ok": r["ok"],
        "rps": r["throughput"],
        "window": window,
        **lat(values),
        "first_p99": first.get("p99"),
        "last_p99": last.get("p99"),
        "ratio": last["p99"] / first["p99"] if first and last else None,
        "blocks": [
            {"from": i + 1, "to": min(i + window, n), **lat(values[i : i + window])} for i in range(0, n, window)
        ],
        "rss_warm_kb": warm,
        "rss_end_kb": end,
        "rss_growth_pct": 100 * (end - warm) / warm if warm else None,
        "by_kind": by_kind,
        "cpu_ms": cpu_ms(r, ["M1"]),
        **usage(r),
        "stored_statuses": statuses,
        "stored_statuses_after_stop": statuses_after_stop,
        "in_progress": statuses.get("in_progress", 0),
        "verify_problems": r["verify_problems"][:10],
        "verify_failed": len(r["verify_problems"]),
        "error_kinds": tally(e["kind"] for e in r["errors"]),
        **errors_of(r),
        "server_log": server,
    }
