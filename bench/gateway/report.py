"""From the runs to medians, paired differences and ratios; the Rich tables and the Markdown report."""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from typing import Any

from .common import UPSTREAM_CHUNKS

Stat = dict[str, float] | None
BASE, REF, PEER = "D", "R-aiohttp", "L"
MULTITURN = ("M", "MN")
MIB = 1024  # KiB per MiB


def stat(values: list[float | None]) -> Stat:
    vals = [v for v in values if v is not None and not math.isnan(v)]
    if not vals:
        return None
    return {"med": statistics.median(vals), "min": min(vals), "max": max(vals), "n": len(vals)}


def _per_round(run: dict[str, Any]) -> dict[str, float | None]:
    res, relay = run["result"], run["relay"]
    lat, ttft = res.get("latency_ms") or {}, res.get("ttft_ms") or {}
    m: dict[str, float | None] = {
        "rps": res["throughput"],
        "p50": lat.get("p50"),
        "p90": lat.get("p90"),
        "p99": lat.get("p99"),
        "ttft_p50": ttft.get("p50"),
        "ttft_p99": ttft.get("p99"),
        "cpu": res["cpu_ms_per_req"].get(relay),
        "u_cpu": res["cpu_ms_per_req"].get("U"),
        "gen": res["generator_cpu_share"],
        "other": res["other_cores"],
        "errors": float(res["errors"] + res["warmup_errors"] + (0 if res["complete"] else 1)),
        "ok": float(res["ok"]),
    }
    m["tail"] = m["p99"] / m["p50"] if m["p50"] and m["p99"] else None
    if m["ttft_p50"] and m["ttft_p99"]:
        m["ttft_tail"] = m["ttft_p99"] / m["ttft_p50"]
    if run["stream"] and m["cpu"] is not None and relay != "U":
        m["cpu_chunk"] = m["cpu"] / UPSTREAM_CHUNKS
    return m


def summarize(runs: list[dict[str, Any]], configs: list[str], tests: list[str]) -> dict[str, Any]:
    rounds: dict[tuple[str, str], dict[int, dict[str, float | None]]] = defaultdict(dict)
    for run in runs:
        rounds[(run["test"], run["cfg"])][run["round"]] = _per_round(run)
    out: dict[str, Any] = {}
    for test in tests:
        out[test] = {}
        for cfg in configs:
            mine = rounds.get((test, cfg), {})
            series: dict[str, list[float | None]] = defaultdict(list)
            for r, m in mine.items():
                for key, value in m.items():
                    series[key].append(value)
                base = rounds.get((test, BASE), {}).get(r)
                if base is not None and cfg != BASE:
                    for key in ("p50", "p99", "ttft_p50", "ttft_p99"):
                        if m[key] is not None and base[key] is not None:
                            series[f"add_{key}"].append(m[key] - base[key])  # type: ignore[operator]
                for name, other in (("pct_D", BASE), ("pct_R", REF), ("x_L", PEER)):
                    peer = rounds.get((test, other), {}).get(r)
                    if peer is not None and peer["rps"]:
                        factor = 1.0 if name == "x_L" else 100.0
                        series[name].append(factor * m["rps"] / peer["rps"])  # type: ignore[operator]
            out[test][cfg] = {key: stat(values) for key, values in series.items()}
            out[test][cfg]["errors_total"] = sum(v or 0 for v in series.get("errors", []))
    return out


def _med(s: dict[str, Any], test: str, cfg: str, key: str) -> float | None:
    entry = s.get(test, {}).get(cfg, {}).get(key)
    return entry["med"] if entry else None


def marginal_chunk_cpu(s: dict[str, Any], cfg: str, conc: str) -> float | None:
    """(CPU per stream - CPU per non-streamed request) / 20: what one more chunk costs."""
    st, ns = _med(s, f"st_{conc}", cfg, "cpu"), _med(s, f"ns_{conc}", cfg, "cpu")
    return None if st is None or ns is None else (st - ns) / UPSTREAM_CHUNKS


def targets(s: dict[str, Any], servers: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The project's targets, for the OpenAI route (M) and the DashScope-native route (MN)."""
    rows: list[dict[str, Any]] = []

    def add(cfg: str, what: str, value: float | None, limit: float, kind: str, unit: str = "") -> None:
        ok = None if value is None else (value <= limit if kind == "max" else value >= limit)
        rows.append({"cfg": cfg, "target": what, "value": value, "limit": limit, "kind": kind, "unit": unit, "ok": ok})

    for cfg in MULTITURN:
        if cfg not in s.get("ns_c1", {}) and cfg not in s.get("st_c1", {}):
            continue
        add(cfg, "added p50 latency, non-stream, c=1", _med(s, "ns_c1", cfg, "add_p50"), 1.0, "max", " ms")
        add(cfg, "added TTFT p50, stream, c=1", _med(s, "st_c1", cfg, "add_ttft_p50"), 1.0, "max", " ms")
        for test, label in (("ns_c64", "non-stream"), ("st_c64", "stream")):
            add(cfg, f"throughput vs LiteLLM, {label}, c=64", _med(s, test, cfg, "x_L"), 10.0, "min", "x")
            add(cfg, f"throughput vs R-aiohttp, {label}, c=64", _med(s, test, cfg, "pct_R"), 25.0, "min", " %")
        add(cfg, "p99/p50 latency, non-stream, c=64", _med(s, "ns_c64", cfg, "tail"), 3.0, "max", "x")
        add(cfg, "p99/p50 TTFT, stream, c=64", _med(s, "st_c64", cfg, "ttft_tail"), 3.0, "max", "x")
        add(cfg, "p99/p50 total stream time, c=64", _med(s, "st_c64", cfg, "tail"), 3.0, "max", "x")
        for conc in ("c1", "c64"):
            value = _med(s, f"st_{conc}", cfg, "cpu_chunk")
            add(cfg, f"CPU per relayed chunk, stream, {conc.replace('c', 'c=')}", value, 0.05, "max", " ms")
    facts = servers.get("M")
    if facts:
        for when in ("ready", "after_first", "after_matrix"):
            kib = (facts.get(when) or {}).get("VmRSS")
            value = None if kib is None else kib * 1024 / 1e6
            add("M", f"idle RSS ({when.replace('_', ' ')})", value, 100.0, "max", " MB")
    return rows


# --- formatting ---------------------------------------------------------------------------------


def num(x: float | None, digits: int = 2) -> str:
    if x is None or math.isnan(x):
        return "-"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    if abs(x) >= 100:
        return f"{x:.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.{digits}f}"


def cell(entry: Stat, digits: int = 2, spread: bool = True) -> str:
    if not entry:
        return "-"
    text = num(entry["med"], digits)
    if spread and entry["n"] > 1:
        text += f" [{num(entry['min'], digits)}-{num(entry['max'], digits)}]"
    return text


def verdict(ok: bool | None) -> str:
    return {True: "PASS", False: "FAIL", None: "n/a"}[ok]


TABLES: list[tuple[str, list[tuple[str, str, str, int]]]] = [
    (
        "Concurrency 1: added latency and TTFT (paired per round against D), relay CPU",
        [
            ("ns p50 ms", "ns_c1", "p50", 3),
            ("ns p99 ms", "ns_c1", "p99", 3),
            ("added p50", "ns_c1", "add_p50", 3),
            ("added p99", "ns_c1", "add_p99", 3),
            ("CPU ms/req", "ns_c1", "cpu", 3),
            ("TTFT p50 ms", "st_c1", "ttft_p50", 3),
            ("added TTFT p50", "st_c1", "add_ttft_p50", 3),
            ("added TTFT p99", "st_c1", "add_ttft_p99", 3),
            ("total p50 ms", "st_c1", "p50", 3),
            ("added total p50", "st_c1", "add_p50", 3),
            ("CPU ms/stream", "st_c1", "cpu", 3),
            ("CPU ms/chunk", "st_c1", "cpu_chunk", 4),
        ],
    ),
    (
        "Concurrency 64, non-streaming",
        [
            ("req/s", "ns_c64", "rps", 0),
            ("% of D", "ns_c64", "pct_D", 1),
            ("% of R-aiohttp", "ns_c64", "pct_R", 1),
            ("x L", "ns_c64", "x_L", 1),
            ("p50 ms", "ns_c64", "p50", 2),
            ("p99 ms", "ns_c64", "p99", 2),
            ("p99/p50", "ns_c64", "tail", 2),
            ("CPU ms/req", "ns_c64", "cpu", 3),
            ("U CPU ms/req", "ns_c64", "u_cpu", 3),
            ("generator core", "ns_c64", "gen", 2),
        ],
    ),
    (
        "Concurrency 64, streaming (20 upstream chunks per stream)",
        [
            ("streams/s", "st_c64", "rps", 0),
            ("% of D", "st_c64", "pct_D", 1),
            ("% of R-aiohttp", "st_c64", "pct_R", 1),
            ("x L", "st_c64", "x_L", 1),
            ("TTFT p50 ms", "st_c64", "ttft_p50", 2),
            ("TTFT p99 ms", "st_c64", "ttft_p99", 2),
            ("TTFT p99/p50", "st_c64", "ttft_tail", 2),
            ("total p99/p50", "st_c64", "tail", 2),
            ("CPU ms/stream", "st_c64", "cpu", 3),
            ("CPU ms/chunk", "st_c64", "cpu_chunk", 4),
            ("generator core", "st_c64", "gen", 2),
        ],
    ),
]

RATIO_COLUMNS: list[tuple[str, str, str, int]] = [
    ("+p50 ms c1", "ns_c1", "add_p50", 3),
    ("+TTFT ms c1", "st_c1", "add_ttft_p50", 3),
    ("req/s c64", "ns_c64", "rps", 0),
    ("%D", "ns_c64", "pct_D", 1),
    ("%Ra", "ns_c64", "pct_R", 1),
    ("xL", "ns_c64", "x_L", 1),
    ("p99/p50", "ns_c64", "tail", 2),
    ("streams/s c64", "st_c64", "rps", 0),
    ("%D", "st_c64", "pct_D", 1),
    ("%Ra", "st_c64", "pct_R", 1),
    ("xL", "st_c64", "x_L", 1),
    ("TTFT p99/p50", "st_c64", "ttft_tail", 2),
    ("CPU ms/req c64", "ns_c64", "cpu", 3),
    ("CPU ms/chunk c64", "st_c64", "cpu_chunk", 4),
]


def rss_mib(facts: dict[str, Any], when: str) -> str:
    kib = (facts.get(when) or {}).get("VmRSS")
    return "-" if kib is None else f"{kib / MIB:.1f}"


def rich_tables(s: dict[str, Any], servers: dict[str, dict[str, Any]], configs: list[str], rows: list[dict]) -> list:
    from rich.table import Table

    ratios = Table(title="Gateway overhead: medians over rounds (ratios paired per round)", show_lines=False)
    ratios.add_column("cfg", style="bold")
    for header, *_ in RATIO_COLUMNS:
        ratios.add_column(header, justify="right")
    ratios.add_column("RSS MiB ready→end", justify="right")
    for cfg in configs:
        facts = servers.get(_server_of(cfg), {})
        values = [num(_med(s, test, cfg, key), digits) for _, test, key, digits in RATIO_COLUMNS]
        ratios.add_row(cfg, *values, f"{rss_mib(facts, 'ready')}→{rss_mib(facts, 'after_matrix')}")
    verdicts = Table(title="Targets (multiturn serve; M = OpenAI route, MN = DashScope-native route)")
    for header in ("cfg", "target", "measured", "limit", "result"):
        verdicts.add_column(header)
    for row in rows:
        sign = "≤" if row["kind"] == "max" else "≥"
        style = {True: "green", False: "red", None: "yellow"}[row["ok"]]
        verdicts.add_row(
            row["cfg"],
            row["target"],
            num(row["value"], 3) + row["unit"],
            f"{sign} {num(row['limit'], 2)}{row['unit']}",
            f"[{style}]{verdict(row['ok'])}[/]",
        )
    return [ratios, verdicts]


def _server_of(cfg: str) -> str:
    return {"D": "U", "MN": "M"}.get(cfg, cfg)


def markdown_tables(s: dict[str, Any], servers: dict[str, dict[str, Any]], configs: list[str], rows: list[dict]) -> str:
    out: list[str] = []
    for title, columns in TABLES:
        out += [f"### {title}", "", "| cfg | " + " | ".join(c[0] for c in columns) + " |"]
        out.append("|---" * (len(columns) + 1) + "|")
        for cfg in configs:
            entry = [cell((s.get(test, {}).get(cfg) or {}).get(key), digits) for _, test, key, digits in columns]
            out.append(f"| {cfg} | " + " | ".join(entry) + " |")
        out.append("")
    out += ["### Marginal CPU per chunk: (CPU per stream - CPU per non-streamed request) / 20", ""]
    out += ["| cfg | c=1 ms/chunk | c=64 ms/chunk |", "|---|---|---|"]
    for cfg in configs:
        if cfg != BASE:
            c1, c64 = marginal_chunk_cpu(s, cfg, "c1"), marginal_chunk_cpu(s, cfg, "c64")
            out.append(f"| {cfg} | {num(c1, 4)} | {num(c64, 4)} |")
    out += ["", "### Servers: start-up and memory", ""]
    out += [
        "| server | startup to ready s | first request ms | RSS ready MiB | after 1st request | after matrix "
        "| peak (VmHWM) | threads ready → end | llama lib mapped |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, facts in servers.items():
        ready, end = facts.get("ready") or {}, facts.get("after_matrix") or {}
        threads = f"{ready.get('Threads', '-')} → {end.get('Threads', '-')}"
        hwm = (facts.get("after_matrix") or {}).get("VmHWM")
        first = facts.get("first_request_ms")
        llama = facts.get("llama_mapped")
        out.append(
            f"| {name} | {num(facts.get('startup_s'), 2)} | {num(first, 1)} | {rss_mib(facts, 'ready')} | "
            f"{rss_mib(facts, 'after_first')} | {rss_mib(facts, 'after_matrix')} | "
            f"{'-' if hwm is None else f'{hwm / MIB:.1f}'} | {threads} | "
            f"{'-' if llama is None else ('yes' if llama else 'no')} |"
        )
    out += ["", "### Targets", "", "| cfg | target | measured | limit | result |", "|---|---|---|---|---|"]
    for row in rows:
        sign = "≤" if row["kind"] == "max" else "≥"
        out.append(
            f"| {row['cfg']} | {row['target']} | {num(row['value'], 3)}{row['unit']} | "
            f"{sign} {num(row['limit'], 2)}{row['unit']} | **{verdict(row['ok'])}** |"
        )
    return "\n".join(out) + "\n"
