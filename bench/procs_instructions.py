"""Instructions a stored turn costs the gateways, with 1, 2 and 4 of them on one PostgreSQL schema.

CPU time a turn is what ``stored_turns.py --scenarios procs`` measures, and on a machine with
fewer cores than processes it includes what time-slicing costs: each switch leaves the next
process cold caches, so the same work takes longer. The instructions a turn executes do not
depend on that. Here every gateway runs under Valgrind's callgrind with its counting switched
off; after the warm-up it is switched on in every gateway (``callgrind_control -i on``), the
measured turns run, and it is switched off again: the instructions the gateways executed
together for those turns, divided by the turns, for each number of gateways and each way a
chain's turns pick their gateway (``gateway/mix.py`` ``ROUTES``: ``sticky`` keeps a chain on one
gateway, ``rotate`` sends each turn to the next one, so a turn's gateway did not serve the
chain's last turn and must fetch what the others wrote).

Everything runs ~50x slower under callgrind (a few seconds of turns take minutes), so N is
small; instruction counts vary little from run to run (a few per cent). Needs ``valgrind`` and
the PostgreSQL test cluster (``scripts/pg-test-db``).

    .venv/bin/python bench/procs_instructions.py [--procs 1,2,4] [--routes sticky,rotate] [--n 600]
        [--at-commit REV] [--json FILE]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from gateway.fleet import gateway  # noqa: E402
from gateway.servers import VENV_BIN, Server, running_upstream  # noqa: E402
from gateway.storedb import fresh_schema  # noqa: E402
from stored_turns import code_facts, publish, snapshot  # noqa: E402

REQUEST_TIMEOUT_S = 600.0
"""The load's timeout a request: a turn takes ~1 s at c=32 under callgrind, and switching the
counting on retranslates every gateway's code (the load's default of 60 s once cut 3 turns of
600 short)."""


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _callgrind(pid: int, *command: str) -> None:
    subprocess.run(["callgrind_control", *command, str(pid)], capture_output=True, check=True)


def _instructions(out: Path) -> int:
    """The instructions of every dump callgrind wrote for one process (``totals:`` lines)."""
    total = 0
    for dump in out.parent.glob(f"{out.name}*"):
        for line in dump.read_text(errors="replace").splitlines():
            if line.startswith("totals:"):
                total += int(line.split()[1])
    return total


def _under_callgrind(server: Server, out: Path) -> Server:
    """``server`` (``fleet.gateway``'s ``multiturn serve``) run by Python under callgrind,
    counting off, its output in ``out``."""
    at = server.cmd.index(str(VENV_BIN / "multiturn"))
    valgrind = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}"]
    server.cmd[at:at] = [*valgrind, str(VENV_BIN / "python")]
    return server


def run(args: argparse.Namespace, upstream: int, work: Path, src: Path | None, k: int, route: str) -> dict[str, Any]:
    """``k`` gateways under callgrind on a fresh schema, ``route``: the measured turns' instructions."""
    logs = work / f"{route}{k}"
    logs.mkdir()
    outs = [logs / f"callgrind.M{i}" for i in range(1, k + 1)]
    with fresh_schema(args.pg_dsn, prefix=f"cg_{route}{k}") as dsn:
        servers = [_under_callgrind(gateway(upstream, dsn, f"M{i + 1}", src=src), out) for i, out in enumerate(outs)]
        try:
            for server in servers:
                server.start(logs)
            urls = ",".join(f"http://127.0.0.1:{server.port}" for server in servers)
            mix = [str(VENV_BIN / "python"), "-m", "gateway.mix", "--urls", urls, "--kinds", "responses"]
            mix += ["--conc", str(args.conc), "--route", route, "--warmup", "0", "--timeout", str(REQUEST_TIMEOUT_S)]
            subprocess.run([*mix, "--n", str(args.warmup)], cwd=HERE, capture_output=True, check=True)
            for server in servers:
                _callgrind(server.pid, "-i", "on")
            started = time.monotonic()
            done = subprocess.run([*mix, "--n", str(args.n)], cwd=HERE, capture_output=True, text=True, check=True)
            seconds = time.monotonic() - started
            for server in servers:
                _callgrind(server.pid, "-i", "off")
            for server in servers:
                _callgrind(server.pid, "-d")
        finally:
            for server in servers:
                server.stop()
        load = orjson.loads(done.stdout)
        per_gateway = [_instructions(out) for out in outs]
    ok = load["ok"]
    result = {
        "route": route,
        "gateways": k,
        "turns": ok,
        "errors": len(load.get("errors", [])),
        "error_samples": load.get("errors", [])[:5],
        "seconds": seconds,
        "instructions": per_gateway,
        "per_turn": sum(per_gateway) / ok if ok else None,
    }
    _log(
        f"  {route}, {k} gateway(s): {ok} turns, {result['errors']} errors, "
        f"{result['per_turn'] / 1e6:.2f} M instructions a turn"
        + (f"; first error: {str(result['error_samples'][0])[:300]}" if result["error_samples"] else "")
    )
    return result


def report(results: list[dict[str, Any]]) -> str:
    lines = [
        "| route | gateways | turns | errors | instructions a turn (M) | ÷ 1 gateway | per gateway (G) |",
        "|---|---|---|---|---|---|---|",
    ]
    one = {r["route"]: r["per_turn"] for r in results if r["gateways"] == 1}
    for r in results:
        base = one.get(r["route"])
        ratio = f"{r['per_turn'] / base:.2f}" if base else "-"
        shares = ", ".join(f"{x / 1e9:.2f}" for x in r["instructions"])
        lines.append(
            f"| {r['route']} | {r['gateways']} | {r['turns']} | {r['errors']} | {r['per_turn'] / 1e6:.2f} | "
            f"{ratio} | {shares} |"
        )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--procs", default="1,2,4", help="numbers of gateways [1,2,4]")
    p.add_argument("--routes", default="sticky,rotate", help="how a chain's turns pick their gateway [sticky,rotate]")
    p.add_argument("--n", type=int, default=600, help="measured turns [600]")
    p.add_argument("--warmup", type=int, default=1500, help="turns before counting starts [1500]")
    p.add_argument("--conc", type=int, default=32, help="concurrent chains [32]")
    p.add_argument(
        "--pg-dsn", default=os.environ.get("MULTITURN_TEST_PG_DSN") or "postgresql://mt:mt@127.0.0.1:5432/mt"
    )
    p.add_argument("--at-commit", metavar="REV", help="measure src/ as committed at REV, not the working tree")
    p.add_argument("--json", type=Path, help="write the results here too")
    args = p.parse_args()
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        raise SystemExit("valgrind is not installed (Debian: apt-get install valgrind)")
    work = Path(tempfile.mkdtemp(prefix="procs-instructions-"))
    src = None
    code = code_facts()
    if args.at_commit:
        code = snapshot(args.at_commit, work)
        src = work / "src"
    _log(f"measuring {code['commit']}; callgrind output in {work}")
    results = []
    with running_upstream(work) as upstream:
        for route in [r for r in args.routes.split(",") if r]:
            for k in [int(x) for x in args.procs.split(",") if x]:
                results.append(run(args, upstream, work, src, k, route))
    publish("procs_instructions.py", code, report(results), args.json, {"results": results})
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
