"""Gateway overhead: ``multiturn serve`` vs a reference relay vs LiteLLM, in front of one fake upstream.

The method of ``shared/reference/gateway-anchors.md``: a fake upstream U (raw ASGI on uvicorn +
uvloop + httptools, a pre-rendered ~360-byte completion or a 20-chunk stream) and every server
under test pinned to CPU 0; the load generator (a closed loop of C workers over keep-alive
connections, every response validated) in a fresh process pinned to CPU 1 for each run;
configurations interleaved round by round; medians over rounds, with [min-max].

Configurations:

- ``D``: the load generator straight to U.
- ``R-httpx``, ``R-httpx2``, ``R-aiohttp``: the reference relay (``gateway/relay.py``, Starlette,
  no parsing of the answer) with each candidate upstream client.
- ``M``: ``multiturn serve``, OpenAI route ``/v1/chat/completions``, an upstream alias to U.
- ``MN``: the same process, DashScope-native route, in front of the OpenAI-compatible U (both
  translators).
- ``L``: LiteLLM proxy 1.108.7 in its own venv (created under ~/.cache/multiturn/bench-venvs).

Tests: non-stream and stream at concurrency 1 and 64. CPU per request is the server's
utime+stime from ``/proc/<pid>/stat`` over the measured phase, divided by the requests.

    .venv/bin/python bench/gateway_overhead.py [--rounds 3] [--quick] [--configs D,M,...] [--rt 10]
        [--json bench/results/gateway_overhead.json] [--report bench/results/gateway_overhead.md]

On a machine where other work runs, ``--rt 10`` starts the servers and every generator run
SCHED_FIFO so that the other work cannot delay them (``bench/results/gateway_overhead.md`` says why).
``--from-json FILE --report FILE`` renders a saved run again.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import secrets
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import orjson
from gateway import report
from gateway.common import DASHSCOPE_PATH, OPENAI_PATH, machine_busy, openai_body
from gateway.servers import (
    HERE,
    LITELLM_VENV,
    ROOT,
    Server,
    ensure_litellm,
    litellm_server,
    maps_mention,
    multiturn_server,
    proc_status,
    relay_server,
    request,
    upstream_server,
    venv_version,
    wait_idle,
)
from rich.console import Console

CONFIGS = ["D", "R-httpx", "R-httpx2", "R-aiohttp", "M", "MN", "L"]
TESTS = {"ns_c1": (0, 1), "ns_c64": (0, 64), "st_c1": (1, 1), "st_c64": (1, 64)}  # stream, concurrency
SIZES = {"ns_c1": (500, 50), "ns_c64": (3000, 320), "st_c1": (300, 30), "st_c64": (2000, 256)}  # N, warm-up
QUICK_SIZES = {"ns_c1": (100, 10), "ns_c64": (640, 64), "st_c1": (60, 6), "st_c64": (384, 64)}
DEADLINE = 170.0  # per run (warm-up + measured); the subprocess gets 30 s more
VENV_PACKAGES = ["multiturn", "uvicorn", "uvloop", "httptools", "starlette", "aiohttp", "httpx", "httpcore"]
VENV_PACKAGES += ["httpx2", "httpcore2", "orjson", "anyio", "h11"]
LITELLM_PACKAGES = [
    "litellm",
    "fastapi",
    "starlette",
    "uvicorn",
    "uvloop",
    "httptools",
    "aiohttp",
    "openai",
    "pydantic",
]

console = Console(stderr=True, width=None if sys.stderr.isatty() else 150)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="1 round, small N: a smoke run for development")
    p.add_argument("--configs", default=",".join(CONFIGS), help=f"comma-separated subset of {','.join(CONFIGS)}")
    p.add_argument("--tests", default=",".join(TESTS), help=f"comma-separated subset of {','.join(TESTS)}")
    p.add_argument("--scale", type=float, default=1.0, help="multiply every N and warm-up by this")
    p.add_argument("--json", type=Path, help="write the raw results (every run) as JSON here")
    p.add_argument("--report", type=Path, help="write the Markdown report here")
    p.add_argument("--quiet-wait", type=float, default=0.0, help="wait up to this many s for the machine to be idle")
    p.add_argument("--nice", type=int, default=0, help="niceness of the servers and the generator")
    p.add_argument(
        "--rt", type=int, default=0, help="run the servers and the generator SCHED_FIFO at this priority (busy machine)"
    )
    p.add_argument("--from-json", type=Path, help="render the tables and the report of a saved --json run")
    p.add_argument("--keep-logs", action="store_true", help="keep the servers' logs (printed path)")
    args = p.parse_args()
    args.configs = [c for c in args.configs.split(",") if c]
    args.tests = [t for t in args.tests.split(",") if t]
    unknown = set(args.configs) - set(CONFIGS) | set(args.tests) - set(TESTS)
    if unknown:
        p.error(f"unknown configuration or test: {', '.join(sorted(unknown))}")
    if args.quick:
        args.rounds = 1
    return args


def other_load(seconds: float = 1.0) -> float:
    """Cores busy over ``seconds`` (this process sleeps meanwhile)."""
    before = machine_busy()
    time.sleep(seconds)
    return (machine_busy() - before) / seconds


def wait_quiet(budget: float) -> float:
    load = other_load()
    started = time.perf_counter()
    while load > 0.3 and time.perf_counter() - started < budget:
        console.log(f"the machine is busy ({load:.2f} cores in use); waiting")
        time.sleep(10)
        load = other_load()
    return load


def machine_facts() -> dict[str, Any]:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")), "")
    mem = next(
        line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")
    )
    debian = Path("/etc/debian_version")
    facts = {
        "cpu_model": model,
        "cpus": os.cpu_count(),
        "mem_gib": round(int(mem) / 1024**2, 1),
        "kernel": platform.release(),
        "debian": debian.read_text().strip() if debian.exists() else None,
        "python": platform.python_version(),
        "venv": {name: _version(name) for name in VENV_PACKAGES},
    }
    if (LITELLM_VENV / "bin/python").exists():
        facts["litellm_venv"] = {n: venv_version(LITELLM_VENV / "bin/python", n) for n in LITELLM_PACKAGES}
    return facts


def code_facts() -> dict[str, Any]:
    """Which multiturn was measured: the commit, uncommitted changes under src/, a hash of the sources."""
    git = ["git", "-C", str(ROOT)]
    head = subprocess.run([*git, "log", "-1", "--format=%h %ci"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run([*git, "status", "--short", "--", "src"], capture_output=True, text=True).stdout.split("\n")
    digest = hashlib.sha256()
    for path in sorted((ROOT / "src").rglob("*.py")):
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    changed = [line for line in dirty if line.strip()]
    return {"commit": head, "uncommitted_src": changed, "src_sha256": digest.hexdigest()[:16]}


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def target_of(cfg: str, servers: dict[str, Server]) -> tuple[int, str, str, str]:
    """(port, path, protocol, the server whose CPU is the relay's) of a configuration."""
    if cfg == "D":
        return servers["U"].port, OPENAI_PATH, "openai", "U"
    if cfg == "MN":
        return servers["M"].port, DASHSCOPE_PATH, "dashscope", "M"
    return servers[cfg].port, OPENAI_PATH, "openai", cfg


def launcher(args: argparse.Namespace) -> list[str]:
    """What every server and generator run is started behind: a real-time class or a niceness."""
    if args.rt:
        return ["chrt", "-f", str(args.rt)]
    return ["nice", "-n", str(args.nice)] if args.nice else []


def start_servers(configs: list[str], workdir: Path, key: str, prefix: list[str]) -> dict[str, Server]:
    servers: dict[str, Server] = {}
    up = upstream_server()
    up.start(workdir, prefix)
    servers["U"] = up
    wanted: list[Server] = []
    for client in ("httpx", "httpx2", "aiohttp"):
        if f"R-{client}" in configs:
            wanted.append(relay_server(client, up.port))
    if "M" in configs or "MN" in configs:
        wanted.append(multiturn_server(up.port, workdir / "multiturn.db"))
    if "L" in configs:
        wanted.append(litellm_server(up.port, workdir, key))
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
    for server in wanted:
        server.start(workdir, prefix)
        servers[server.name] = server
        if server.name == "M":
            server.facts["llama_mapped_at_ready"] = maps_mention(server.pid, "llama")
        status, body, seconds = request(server.port, "POST", OPENAI_PATH, openai_body(False), headers)
        if status != 200:
            raise RuntimeError(f"{server.name}: first request failed: HTTP {status}: {body[:300]!r}")
        server.facts["first_request_ms"] = seconds * 1000
        server.facts["after_first"] = proc_status(server.pid)
        console.log(
            f"{server.name} ready in {server.facts['startup_s']:.2f} s on :{server.port} (pid {server.pid}), "
            f"first request {seconds * 1000:.1f} ms, RSS {server.facts['ready']['VmRSS'] / 1024:.1f} MiB"
        )
    return servers


def run_one(cfg: str, test: str, sizes: tuple[int, int], servers: dict[str, Server], args: argparse.Namespace) -> dict:
    port, path, proto, relay = target_of(cfg, servers)
    stream, conc = TESTS[test]
    pids = ",".join(f"{name}={server.pid}" for name, server in servers.items())
    n, warmup = sizes
    cmd = [*launcher(args), "taskset", "-c", "1", sys.executable, str(HERE / "loadgen.py")]
    cmd += ["--url", f"http://127.0.0.1:{port}{path}", "--proto", proto, "--stream", str(stream), "--conc", str(conc)]
    cmd += ["--n", str(n), "--warmup", str(warmup), "--key", args.key, "--pids", pids, "--deadline", str(DEADLINE)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=DEADLINE + 30, cwd=HERE)
    if done.returncode != 0:
        raise RuntimeError(f"load generator failed for {cfg} {test}:\n{done.stderr[-3000:]}")
    return {
        "cfg": cfg,
        "test": test,
        "stream": stream,
        "conc": conc,
        "relay": relay,
        "result": orjson.loads(done.stdout),
    }


def sizes_of(args: argparse.Namespace, test: str) -> tuple[int, int]:
    """(N, warm-up) of a test."""
    n, warmup = (QUICK_SIZES if args.quick else SIZES)[test]
    return max(1, round(n * args.scale)), max(1, round(warmup * args.scale))


def run_errors(result: dict[str, Any]) -> int:
    """Failed requests, measured or warm-up, plus one for a run cut short by its deadline."""
    return int(result["errors"] + result["warmup_errors"] + (not result["complete"]))


def run_matrix(args: argparse.Namespace, servers: dict[str, Server]) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = []
    everyone = list(servers.values())
    for rnd in range(1, args.rounds + 1):
        for test in args.tests:
            for cfg in args.configs:
                run = run_one(cfg, test, sizes_of(args, test), servers, args)
                run["round"] = rnd
                run["idle_wait_s"] = wait_idle(everyone)
                runs.append(run)
                res = run["result"]
                lat = res.get("ttft_ms" if run["stream"] else "latency_ms") or {}
                flag = "" if res["errors"] == 0 and res["complete"] else f"  [red]{res['errors']} errors[/]"
                console.log(
                    f"round {rnd} {test:6} {cfg:9} {res['throughput']:9.0f}/s  "
                    f"{'TTFT' if run['stream'] else 'lat '} p50 {lat.get('p50', float('nan')):8.3f} ms  "
                    f"p99 {lat.get('p99', float('nan')):8.3f} ms  "
                    f"CPU {res['cpu_ms_per_req'][run['relay']]:.3f} ms/req  "
                    f"other {res['other_cores']:.2f} cores{flag}"
                )
                for sample in res["error_samples"][:2]:
                    console.log(f"  {sample}")
    return runs


def stop_all(servers: dict[str, Server]) -> dict[str, int | None]:
    return {name: server.stop() for name, server in reversed(list(servers.items()))}


def markdown(meta: dict[str, Any], body: str) -> str:
    m, v, c, changed = meta["machine"], meta["machine"]["venv"], meta["code"], meta["code_changed_during_run"]
    lite = meta["machine"].get("litellm_venv") or {}
    sizes = ", ".join(f"{t} N={n} after {w} warm-up" for t, (n, w) in meta["sizes"].items())
    noise = meta["noise"]
    lines = [
        "# Gateway overhead: multiturn serve vs a reference relay vs LiteLLM",
        "",
        f"- **Command:** `{meta['command']}`",
        f"- **Date:** {meta['date']} (matrix wall time {meta['matrix_s']:.0f} s, {meta['rounds']} rounds)",
        f"- **Machine:** {m['cpu_model']}, {m['cpus']} vCPU, {m['mem_gib']} GiB RAM, Linux {m['kernel']}, "
        f"Debian {m['debian']}, CPython {m['python']}",
        f"- **multiturn measured:** commit {c['commit']}"
        + (f", with uncommitted changes under src/: {', '.join(c['uncommitted_src'])}" if c["uncommitted_src"] else "")
        + f"; sources sha256 {c['src_sha256']}"
        + (" (**the sources changed during the run**; the servers ran the code loaded at start)" if changed else ""),
        "- **Bench venv:** " + ", ".join(f"{k} {val}" for k, val in v.items() if val),
        "- **LiteLLM venv:** " + ", ".join(f"{k} {val or 'absent'}" for k, val in lite.items()),
        "- **Placement:** U and every server `taskset -c 0`; each load-generator run a fresh process on "
        f"`taskset -c 1`; all started behind `{shlex.join(meta['launcher']) or '(nothing)'}`; all servers up "
        "for the whole matrix.",
        f"- **Sizes:** {sizes}. Order: `for round: for test: for cfg` in {', '.join(meta['configs'])}.",
        f"- **Validation:** {meta['requests_ok']:,} measured requests validated, "
        f"{meta['errors']} errors (incl. warm-up and incomplete runs).",
        f"- **Other load on the machine** (cores busy outside U, the servers and the generator, per run): "
        f"median {noise['other_med']:.2f}, max {noise['other_max']:.2f}; before the matrix {noise['before']:.2f}; "
        f"load average before → after: {noise['loadavg_before']} → {noise['loadavg_after']}.",
        f"- **U's counters after the matrix:** {meta['upstream_stats']}",
        "",
        "Added latency/TTFT: the median over rounds of (config - D) in the same round. % of D, % of "
        "R-aiohttp and x L: the median of per-round ratios. CPU: the server's utime+stime over the "
        "measured phase / requests (for D: U's). CPU per chunk: CPU per stream / 20 upstream chunks. "
        "[min-max] over rounds.",
        "",
    ]
    return "\n".join(lines) + "\n## Results\n\n" + body


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Start everything, run the matrix, stop everything; the raw results (meta, servers, runs)."""
    os.sched_setaffinity(0, {1})  # the orchestrator stays off the servers' core
    key = args.key = "sk-bench-" + secrets.token_hex(12)
    if "L" in args.configs:
        ensure_litellm(console.log)
    before = wait_quiet(args.quiet_wait)
    code = code_facts()  # the servers load the sources as they are now
    loadavg_before = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    workdir = Path(tempfile.mkdtemp(prefix="gateway-bench-"))
    servers: dict[str, Server] = {}
    ok = False
    try:
        servers = start_servers(args.configs, workdir, key, launcher(args))
        wait_idle(list(servers.values()))
        matrix_started = time.perf_counter()
        runs = run_matrix(args, servers)
        matrix_s = time.perf_counter() - matrix_started
        time.sleep(1.0)
        wait_idle(list(servers.values()))
        for server in servers.values():
            server.facts["after_matrix"] = proc_status(server.pid)
        if "M" in servers:
            servers["M"].facts["llama_mapped"] = maps_mention(servers["M"].pid, "llama")
        _, stats, _ = request(servers["U"].port, "GET", "/stats")
        ok = True
    finally:
        exits = stop_all(servers)
        console.log(f"stopped (SIGTERM by pid): {exits}")
        if ok and not args.keep_logs:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            console.log(f"logs kept in {workdir}")
    others = [r["result"]["other_cores"] for r in runs]
    meta = {
        "command": shlex.join([".venv/bin/python", "bench/gateway_overhead.py", *sys.argv[1:]]),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "rounds": args.rounds,
        "launcher": launcher(args),
        "configs": args.configs,
        "tests": args.tests,
        "sizes": {t: sizes_of(args, t) for t in args.tests},
        "machine": machine_facts(),
        "code": code,
        "code_changed_during_run": code_facts()["src_sha256"] != code["src_sha256"],
        "matrix_s": matrix_s,
        "requests_ok": sum(r["result"]["ok"] for r in runs),
        "errors": sum(run_errors(r["result"]) for r in runs),
        "noise": {
            "before": before,
            "other_med": statistics.median(others),
            "other_max": max(others),
            "loadavg_before": loadavg_before,
            "loadavg_after": " / ".join(f"{x:.2f}" for x in os.getloadavg()),
        },
        "upstream_stats": stats.decode(),
        "exit_codes": exits,
    }
    return {"meta": meta, "servers": {name: server.facts for name, server in servers.items()}, "runs": runs}


def main() -> int:
    args = parse_args()
    raw = orjson.loads(args.from_json.read_bytes()) if args.from_json else measure(args)
    meta, facts, runs = raw["meta"], raw["servers"], raw["runs"]
    configs, tests = meta["configs"], meta["tests"]
    summary = report.summarize(runs, configs, tests)
    verdicts = report.targets(summary, facts)
    out = Console(width=None if sys.stdout.isatty() else 200)
    for table in report.rich_tables(summary, facts, configs, verdicts):
        out.print(table)
    if args.json and not args.from_json:
        marginal = {cfg: {c: report.marginal_chunk_cpu(summary, cfg, c) for c in ("c1", "c64")} for cfg in configs}
        raw |= {"summary": summary, "marginal_chunk_cpu_ms": marginal, "targets": verdicts}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_bytes(orjson.dumps(raw, option=orjson.OPT_INDENT_2))
        console.log(f"raw results: {args.json}")
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(markdown(meta, report.markdown_tables(summary, facts, configs, verdicts)))
        console.log(f"report: {args.report}")
    return 0 if meta["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
