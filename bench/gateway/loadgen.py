"""The load generator: a closed loop of C workers over C keep-alive connections (aiohttp, uvloop).

One measurement per process. A warm-up phase (W requests) runs first; then the servers' CPU is
read from ``/proc/<pid>/stat`` and N requests are measured; CPU is read again at the end. Every
response is validated: non-streamed content must equal the sentence; every stream event is
JSON-parsed, the reassembled text must match and the stream must end properly (``[DONE]`` for
OpenAI, a ``finish_reason: stop`` event for DashScope). Prints one JSON object on stdout.

    python loadgen.py --url http://127.0.0.1:P/v1/chat/completions --stream 1 --conc 64 \
        --n 2000 --warmup 256 --pids U=123,M=456 [--proto openai|dashscope] [--key K]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from typing import Any

import aiohttp
import orjson
import uvloop
from common import SENTENCE, dashscope_body, machine_busy, openai_body, percentile, proc_cpu


class Invalid(Exception):
    pass


def _content_openai(event: dict[str, Any]) -> tuple[str, str | None]:
    choices = event.get("choices") or ()
    if not choices:
        return "", None
    choice = choices[0]
    return (choice.get("delta") or {}).get("content") or "", choice.get("finish_reason")


def _content_dashscope(event: dict[str, Any]) -> tuple[str, str | None]:
    choice = event["output"]["choices"][0]
    finish = choice.get("finish_reason")
    return choice["message"].get("content") or "", None if finish == "null" else finish


async def one(session: aiohttp.ClientSession, args: argparse.Namespace, body: bytes, headers: dict[str, str]) -> dict:
    """One request, validated. Returns its timings (seconds) and the number of SSE events."""
    t0 = time.perf_counter()
    async with session.post(args.url, data=body, headers=headers) as resp:
        if resp.status != 200:
            raise Invalid(f"HTTP {resp.status}: {(await resp.read())[:200]!r}")
        if not args.stream:
            data = orjson.loads(await resp.read())
            end = time.perf_counter()
            if args.proto == "openai":
                content = data["choices"][0]["message"]["content"]
            else:
                content = data["output"]["choices"][0]["message"]["content"]
            if content != SENTENCE:
                raise Invalid(f"wrong content: {content!r}")
            return {"total": end - t0}
        if not resp.headers.get("content-type", "").startswith("text/event-stream"):
            raise Invalid(f"not an event stream: {resp.headers.get('content-type')}")
        extract = _content_openai if args.proto == "openai" else _content_dashscope
        ttft = None
        pieces: list[str] = []
        events = 0
        done = finished = False
        buffer = b""
        async for chunk in resp.content.iter_any():
            buffer += chunk
            if b"\r" in buffer:
                buffer = buffer.replace(b"\r\n", b"\n")
            *complete, buffer = buffer.split(b"\n\n")
            for raw in complete:
                data_lines = []
                for line in raw.split(b"\n"):
                    if line.startswith(b"data:"):
                        data_lines.append(line[5:].lstrip(b" "))
                    elif line.startswith(b"event:") and line[6:].strip() == b"error":
                        raise Invalid(f"error event: {raw[:300]!r}")
                if not data_lines:
                    continue
                data = b"\n".join(data_lines)
                if data == b"[DONE]":
                    done = True
                    continue
                if done:
                    raise Invalid("an event after [DONE]")
                events += 1
                content, finish = extract(orjson.loads(data))
                if content:
                    if ttft is None:
                        ttft = time.perf_counter() - t0
                    pieces.append(content)
                if finish == "stop":
                    finished = True
                elif finish:
                    raise Invalid(f"finish_reason {finish!r}")
        end = time.perf_counter()
    if buffer.strip():
        raise Invalid(f"a partial event at the end: {buffer[:200]!r}")
    if "".join(pieces) != SENTENCE:
        raise Invalid(f"wrong text: {''.join(pieces)!r}")
    if not finished or (args.proto == "openai" and not done):
        raise Invalid(f"stream did not end properly (finish={finished}, [DONE]={done})")
    return {"ttft": ttft, "total": end - t0, "events": events}


async def phase(session: aiohttp.ClientSession, args: argparse.Namespace, count: int, deadline: float) -> dict:
    body = openai_body(bool(args.stream)) if args.proto == "openai" else dashscope_body()
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {args.key}"}
    if args.proto == "dashscope" and args.stream:
        headers["X-DashScope-SSE"] = "enable"
    samples: list[dict] = []
    errors: list[str] = []
    tickets = iter(range(count))

    async def worker() -> None:
        for _ in tickets:
            if time.perf_counter() > deadline:
                return
            try:
                samples.append(await one(session, args, body, headers))
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}"[:300])

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(args.conc)))
    return {"samples": samples, "errors": errors, "wall": time.perf_counter() - started}


def summary(values: list[float]) -> dict[str, float]:
    ms = [v * 1000 for v in values]
    return {"p50": percentile(ms, 0.5), "p90": percentile(ms, 0.9), "p99": percentile(ms, 0.99), "max": max(ms)}


async def main(args: argparse.Namespace) -> dict:
    pids = {name: int(pid) for name, pid in (p.split("=") for p in args.pids.split(",") if p)}
    deadline = time.perf_counter() + args.deadline
    connector = aiohttp.TCPConnector(limit=args.conc, limit_per_host=args.conc)
    timeout = aiohttp.ClientTimeout(total=args.timeout)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        warm = await phase(session, args, args.warmup, deadline)
        cpu0 = {name: proc_cpu(pid) for name, pid in pids.items()}
        own0, busy0 = os.times(), machine_busy()
        measured = await phase(session, args, args.n, deadline)
        own1, busy1 = os.times(), machine_busy()
        cpu1 = {name: proc_cpu(pid) for name, pid in pids.items()}
    samples, ok = measured["samples"], len(measured["samples"])
    gen_cpu = (own1.user + own1.system) - (own0.user + own0.system)
    cpu = {name: cpu1[name] - cpu0[name] for name in pids}
    wall = measured["wall"]
    result = {
        "n": args.n,
        "ok": ok,
        "errors": len(measured["errors"]),
        "warmup_errors": len(warm["errors"]),
        "error_samples": (warm["errors"] + measured["errors"])[:5],
        "complete": ok + len(measured["errors"]) == args.n,
        "wall_s": wall,
        "throughput": ok / wall if wall else 0.0,
        "latency_ms": summary([s["total"] for s in samples]) if samples else {},
        "cpu_s": cpu,
        "cpu_ms_per_req": {name: 1000 * v / max(ok, 1) for name, v in cpu.items()},
        "generator_cpu_share": gen_cpu / wall if wall else 0.0,
        # Everything else on the machine, in cores: the servers' idle neighbours and other users.
        "other_cores": max(0.0, (busy1 - busy0) - gen_cpu - sum(cpu.values())) / wall if wall else 0.0,
    }
    if args.stream and samples:
        result["ttft_ms"] = summary([s["ttft"] for s in samples])
        result["events_per_stream"] = sum(s["events"] for s in samples) / ok
    return result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", required=True)
    p.add_argument("--proto", choices=("openai", "dashscope"), default="openai")
    p.add_argument("--stream", type=int, choices=(0, 1), default=0)
    p.add_argument("--conc", type=int, default=1)
    p.add_argument("--n", type=int, default=500)
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument("--key", default="sk-none")
    p.add_argument("--pids", default="", help="NAME=PID,... whose CPU is read around the measured phase")
    p.add_argument("--deadline", type=float, default=170.0, help="seconds for warm-up + measured phase")
    p.add_argument("--timeout", type=float, default=60.0, help="per request")
    return p.parse_args(argv)


if __name__ == "__main__":
    print(orjson.dumps(uvloop.run(main(parse_args()))).decode())
    sys.stdout.flush()
