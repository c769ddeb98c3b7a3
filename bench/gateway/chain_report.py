"""Section 2 of the stored-turns report: the chain, with the whole history and with a bounded
window (``gateway/chain.py``), and each chain's stateless baseline at the same payload."""

from __future__ import annotations

from typing import Any

from .common import positions
from .stored_format import DB_NAMES, MIB, TARGETS, errors_cell, f, statuses_and_logs, table, verdict

WHY_BOUNDED = (
    "The bounded window is the measure of the stored turn's own cost: from about turn 30 on every turn "
    "sends the upstream the same few dozen items, so whatever still grows with the chain is the stored "
    "turn's work (loading the chain, planning the window, writing the turn); with the whole history the "
    "payload itself grows with every turn (turn N sends all 2N - 1 items), and the latency with it."
)


def variants(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``{db: {variant: entry}}``; a run from before the variants (one entry per db) is ``whole``."""
    return {db: ({"whole": runs} if "turns" in runs else runs) for db, runs in results.items()}


def _label(r: dict[str, Any]) -> str:
    return str(r.get("label", "whole history (128k window)"))


def _sent(r: dict[str, Any]) -> str:
    report = r.get("last_report")
    if not report or "items" not in report:
        return "-"
    return f"{len(positions(report['kept']))} of {report['items']} ({report['tokens']} tokens)"


def chain_section(results: dict[str, Any], summary: list[list[str]]) -> list[str]:
    runs = variants(results)
    lines = ["## 2. Chain growth: one chain of `responses` turns at c=1, whole history and bounded window", ""]
    rows = []
    for db, by_variant in runs.items():
        for r in by_variant.values():
            where = f"{DB_NAMES[db]}, {_label(r)}"
            v1, v2 = verdict("chain_ratio", r["ratio"]), verdict("chain_rss", r["rss_growth_mb"])
            rows.append(
                [
                    DB_NAMES[db],
                    _label(r),
                    f"{r['ok'] + r['errors']} of {r['turns']}" if r.get("stopped") else str(r["turns"]),
                    f(r["first10_p50"]),
                    f(r.get("turns31_40_p50")),
                    f(r["last10_p50"]),
                    f(r["ratio"]),
                    v1,
                    f(r.get("ratio_31_40")),
                    _sent(r),
                    f(r["rss_before_kb"] / MIB, ".1f"),
                    f(r["rss_after_kb"] / MIB, ".1f"),
                    f(r["rss_growth_mb"], "+.1f"),
                    v2,
                    f(r["cpu_ms"]),
                    errors_cell(r),
                    "yes" if not r["verify_problems"] else f"**no**: {r['verify_problems'][0]}",
                ]
            )
            summary.append([TARGETS["chain_ratio"][0], where, f(r["ratio"], ".2f", "x"), v1])
            summary.append([TARGETS["chain_rss"][0], where, f(r["rss_growth_mb"], "+.1f", " MB"), v2])
    lines += table(
        [
            "db",
            "window",
            "turns",
            "p50 turns 1-10 ms",
            "p50 turns 31-40 ms",
            "p50 last 10 ms",
            "last 10 ÷ 1-10",
            "≤ 1.2",
            "last 10 ÷ 31-40",
            "last turn sent: items kept (tokens)",
            "VmRSS before MiB",
            "after MiB",
            "growth MB",
            "≤ 50 MB",
            "gateway CPU ms/turn",
            "errors",
            "chain whole",
        ],
        rows,
    )
    lines += [
        f'{WHY_BOUNDED} The bounded variant\'s alias is `qwen-plus` with `"context_window": 2048` (a prompt '
        "budget of 1,024 tokens, the other half reserved for the answer); the whole-history variant uses the "
        "upstream backend's default window of 131,072 tokens. Each runs on a fresh store and gateway.",
        "",
    ]
    lines += _blocks(runs)
    lines += _baseline(runs)
    lines += _upstream_alone(runs)
    lines += statuses_and_logs(
        {f"{DB_NAMES[db]}, {_label(r)}": r for db, by_variant in runs.items() for r in by_variant.values()}
    )
    return lines


def _blocks(runs: dict[str, dict[str, Any]]) -> list[str]:
    columns = [(db, r) for db, by_variant in runs.items() for r in by_variant.values()]
    if not columns:
        return []
    first = columns[0][1]
    lines = [f"p50 (p99) per block of {first['block']} turns, ms, and the gateway's VmRSS after the block:", ""]
    rows = []
    for i, block in enumerate(first["blocks"]):
        row = [f"{block['from']}-{block['to']}"]
        for _, r in columns:
            b = r["blocks"][i] if i < len(r["blocks"]) else {}
            rss = f"{b['rss_kb'] / MIB:.0f} MiB" if b.get("rss_kb") else "-"
            row.append(f"{f(b.get('p50'))} ({f(b.get('p99'))}), {rss}")
        rows.append(row)
    return [*lines, *table(["turns", *(f"{DB_NAMES[db]}, {_label(r)}" for db, r in columns)], rows)]


def _baseline(runs: dict[str, dict[str, Any]]) -> list[str]:
    measured = [(db, r) for db, by in runs.items() for r in by.values() if r.get("baseline")]
    if not measured:
        return []
    rows = []
    for db, r in measured:
        b = r["baseline"]
        rows.append(
            [
                DB_NAMES[db],
                _label(r),
                f"{b['messages']} ({b['body_bytes']:,} B, {b['tokens']} tokens)",
                f(b["stateless"].get("p50")),
                f(b["stored"].get("p50")),
                f(b.get("overhead_ms"), "+.2f"),
                f(b.get("chain_p50")),
                f(b.get("chain_overhead_ms"), "+.2f"),
                str(len(b["errors"])) if not b["errors"] else f"**{len(b['errors'])}**: {b['errors'][0][:120]}",
            ]
        )
    n = measured[0][1]["baseline"]["n"]
    lines = [
        "The stored turn's overhead at the same payload: after each chain, "
        f"{n} stateless `/v1/chat/completions` whose `messages` are exactly the items the chain's last turn "
        "sent (its `context_report.kept` positions in its `input_items`), interleaved at c=1 on one connection "
        f"with {n} stored `responses` turns that continue the chain (the order alternating per pair, after "
        f"{measured[0][1]['baseline']['warmup']} warm-up pairs). With the whole history the payload is "
        "the whole chain: this is the stored turn's own cost at turn 1,000, to set beside the side "
        "scenario's c=1 difference (stored - stateless, a few items sent):",
        "",
    ]
    lines += table(
        [
            "db",
            "window",
            "messages sent",
            "stateless p50 ms",
            "stored p50 ms (interleaved)",
            "stored - stateless ms",
            f"chain's last {n} turns p50 ms",
            "chain - stateless ms",
            "errors",
        ],
        rows,
    )
    return lines


def _upstream_alone(runs: dict[str, dict[str, Any]]) -> list[str]:
    measured = [
        (db, r) for db, by in runs.items() for r in by.values() if (r.get("baseline") or {}).get("upstream_alone")
    ]
    if not measured:
        return []
    rows = []
    for db, r in measured:
        a = r["baseline"]["upstream_alone"]
        early, late = a["early"].get("p50"), a["late"].get("p50")
        growth = late - early if early is not None and late is not None else None
        allowed = 0.2 * r["first10_p50"] if r.get("first10_p50") else None
        chain_growth = r["last10_p50"] - r["first10_p50"] if r.get("first10_p50") and r.get("last10_p50") else None
        rows.append(
            [
                DB_NAMES[db],
                _label(r),
                f"{f(early)} ({a['early_messages']})",
                f"{f(late)} ({a['late_messages']})",
                f(growth, "+.2f"),
                f(chain_growth, "+.2f"),
                f(allowed, ".2f"),
                f(growth / allowed, ".0%") if growth is not None and allowed else "-",
                str(len(a["errors"])) if not a["errors"] else f"**{len(a['errors'])}**: {a['errors'][0][:120]}",
            ]
        )
    n = measured[0][1]["baseline"]["n"]
    lines = [
        "",
        f"The upstream alone: {n} pairs of chat completions sent straight to the fake upstream (no gateway), "
        "interleaved, after the baseline: the messages the chain's 10th turn sent, and those its last turn "
        "sent. The difference is the upstream's own work on the larger body (receiving and parsing it), "
        "which the chain's latency includes and no gateway can save; the last columns set it against the "
        "growth the 1.2x target allows (0.2 x the chain's p50 of turns 1-10):",
        "",
    ]
    lines += table(
        [
            "db",
            "window",
            "turn 10's messages: p50 ms (messages)",
            "last turn's messages: p50 ms (messages)",
            "upstream growth ms",
            "chain growth ms (last 10 - turns 1-10)",
            "growth 1.2x allows ms",
            "upstream growth ÷ allowed",
            "errors",
        ],
        rows,
    )
    return lines
