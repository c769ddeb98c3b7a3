"""A closed loop of C workers over a rotating mix of request kinds, against one or more gateways.

``run_mix`` is the load of every stored-turns scenario and the importable soak: request ``i``
(counted from 0 in each phase) is of kind ``kinds[i % len(kinds)]``; each worker keeps its own
chain and conversation (``kinds.Chain``) and by default sends its successive requests to
successive gateways (worker ``w``'s ``t``-th request goes to ``base_urls[(w + t) % P]``), so with
several gateways a chain's consecutive turns are served by different processes (``route``:
``ROUTES``). A warm-up phase (not recorded) runs
first; then the gateways' CPU (``pids``) is read, the measured phase runs, and the CPU is read
again. VmRSS of ``pids`` is read at the start of the measured phase, when ``checkpoints`` measured
requests have completed, and at its end. With ``verify`` every worker's chain and conversation is
checked in the store at the end (``kinds.verify_chain``).

As a separate load process (what ``bench/stored_turns.py`` runs; prints one JSON object):

    cd bench && python -m gateway.mix --urls http://127.0.0.1:P --kinds responses --conc 32 \
        --n 3000 --warmup 320 --pids M=123,U=456 [--checkpoints 1000] [--verify] [--label soak]

From a test (``bench`` on ``sys.path``)::

    from gateway.mix import soak
    from gateway.storedb import response_statuses
    result = soak(["http://127.0.0.1:8000"], 1000, verify=True)   # or: await run_mix(...)
    assert not result.errors and not result.verify_problems
    assert response_statuses(db).get("in_progress", 0) == 0
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from .common import TICK, machine_busy, percentile, proc_cpu
from .kinds import KINDS, Chain, Invalid, Outcome, create_conversation, send, verify_chain, verify_conversation

HEADER_LIMIT = 1 << 20
"""Response header fields this client accepts (aiohttp's default is 8,190 bytes): the gateway's
``X-Multiturn-Context`` grows with a conversation, and the benchmark measures past that point;
``MixResult.headers`` says how many answers a client with default limits would have refused."""
AIOHTTP_FIELD_LIMIT = 8190  # aiohttp's max_field_size
H11_BLOCK_LIMIT = 16 * 1024  # h11's max_incomplete_event_size: httpx, hence the openai SDK

SOAK_MIX = ("stateless", "responses", "stateless_stream", "stateful_chat", "dashscope", "responses_stream")
"""The soak's fixed rotation: one request of each kind in every six, stateless and stored in turn."""


@dataclass
class MixResult:
    """What a ``run_mix`` measured. Per measured request ``i`` (the order requests were started):
    ``kinds[i]`` and ``latencies_ms[i]`` (None when it failed)."""

    count: int
    conc: int
    kinds: list[str]
    latencies_ms: list[float | None]
    errors: list[dict[str, Any]]  # {"i", "kind", "url", "error", "status"} of each failed measured request
    warmup_errors: list[dict[str, Any]]
    statuses: dict[str, int]  # failures by HTTP status or exception type, warm-up included
    wall_s: float
    complete: bool  # every measured request was sent (neither the deadline nor the VmRSS cap cut the run)
    stopped: str | None = None  # why the run was cut short
    cpu_s: dict[str, float] = field(default_factory=dict)  # per pid name, over the measured phase
    rss_kb: dict[str, dict[str, int]] = field(default_factory=dict)  # "start", "@N", "end" -> name -> VmRSS
    cores_busy: float = 0.0  # whole machine, over the measured phase
    generator_cores: float = 0.0
    postgres_cpu_s: float | None = None
    chains: list[Chain] = field(default_factory=list)
    verify_problems: list[str] = field(default_factory=list)
    verified: int = 0
    headers: dict[str, Any] = field(default_factory=dict)
    """Response headers of the measured requests: the largest block and field (bytes, which
    header), and how many answers had a field over aiohttp's limit or a block over h11's."""

    @property
    def ok(self) -> int:
        return sum(v is not None for v in self.latencies_ms)

    @property
    def throughput(self) -> float:
        return self.ok / self.wall_s if self.wall_s else 0.0

    def latency(self, start: int = 0, stop: int | None = None, kind: str | None = None) -> dict[str, float]:
        """p50/p90/p99/max (ms) of the successful requests ``start:stop`` (of one kind)."""
        picked = [
            v
            for v, k in zip(self.latencies_ms[start:stop], self.kinds[start:stop], strict=True)
            if v is not None and (kind is None or k == kind)
        ]
        if not picked:
            return {}
        return {q: percentile(picked, p) for q, p in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))} | {"max": max(picked)}

    def to_json(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "conc": self.conc,
            "ok": self.ok,
            "throughput": self.throughput,
            "kinds": self.kinds,
            "latencies_ms": self.latencies_ms,
            "errors": self.errors,
            "warmup_errors": self.warmup_errors,
            "statuses": self.statuses,
            "wall_s": self.wall_s,
            "complete": self.complete,
            "stopped": self.stopped,
            "cpu_s": self.cpu_s,
            "rss_kb": self.rss_kb,
            "cores_busy": self.cores_busy,
            "generator_cores": self.generator_cores,
            "postgres_cpu_s": self.postgres_cpu_s,
            "chains": [c.to_json() for c in self.chains],
            "verify_problems": self.verify_problems,
            "verified": self.verified,
            "headers": self.headers,
        }


def vm_rss(pid: int) -> int:
    """VmRSS of a process in KiB (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except FileNotFoundError:
        pass
    return 0


def postgres_cpu() -> float:
    """CPU (s) of the PostgreSQL cluster: utime + stime of every live ``postgres`` process plus
    cutime + cstime (what the postmaster's exited children, e.g. closed backends, used)."""
    total = 0.0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/comm", "rb") as f:
                if f.read().strip() != b"postgres":
                    continue
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        total += sum(int(x) for x in fields[11:15]) / TICK
    return total


def analyze_schema(dsn: str) -> None:
    """``ANALYZE`` every table of the DSN's schema (its ``search_path``): the statistics a
    database has once autovacuum has seen its tables grow, which a fresh schema lacks for about
    a minute (until then PostgreSQL plans with a 10-page guess, and keeps a prepared statement's
    generic plan made with it: ``bench/results/stored_turns.md`` 5.4)."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        tables = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()").fetchall()
        for (table,) in tables:
            conn.execute(f'ANALYZE "{table}"')


def _failure(exc: BaseException) -> tuple[str, str]:
    """(a status key, a one-line message) of a failed request."""
    if isinstance(exc, Invalid):
        return (str(exc.status) if exc.status else "invalid"), str(exc)[:400]
    return type(exc).__name__, f"{type(exc).__name__}: {exc}"[:400]


ROUTES = ("rotate", "sticky", "each")
"""How a request picks its gateway: ``rotate`` (a worker's successive requests go to successive
gateways: a chain's turns are served by different processes), ``sticky`` (a worker keeps one
gateway: a load balancer's affinity by conversation), ``each`` (request ``i`` of the phase goes to
gateway ``i % P``: a round-robin balancer that knows nothing of conversations)."""


def _gateway(route: str, worker: int, sent: int, request: int, gateways: int) -> int:
    if route == "sticky":
        return worker % gateways
    if route == "each":
        return request % gateways
    return (worker + sent) % gateways


async def run_mix(
    base_urls: Sequence[str],
    count: int,
    *,
    conc: int = 32,
    kinds: Sequence[str] = SOAK_MIX,
    warmup: int = 0,
    reset_after_warmup: bool = False,
    analyze: str | None = None,
    key: str | None = None,
    pids: dict[str, int] | None = None,
    checkpoints: Sequence[int] = (),
    verify: bool = False,
    measure_postgres: bool = False,
    route: str = "rotate",
    request_timeout: float = 60.0,
    deadline_s: float | None = None,
    header_limit: int = HEADER_LIMIT,
    rss_cap_kb: int = 0,
    progress: Callable[[str, int, int], None] | None = None,
) -> MixResult:
    """Run ``warmup`` then ``count`` requests of the rotating ``kinds`` at concurrency ``conc``
    against the gateways at ``base_urls`` (``http://host:port``, no path); see the module
    docstring. ``reset_after_warmup`` starts new chains and conversations for the measured phase.
    ``analyze`` (a PostgreSQL DSN) has the tables of its schema analyzed after the warm-up.
    ``rss_cap_kb`` (if set) stops the run when a gateway's VmRSS (any of ``pids`` but ``U``) passes
    it (``stopped`` says so). ``progress(phase, done, total)`` is called about every 2 s. Never
    raises for a failed request: failures are in ``errors`` / ``warmup_errors`` / ``statuses``."""
    unknown = set(kinds) - set(KINDS)
    if unknown:
        raise ValueError(f"unknown kinds: {sorted(unknown)}")
    if route not in ROUTES:
        raise ValueError(f"unknown route {route!r}: one of {', '.join(ROUTES)}")
    urls = [u.rstrip("/") for u in base_urls]
    pids = pids or {}
    deadline = time.perf_counter() + deadline_s if deadline_s else None
    chains = [Chain() for _ in range(conc)]
    statuses: Counter[str] = Counter()
    stopped: list[str] = []  # set once: every worker stops taking requests
    sent = [0] * conc  # requests sent per worker (rotates its gateway)
    headers: dict[str, Any] = {"max_block": 0, "max_field": 0, "max_field_name": ""}
    headers |= {"fields_over_8190": 0, "blocks_over_16384": 0}
    connector = aiohttp.TCPConnector(limit=conc * len(urls), limit_per_host=conc)
    session = aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=request_timeout),
        max_field_size=header_limit,
        max_line_size=header_limit,
    )
    async with session:

        async def prepare() -> None:
            if "stateful_chat" in kinds:
                made = await asyncio.gather(
                    *(create_conversation(session, urls[w % len(urls)], key) for w in range(conc))
                )
                for chain, cid in zip(chains, made, strict=True):
                    chain.conversation = cid

        async def phase(
            name: str, n: int, marks: Sequence[int]
        ) -> tuple[list[float | None], list[dict[str, Any]], float, dict[str, Any]]:
            latencies: list[float | None] = [None] * n
            errors: list[dict[str, Any]] = []
            tickets = iter(range(n))
            done = [0]
            pending = sorted(m for m in marks if 0 < m < n)
            rss: dict[str, dict[str, int]] = {}
            last_report = [time.perf_counter()]

            async def worker(w: int) -> None:
                for i in tickets:
                    if stopped:
                        return
                    if deadline is not None and time.perf_counter() > deadline:
                        stopped.append(f"deadline reached after {done[0]} {name} requests")
                        return
                    kind = kinds[i % len(kinds)]
                    url = urls[_gateway(route, w, sent[w], i, len(urls))]
                    sent[w] += 1
                    try:
                        outcome = await send(kind, session, url, chains[w], key)
                        latencies[i] = outcome.seconds * 1000
                        if name == "measured":
                            _count_headers(headers, outcome)
                    except Exception as exc:  # every failure is counted and sampled, none is fatal
                        status, message = _failure(exc)
                        statuses[status] += 1
                        errors.append({"i": i, "kind": kind, "url": url, "status": status, "error": message})
                    done[0] += 1
                    if rss_cap_kb and done[0] % 10 == 0:
                        over = {k: kb for k, p in pids.items() if k != "U" and (kb := vm_rss(p)) > rss_cap_kb}
                        if over and not stopped:
                            stopped.append(
                                f"VmRSS cap {rss_cap_kb // 1024} MiB passed after {done[0]} {name} requests: {over} KiB"
                            )
                    while pending and done[0] >= pending[0]:
                        rss[f"@{pending.pop(0)}"] = {k: vm_rss(p) for k, p in pids.items()}
                    if progress is not None and time.perf_counter() - last_report[0] > 2.0:
                        last_report[0] = time.perf_counter()
                        progress(name, done[0], n)

            started = time.perf_counter()
            await asyncio.gather(*(worker(w) for w in range(conc)))
            wall = time.perf_counter() - started
            if progress is not None:
                progress(name, done[0], n)
            return latencies, errors, wall, rss

        await prepare()
        _, warm_errors, _, _ = await phase("warm-up", warmup, ())
        if reset_after_warmup:
            chains[:] = [Chain() for _ in range(conc)]
            await prepare()
        if analyze:
            await asyncio.to_thread(analyze_schema, analyze)
        rss_start = {k: vm_rss(p) for k, p in pids.items()}
        cpu0 = {k: proc_cpu(p) for k, p in pids.items()}
        pg0 = postgres_cpu() if measure_postgres else None
        own0, busy0 = os.times(), machine_busy()
        latencies, errors, wall, rss = await phase("measured", count, checkpoints)
        own1, busy1 = os.times(), machine_busy()
        pg1 = postgres_cpu() if measure_postgres else None
        cpu1 = {k: proc_cpu(p) for k, p in pids.items()}
        rss_end = {k: vm_rss(p) for k, p in pids.items()}
        result = MixResult(
            count=count,
            conc=conc,
            kinds=[kinds[i % len(kinds)] for i in range(count)],
            latencies_ms=latencies,
            errors=errors,
            warmup_errors=warm_errors,
            statuses=dict(statuses),
            wall_s=wall,
            complete=len(errors) + sum(v is not None for v in latencies) == count,
            stopped=stopped[0] if stopped else None,
            cpu_s={k: cpu1[k] - cpu0[k] for k in pids},
            rss_kb={"start": rss_start, **rss, "end": rss_end},
            cores_busy=(busy1 - busy0) / wall if wall else 0.0,
            generator_cores=((own1.user + own1.system) - (own0.user + own0.system)) / wall if wall else 0.0,
            postgres_cpu_s=None if pg0 is None or pg1 is None else pg1 - pg0,
            chains=chains,
            headers=headers,
        )
        if verify:
            await _verify(session, urls, result, key)
    return result


def _count_headers(seen: dict[str, Any], outcome: Outcome) -> None:
    field_size, name = outcome.longest_header
    seen["max_block"] = max(seen["max_block"], outcome.header_bytes)
    if field_size > seen["max_field"]:
        seen["max_field"], seen["max_field_name"] = field_size, name
    seen["fields_over_8190"] += field_size > AIOHTTP_FIELD_LIMIT
    seen["blocks_over_16384"] += outcome.header_bytes > H11_BLOCK_LIMIT


async def _verify(session: aiohttp.ClientSession, urls: list[str], result: MixResult, key: str | None) -> None:
    """Check every worker's chain and conversation through a gateway other than the one that
    wrote its last turn (when there are several)."""
    for w, chain in enumerate(result.chains):
        url = urls[(w + len(urls) + 1) % len(urls)]
        for check in (verify_chain, verify_conversation):
            try:
                problem = await check(session, url, chain, key)
            except Exception as exc:  # a failed check is a finding, not a crash
                problem = _failure(exc)[1]
            if problem is not None:
                result.verify_problems.append(f"worker {w}: {problem}")
        result.verified += 1


def soak(base_urls: Sequence[str], count: int, *, conc: int = 32, **options: Any) -> MixResult:
    """``run_mix`` with the soak's mix, on a fresh event loop (for synchronous callers)."""
    return asyncio.run(run_mix(base_urls, count, conc=conc, **options))


def _parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--urls", required=True, help="comma-separated gateway base URLs")
    p.add_argument("--kinds", default=",".join(SOAK_MIX), help=f"comma-separated rotation of {','.join(KINDS)}")
    p.add_argument("--conc", type=int, default=32)
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--warmup", type=int, default=0)
    p.add_argument("--reset-after-warmup", action="store_true")
    p.add_argument("--analyze", default=None, help="a PostgreSQL DSN whose schema's tables are analyzed after warm-up")
    p.add_argument("--key", default=None)
    p.add_argument("--pids", default="", help="NAME=PID,... whose CPU and VmRSS are read")
    p.add_argument("--checkpoints", default="", help="comma-separated request counts at which VmRSS is read")
    p.add_argument("--verify", action="store_true")
    p.add_argument("--postgres-cpu", action="store_true", help="also read the CPU of every postgres process")
    p.add_argument("--route", choices=ROUTES, default="rotate", help="how a request picks its gateway [rotate]")
    p.add_argument("--deadline", type=float, default=None, help="seconds for warm-up + measured phase")
    p.add_argument("--timeout", type=float, default=60.0, help="per request")
    p.add_argument("--label", default="", help="prefix of the progress lines on stderr")
    p.add_argument("--rss-cap-mb", type=int, default=0, help="stop when a gateway's VmRSS passes this (MiB)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    import uvloop

    args = _parse(argv)

    def progress(phase: str, done: int, total: int) -> None:
        print(f"  {args.label} {phase}: {done}/{total} requests", file=sys.stderr, flush=True)

    result = uvloop.run(
        run_mix(
            args.urls.split(","),
            args.n,
            conc=args.conc,
            kinds=[k for k in args.kinds.split(",") if k],
            warmup=args.warmup,
            reset_after_warmup=args.reset_after_warmup,
            analyze=args.analyze,
            key=args.key,
            pids={name: int(pid) for name, pid in (p.split("=") for p in args.pids.split(",") if p)},
            checkpoints=[int(c) for c in args.checkpoints.split(",") if c],
            verify=args.verify,
            measure_postgres=args.postgres_cpu,
            route=args.route,
            request_timeout=args.timeout,
            rss_cap_kb=args.rss_cap_mb * 1024,
            deadline_s=args.deadline,
            progress=progress,
        )
    )
    sys.stdout.write(orjson.dumps(result.to_json()).decode() + "\n")


if __name__ == "__main__":
    main()
