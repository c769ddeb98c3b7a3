"""What every section of the stored-turns report shares: the targets and their verdicts, cell
formatting, Markdown tables, and the notes under a table (stored statuses, failures, error
samples, oversized headers, tracebacks in the gateways' logs)."""

from __future__ import annotations

from typing import Any

MIB = 1024  # KiB per MiB

# key -> (what, limit, how the value compares): the targets of the brief.
TARGETS = {
    "side_p50": ("stored turn adds ≤ 3 ms p50 over stateless at c=1", 3.0, "le"),
    "side_rps": ("stored turns/s at c=32 ≥ 50 % of stateless (SQLite)", 0.5, "ge"),
    "chain_ratio": ("p50 of the last 10 turns ≤ 1.2 x the first 10", 1.2, "le"),
    "chain_rss": ("VmRSS growth over the chain ≤ 50 MB", 50.0, "le"),
    "soak_errors": ("no failed request in the soak", 0, "le"),
    "soak_ratio": ("p99 of the last window ≤ 1.5 x the first", 1.5, "le"),
    "soak_rss": ("VmRSS growth after warm-up < 10 %", 10.0, "lt"),
    "in_progress": ("no stored turn left in_progress", 0, "le"),
    "procs_errors": ("no failed request with several processes", 0, "le"),
    "procs_lost": ("every chain whole in the store", 0, "le"),
}
DB_NAMES = {"sqlite": "SQLite", "postgres": "PostgreSQL"}


def verdict(key: str, value: float | None) -> str:
    if value is None:
        return "n/a"
    _, limit, op = TARGETS[key]
    ok = {"le": value <= limit, "ge": value >= limit, "lt": value < limit}[op]
    return "PASS" if ok else "**FAIL**"


def f(value: Any, fmt: str = ".2f", suffix: str = "") -> str:
    if value is None:
        return "-"
    return f"{value:{fmt}}{suffix}"


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return [*out, ""]


def errors_cell(entry: dict[str, Any]) -> str:
    n = entry.get("errors", 0) + entry.get("warmup_errors", 0)
    return str(n) if n == 0 else f"**{n}**"


def statuses_and_logs(results: dict[str, Any]) -> list[str]:
    """The stored responses by status, failures by status, error samples and server tracebacks."""
    lines: list[str] = []
    for name, r in results.items():
        label = DB_NAMES.get(name, name)
        entries = [r] if "failures" in r else [v for v in r.values() if isinstance(v, dict) and "failures" in v]
        if "stored_statuses" in r:
            after = r.get("stored_statuses_after_stop")
            lines.append(
                f"- {label}: stored responses by status {r['stored_statuses']}"
                + (f"; after the gateway stopped {after}" if after is not None else "")
            )
        lines += [f"- {label}: **cut short**: {e['stopped']}" for e in entries if e.get("stopped")]
        failures: dict[str, int] = {}
        samples: list[str] = []
        for e in entries:
            for k, v in e["failures"].items():
                failures[k] = failures.get(k, 0) + v
            samples += e["error_samples"]
        if failures:
            lines.append(f"- {label}: failed requests by HTTP status or exception {failures}")
        lines += headers_note(label, [e["headers"] for e in entries if e.get("headers")])
        if r.get("error_kinds"):
            lines.append(f"- {label}: failed measured requests by kind {r['error_kinds']}")
        if samples:
            lines.append(f"- {label}: error samples:")
            lines += [f"  - `{sample[:300]}`" for sample in list(dict.fromkeys(samples))[:6]]
        logs = r.get("server_log") or {}
        if logs.get("tracebacks"):
            lines.append(f"- {label}: {logs['tracebacks']} traceback(s) in the gateway log(s); the first ends:")
            lines += ["", "  ```", *[f"  {line}" for line in logs["excerpt"]], "  ```"]
    return [*lines, ""] if lines else []


def headers_note(label: str, seen: list[dict[str, Any]]) -> list[str]:
    """A line when answers had headers a client with default limits refuses."""
    over_field = sum(h["fields_over_8190"] for h in seen)
    over_block = sum(h["blocks_over_16384"] for h in seen)
    if not over_field and not over_block:
        return []
    biggest = max(seen, key=lambda h: h["max_field"])
    return [
        f"- {label}: **response headers too large for default clients**: the largest field was "
        f"`{biggest['max_field_name']}` at {biggest['max_field']:,} bytes (header block up to "
        f"{max(h['max_block'] for h in seen):,}); {over_field} measured answers had a field over aiohttp's "
        f"8,190-byte limit and {over_block} a header block over h11's 16 KiB (httpx, hence the openai SDK). "
        "This benchmark's client accepts up to 1 MiB so that it can measure past that point."
    ]
