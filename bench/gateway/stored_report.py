"""The Markdown report of ``bench/stored_turns.py``, rendered from its JSON (so ``--from-json``
renders a saved run again), with each target and its PASS/FAIL beside the number."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .chain_report import chain_section
from .stored_format import DB_NAMES, MIB, TARGETS, errors_cell, f, statuses_and_logs, table, verdict


def side_ratios(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Per database and stored kind: p50 over stateless at c=1 (ms), throughput / stateless at c=32."""
    out = []
    for db, runs in results.items():
        concs = sorted({r["conc"] for key, r in runs.items() if "/" in key})
        if not concs:
            continue
        lo, hi = concs[0], concs[-1]
        base_lo, base_hi = runs.get(f"c{lo}/stateless") or {}, runs.get(f"c{hi}/stateless") or {}
        for kind in ("responses", "stateful_chat"):
            a, b = runs.get(f"c{lo}/{kind}") or {}, runs.get(f"c{hi}/{kind}") or {}
            delta = a["p50"] - base_lo["p50"] if "p50" in a and "p50" in base_lo else None
            ratio = b["rps"] / base_hi["rps"] if b and base_hi.get("rps") else None
            same = runs.get(f"c{hi}/stateless_history") or {}
            ratio_same = b["rps"] / same["rps"] if b and same.get("rps") else None
            out.append(
                {"db": db, "kind": kind, "delta_p50_ms": delta, "rps_ratio": ratio, "rps_ratio_same": ratio_same}
            )
    return out


def _side(results: dict[str, Any], summary: list[list[str]]) -> list[str]:
    lines = ["## 1. Side by side: stateless vs stored turns", ""]
    header = [
        "db",
        "kind",
        "c",
        "N",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "req/s",
        "gateway CPU ms/req",
        "U CPU ms/req",
        "PG CPU ms/req",
        "cores busy",
        "errors",
    ]
    rows = []
    for db, runs in results.items():
        for key, r in runs.items():
            if "/" not in key:
                continue
            rows.append(
                [
                    DB_NAMES[db],
                    r["kind"],
                    str(r["conc"]),
                    str(r["n"]),
                    f(r.get("p50")),
                    f(r.get("p90")),
                    f(r.get("p99")),
                    f(r["rps"], ".0f"),
                    f(r["cpu_ms"]),
                    f(r["u_cpu_ms"]),
                    f(r["pg_cpu_ms"]),
                    f(r["cores_busy"]),
                    errors_cell(r),
                ]
            )
    lines += table(header, rows)
    rows = []
    for x in side_ratios(results):
        v1 = verdict("side_p50", x["delta_p50_ms"])
        v2 = verdict("side_rps", x["rps_ratio"]) if x["db"] == "sqlite" else "(no target)"
        rows.append(
            [
                DB_NAMES[x["db"]],
                x["kind"],
                f(x["delta_p50_ms"], "+.2f"),
                v1,
                f(None if x["rps_ratio"] is None else 100 * x["rps_ratio"], ".0f", " %"),
                v2,
                f(None if x.get("rps_ratio_same") is None else 100 * x["rps_ratio_same"], ".0f", " %"),
            ]
        )
        summary.append(
            [TARGETS["side_p50"][0], f"{DB_NAMES[x['db']]}, {x['kind']}", f(x["delta_p50_ms"], "+.2f", " ms"), v1]
        )
        if x["db"] == "sqlite":
            summary.append(
                [
                    TARGETS["side_rps"][0],
                    f"SQLite, {x['kind']}",
                    f(None if x["rps_ratio"] is None else 100 * x["rps_ratio"], ".0f", " %"),
                    v2,
                ]
            )
    lines += table(
        [
            "db",
            "stored kind",
            "p50 - stateless p50 at c=1 (ms)",
            "≤ 3 ms",
            "req/s ÷ stateless req/s at c=32",
            "≥ 50 % (SQLite)",
            "req/s ÷ stateless_history req/s at c=32 (same payload, no target)",
        ],
        rows,
    )
    lines += [
        "`stateless` sends one message; the stored kinds send their chain's whole history (the "
        "alias's 131,072-token window), which grows by two items a turn. `stateless_history` "
        "sends that same history from the client (each worker's own growing `messages` array, "
        "as many turns as the stored workers), so its ratio is what keeping the conversation in "
        "the gateway costs against an application that keeps it itself.",
        "",
    ]
    lines += statuses_and_logs(results)
    return lines


def _procs(results: dict[str, Any], summary: list[list[str]]) -> list[str]:
    lines = ["## 3. Processes: several gateways on one PostgreSQL schema, chains continued across them", ""]
    runs = results.get("postgres") or {}
    if not runs:
        return [*lines, "Not run (needs `--db postgres`).", ""]
    rows = []
    for count, r in runs.items():
        locks = r["locks"]
        lost = r["verify_failed"]
        rows.append(
            [
                count,
                f(r["rps"], ".0f"),
                f(r.get("p50")),
                f(r.get("p99")),
                f(r["cpu_ms"]),
                " / ".join(f(v) for v in r["cpu_ms_by_process"].values()),
                f(r["pg_cpu_ms"]),
                f(r["cores_busy"]),
                errors_cell(r),
                f"{locks['samples_with_waiters']} / {locks['samples']}"
                + (f" ({_events(locks['wait_events'])})" if locks.get("wait_events") else ""),
                str(locks["max_waiters"]),
                f"{locks.get('cluster_samples_with_waiters', '?')} / {locks.get('cluster_max_waiters', '?')}",
                f"{r['chains'] - lost} / {r['chains']} ({r['chain_turns']} turns)",
                str(r["stored_statuses"].get("in_progress", 0)),
            ]
        )
        errs = r["errors"] + r["warmup_errors"]
        summary.append(
            [TARGETS["procs_errors"][0], f"PostgreSQL, {count} process(es)", str(errs), verdict("procs_errors", errs)]
        )
        summary.append(
            [
                TARGETS["procs_lost"][0],
                f"PostgreSQL, {count} process(es)",
                f"{lost} broken",
                verdict("procs_lost", lost),
            ]
        )
        summary.append(
            [
                TARGETS["in_progress"][0],
                f"procs, {count} process(es)",
                str(r["stored_statuses"].get("in_progress", 0)),
                verdict("in_progress", r["stored_statuses"].get("in_progress", 0)),
            ]
        )
    lines += table(
        [
            "processes",
            "req/s",
            "p50 ms",
            "p99 ms",
            "gateway CPU ms/turn (sum)",
            "per process",
            "PG CPU ms/turn",
            "cores busy",
            "errors",
            "lock samples with waiters",
            "max waiters",
            "cluster-wide: samples with waiters / max",
            "chains whole",
            "in_progress left",
        ],
        rows,
    )
    first = next(iter(runs.values()))
    lines += [
        f"Lock waits: `{first['locks']['query']}` every {first['locks']['interval_s'] * 1000:.0f} ms from a "
        "separate connection while the load process runs (warm-up, measured phase, the check); the gateways' "
        "connections carry the schema's name as `application_name`, and the cluster-wide column counts every "
        "session (another user of the cluster included). PG CPU is the whole cluster's too. "
        "Chains whole: the last response of each worker's "
        "chain is retrievable and `completed`, and its `input_items` (every page of 100) are "
        "2 x turns - 1 items alternating user/assistant, read through another process than the one that "
        "wrote the last turn.",
        "",
    ]
    for count, r in runs.items():
        if r["verify_problems"]:
            lines += [
                f"Broken chains with {count} process(es):",
                "",
                *[f"- `{p}`" for p in r["verify_problems"][:5]],
                "",
            ]
    lines += statuses_and_logs({f"postgres, {k} process(es)": v for k, v in runs.items()})
    return lines


def _soak(results: dict[str, Any], summary: list[list[str]], meta: dict[str, Any]) -> list[str]:
    lines = ["## 4. Soak: a rotating mix of every kind at c=32", ""]
    rows = []
    for db, r in results.items():
        errs = r["errors"] + r["warmup_errors"]
        v0, v1, v2 = (
            verdict("soak_errors", errs),
            verdict("soak_ratio", r["ratio"]),
            verdict("soak_rss", r["rss_growth_pct"]),
        )
        v3 = verdict("in_progress", r["in_progress"])
        rows.append(
            [
                DB_NAMES[db],
                str(r["n"]),
                f(r["rps"], ".0f"),
                f"{errs} {v0}",
                f(r["first_p99"]),
                f(r["last_p99"]),
                f(r["ratio"]),
                v1,
                f(r["rss_warm_kb"] / MIB, ".1f"),
                f(r["rss_end_kb"] / MIB, ".1f"),
                f(r["rss_growth_pct"], "+.1f", " %"),
                v2,
                f"{r['in_progress']} {v3}",
                "yes" if not r["verify_failed"] else f"**{r['verify_failed']} broken**",
            ]
        )
        summary.append([TARGETS["soak_errors"][0], DB_NAMES[db], str(errs), v0])
        summary.append([TARGETS["soak_ratio"][0], DB_NAMES[db], f(r["ratio"], ".2f", "x"), v1])
        summary.append([TARGETS["soak_rss"][0], DB_NAMES[db], f(r["rss_growth_pct"], "+.1f", " %"), v2])
        summary.append([TARGETS["in_progress"][0], f"soak, {DB_NAMES[db]}", str(r["in_progress"]), v3])
    window = next(iter(results.values()))["window"] if results else 0
    lines += table(
        [
            "db",
            "N",
            "req/s",
            "errors (= 0)",
            f"p99 first {window} ms",
            f"p99 last {window} ms",
            "ratio",
            "≤ 1.5",
            f"VmRSS after {window} MiB",
            "at end MiB",
            "growth",
            "< 10 %",
            "in_progress (= 0)",
            "chains and conversations whole",
        ],
        rows,
    )
    lines += [f"Mix, in rotation: {', '.join(meta.get('soak_mix', []))}. Per kind (p50 / p99 ms, failed):", ""]
    kinds = meta.get("soak_mix", [])
    rows = [
        [
            k,
            *(
                f"{f(r['by_kind'][k].get('p50'))} / {f(r['by_kind'][k].get('p99'))}, {r['by_kind'][k]['errors']}"
                for r in results.values()
            ),
        ]
        for k in kinds
    ]
    lines += table(["kind", *(DB_NAMES[db] for db in results)], rows)
    rows = []
    for i in range(max((len(r["blocks"]) for r in results.values()), default=0)):
        first = next(iter(results.values()))["blocks"]
        row = [f"{first[i]['from']}-{first[i]['to']}" if i < len(first) else "?"]
        for r in results.values():
            b = r["blocks"][i] if i < len(r["blocks"]) else {}
            row.append(f"{f(b.get('p50'))} / {f(b.get('p99'))}")
        rows.append(row)
    lines += [
        "p50 / p99 per window of requests (ms):",
        "",
        *table(["requests", *(DB_NAMES[db] for db in results)], rows),
    ]
    lines += statuses_and_logs(results)
    return lines


def _size(pair: list[int]) -> str:
    n, warmup = pair
    return f"N={n:,} after {warmup:,} warm-up"


def markdown(raw: dict[str, Any]) -> str:
    meta, results = raw["meta"], raw["results"]
    m, code = meta["machine"], meta["code"]
    summary: list[list[str]] = []
    sections: list[str] = []
    renderers: dict[str, Callable[[], list[str]]] = {
        "side": lambda: _side(results["side"], summary),
        "chain": lambda: chain_section(results["chain"], summary),
        "procs": lambda: _procs(results["procs"], summary),
        "soak": lambda: _soak(results["soak"], summary, meta),
    }
    for scenario in ("side", "chain", "procs", "soak"):
        if scenario in results:
            sections += renderers[scenario]()
    sizes = meta["sizes"]
    placement = (
        "servers `taskset -c 0`, the load generator `taskset -c 1`, PostgreSQL unpinned (`--pin`)"
        if meta["pin"]
        else f"nothing pinned: the upstream, the gateway(s), PostgreSQL and the load generator share the "
        f"machine's {m['nproc']} cores, so every latency and throughput here includes their contention "
        '("cores busy" is the whole machine during a measured phase)'
    )
    head = [
        "# Stored turns vs stateless: what the Responses API and stateful chat cost",
        "",
        f"- **Command:** `{meta['command']}`",
        f"- **Date:** {meta['date']} (wall time {meta.get('wall_s', 0):.0f} s)"
        + (" — **quick mode**" if meta["quick"] else ""),
        f"- **Machine:** {m['cpu_model']}, nproc {m['nproc']}, {m['mem_gib']} GiB RAM, Linux {m['kernel']}, "
        f"CPython {m['python']}",
        f"- **Versions:** SQLite {m['sqlite']}, PostgreSQL {m['postgres'] or '(not used)'}; "
        + ", ".join(f"{k} {v}" for k, v in m["packages"].items()),
        f"- **multiturn measured:** commit {code['commit']}"
        + (f" (`src/` extracted with `git archive {code['snapshot_of']}`)" if code.get("snapshot_of") else "")
        + (f", uncommitted changes under src/: {', '.join(code['uncommitted_src'])}" if code["uncommitted_src"] else "")
        + f"; sources sha256 {code['src_sha256']}"
        + (" (**the sources changed during the run**)" if meta.get("code_changed_during_run") else ""),
        f"- **Placement:** {placement}. Cores busy before the run {meta['cores_busy_before']:.2f}; load average "
        f"{meta['loadavg_before']} → {meta.get('loadavg_after', '?')}.",
        "- **Set-up:** `multiturn serve` with `qwen-plus` → the fake instant upstream (`bench/gateway/upstream.py`); "
        "a fresh store per scenario and database (a SQLite file; a fresh PostgreSQL schema); the load from a separate "
        "process (`python -m gateway.mix`: closed loop, aiohttp + uvloop, every answer validated).",
        f"- **Sizes:** side c=1 {_size(sizes['side_c1'])}, c={meta['conc']} {_size(sizes['side_c32'])}; chain "
        f"{sizes['chain'][0]} turns per window (after {sizes['chain'][1]} warm-up turns on another chain); "
        f"procs {_size(sizes['procs'])}; soak {meta['soak_n']:,} requests (no warm-up); with several gateways a "
        f"request picks its gateway by `--route {meta.get('route', 'rotate')}` (`gateway/mix.py` `ROUTES`)"
        + (
            "; procs analyzes its schema after the warm-up (`--analyze-after-warmup`)."
            if meta.get("analyze_after_warmup")
            else "; no `ANALYZE` after the warm-up: procs plans with a fresh schema's statistics "
            "(`bench/results/stored_turns.md` 5.4)."
        ),
        f"- **Upstream requests served:** {meta.get('upstream_stats')}",
        "",
        "## Targets",
        "",
        *table(["target", "where", "measured", "verdict"], summary),
    ]
    return "\n".join(head + sections)


def _events(events: dict[str, int]) -> str:
    """What the waiters waited for (``LockSampler.events``), most first."""
    return ", ".join(f"{name} {n}" for name, n in sorted(events.items(), key=lambda kv: -kv[1]))
