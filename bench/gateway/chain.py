"""The chain scenario: one chain of ``responses`` turns at c=1, on two gateways that differ in the
upstream's context window.

- ``whole``: the alias as configured by default (the upstream backend's 131,072-token window), so
  every turn sends the whole history: turn 1,000 sends 1,999 items, and the latency grows with
  the payload (serialising, sending and counting it), not only with the stored chain.
- ``bounded``: the alias with ``"context_window": 2048``: the window policy keeps the last rounds
  that fit its budget (1,024 tokens, the other half reserved for the answer), about 30, so from
  about turn 30 on every turn sends about the same. What is left to grow with the chain is the
  stored turn's own work (loading the chain's path, planning the window, writing the turn).

Each variant runs on a fresh store and a fresh gateway, after a warm-up on another chain. After
each chain, ``gateway.baseline`` (a separate load process) sends stateless chat completions
with exactly the messages the chain's last turn sent, interleaved with stored turns that
continue the chain: the stored turn's overhead at the same payload.
"""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path
from typing import Any

import orjson

from .fleet import Fleet
from .harness import BENCH, cpu_ms, errors_of, gateways, generator, lat, load, log, server_log, store, usage
from .servers import request
from .storedb import response_statuses

VARIANTS: dict[str, tuple[str, dict[str, Any] | None]] = {
    "whole": ("whole history (128k window)", None),
    "bounded": ("bounded window", {"context_window": 2048}),
}
"""Variant -> (label, settings added to the ``qwen-plus`` alias)."""
BASELINE_N, BASELINE_WARMUP = 50, 5
EARLY_TURN = 10
"""The upstream alone is measured with what this turn sent (its 19 messages) against the last turn's."""
FILLED = (30, 40)  # turns 31-40: the bounded window is full by then (it starts dropping rounds near turn 28)


def chain(args: argparse.Namespace, fleet: Fleet, db: str, workdir: Path) -> dict[str, Any]:
    """Both variants on ``db``: ``{"whole": {...}, "bounded": {...}}``."""
    return {variant: run(args, fleet, db, workdir, variant) for variant in VARIANTS}


def run(args: argparse.Namespace, fleet: Fleet, db: str, workdir: Path, variant: str) -> dict[str, Any]:
    label, alias = VARIANTS[variant]
    n, warmup = args.sizes["chain"]
    block = max(1, n // 10)
    name = f"chain_{variant}"
    baseline = None
    with store(db, args, workdir, name) as dsn, gateways(fleet, dsn, 1, workdir / f"{name}-{db}", alias) as logs:
        marks = tuple(range(block, n, block))
        title = f"[chain {db}, {label}] {n} turns"
        r = load(args, fleet, title, ["responses"], n, 1, warmup, reset=True, checkpoints=marks, verify=True)
        last_id = r["chains"][0]["last_id"]
        last_report = _report(fleet, last_id) if last_id else None
        if last_id:
            baseline = stateless_baseline(args, fleet, last_id)
        statuses = response_statuses(dsn)
        server = server_log(logs)
    values = r["latencies_ms"][: r["ok"] + len(r["errors"])]  # the turns sent (a VmRSS cap may cut the chain)
    first, filled, last = lat(values[:10]), lat(values[FILLED[0] : FILLED[1]]), lat(values[-10:])
    late = lat(values[-BASELINE_N:])
    rss = r["rss_kb"]
    blocks = [
        {
            "from": i + 1,
            "to": min(i + block, len(values)),
            **lat(values[i : i + block]),
            "rss_kb": (rss.get(f"@{i + block}") or rss["end"])["M1"],
        }
        for i in range(0, len(values), block)
    ]
    before, after = rss["start"]["M1"], rss["end"]["M1"]
    if baseline is not None:
        base = baseline["stateless"].get("p50")
        baseline["overhead_ms"] = baseline["stored"]["p50"] - base if base and baseline["stored"] else None
        baseline["chain_p50"] = late.get("p50")
        baseline["chain_overhead_ms"] = late["p50"] - base if base and late else None
    return {
        "variant": variant,
        "label": label,
        "alias": alias or {},
        "turns": n,
        "warmup_turns": warmup,
        "ok": r["ok"],
        "block": block,
        "rps": r["throughput"],
        "first10_p50": first.get("p50"),
        "turns31_40_p50": filled.get("p50"),
        "last10_p50": last.get("p50"),
        "ratio": last["p50"] / first["p50"] if first and last else None,
        "ratio_31_40": last["p50"] / filled["p50"] if filled and last else None,
        "last_report": last_report,
        "baseline": baseline,
        "blocks": blocks,
        "rss_before_kb": before,
        "rss_after_kb": after,
        "rss_growth_mb": (after - before) * 1024 / 1e6,
        "cpu_ms": cpu_ms(r, ["M1"]),
        **usage(r),
        "chain": r["chains"][0],
        "verify_problems": r["verify_problems"],
        "stored_statuses": statuses,
        "latencies_ms": [None if v is None else round(v, 3) for v in values],
        **errors_of(r),
        "server_log": server,
    }


def _report(fleet: Fleet, response_id: str) -> dict[str, Any] | None:
    """The context report of a stored response: what its turn sent upstream."""
    status, body, _ = request(fleet.gateways[0].port, "GET", f"/v1/responses/{response_id}")
    if status != 200:
        log(f"  GET {response_id}: HTTP {status}")
        return None
    report: dict[str, Any] | None = orjson.loads(body).get("context_report")
    return report


def stateless_baseline(args: argparse.Namespace, fleet: Fleet, last_id: str) -> dict[str, Any] | None:
    """``python -m gateway.baseline`` against the chain's gateway; its JSON result (None if it failed)."""
    cmd = generator(args, "gateway.baseline")
    cmd += ["--url", fleet.urls[0], "--response", last_id, "--n", str(BASELINE_N), "--warmup", str(BASELINE_WARMUP)]
    if fleet.upstream is not None:
        cmd += ["--upstream", f"http://127.0.0.1:{fleet.upstream.port}", "--early", str(2 * EARLY_TURN - 1)]
    done = subprocess.run(cmd, cwd=BENCH, stdout=subprocess.PIPE, text=True, timeout=600)
    if done.returncode != 0:
        log(f"  stateless baseline failed, exit {done.returncode}")
        return None
    result: dict[str, Any] = orjson.loads(done.stdout)
    stateless, stored = result["stateless"].get("p50", float("nan")), result["stored"].get("p50", float("nan"))
    log(
        f"  baseline: {result['messages']} messages ({result['body_bytes']:,} bytes): stateless p50 "
        f"{stateless:.2f} ms, stored p50 {stored:.2f} ms, {len(result['errors'])} errors"
    )
    alone = result.get("upstream_alone")
    if alone:
        early, late = alone["early"].get("p50", float("nan")), alone["late"].get("p50", float("nan"))
        log(
            f"  upstream alone: {alone['early_messages']} messages p50 {early:.2f} ms, "
            f"{alone['late_messages']} messages {late:.2f} ms"
        )
    return result
