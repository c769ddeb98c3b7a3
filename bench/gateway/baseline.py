"""A stored turn against a stateless request of the same payload, interleaved on one connection.

After a chain, a late turn sends the upstream the input items its context report keeps
(``context_report.kept``: runs of positions in the response's input items, ``"0,3-40"``). This
load process reads them through the API (the chain's last response and its ``input_items``, every
page of 100, oldest first) and turns them into chat messages (role and text). Then, at c=1, it
sends ``warmup`` and then ``n`` pairs: a stateless ``/v1/chat/completions`` with exactly those
messages, and a stored ``responses`` turn that continues the chain (the order alternates from
pair to pair). Every answer is validated (``kinds``). The difference of the two p50s is what
storing the turn costs at the same payload: loading the chain, planning the window, writing the
turn. With ``--upstream``, it then sends the fake upstream itself, interleaved, ``n`` pairs of
chat completions: the first ``--early`` of those messages (what the chain's 10th turn sent) and
all of them, so the report can say how much of the chain's growth is the upstream's own work on
the larger body (reading and parsing it), which no gateway can save. Prints one JSON object.

    cd bench && python -m gateway.baseline --url http://127.0.0.1:P --response resp_... --n 50 \
        [--upstream http://127.0.0.1:U --early 19]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import orjson

from .common import percentile, positions
from .kinds import Chain, Invalid, Outcome, chat, send
from .mix import HEADER_LIMIT


async def _json(session: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    async with session.get(url) as resp:
        if resp.status != 200:
            raise Invalid(f"GET {url}: HTTP {resp.status}: {(await resp.read())[:200]!r}", resp.status)
        page: dict[str, Any] = orjson.loads(await resp.read())
        return page


async def sent_messages(session: aiohttp.ClientSession, base: str, response_id: str) -> dict[str, Any]:
    """What the response ``response_id`` sent upstream, as chat messages, and its context report."""
    report = (await _json(session, f"{base}/v1/responses/{response_id}"))["context_report"]
    items: list[dict[str, Any]] = []
    after = ""
    while True:
        page = await _json(session, f"{base}/v1/responses/{response_id}/input_items?order=asc&limit=100{after}")
        items += page["data"]
        if not page.get("has_more"):
            break
        after = f"&after={page['last_id']}"
    kept = [items[i] for i in positions(report["kept"])]
    messages = [
        {"role": item["role"], "content": "".join(part.get("text", "") for part in item["content"])} for item in kept
    ]
    return {"report": report, "items": len(items), "messages": messages}


def _lat(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    return {"p50": percentile(values, 0.5), "p90": percentile(values, 0.9), "p99": percentile(values, 0.99)}


def _session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=1),
        timeout=aiohttp.ClientTimeout(total=60),
        max_field_size=HEADER_LIMIT,
        max_line_size=HEADER_LIMIT,
    )


async def _interleaved(
    calls: dict[str, Callable[[], Awaitable[Outcome]]], n: int, warmup: int
) -> tuple[dict[str, list[float]], list[str]]:
    """``warmup`` then ``n`` rounds of the two ``calls``, their order alternating from round to
    round: each call's latencies (ms, the measured rounds), and the errors (counted and
    sampled, never fatal)."""
    first, second = calls
    runs: dict[str, list[float]] = {first: [], second: []}
    errors: list[str] = []
    for i in range(warmup + n):
        for kind in (first, second) if i % 2 == 0 else (second, first):
            try:
                outcome = await calls[kind]()
            except Exception as exc:
                errors.append(f"{kind}: {type(exc).__name__}: {exc}"[:300])
                continue
            if i >= warmup:
                runs[kind].append(outcome.seconds * 1000)
    return runs, errors


async def upstream_alone(
    upstream: str, messages: list[dict[str, Any]], early: int, n: int, warmup: int
) -> dict[str, Any]:
    """``n`` interleaved pairs straight to the upstream: the first ``early`` messages, and all."""
    async with _session() as session:
        calls = {
            "early": lambda: chat(session, upstream, messages[:early]),
            "late": lambda: chat(session, upstream, messages),
        }
        runs, errors = await _interleaved(calls, n, warmup)
    return {
        "early_messages": min(early, len(messages)),
        "late_messages": len(messages),
        "early": _lat(runs["early"]),
        "late": _lat(runs["late"]),
        "early_ms": [round(v, 3) for v in runs["early"]],
        "late_ms": [round(v, 3) for v in runs["late"]],
        "errors": errors,
    }


async def compare(
    base: str, response_id: str, n: int, warmup: int, upstream: str | None = None, early: int = 19
) -> dict[str, Any]:
    """The interleaved pairs after the chain that ends at ``response_id`` (see the module docstring)."""
    async with _session() as session:
        sent = await sent_messages(session, base, response_id)
        messages = sent["messages"]
        chain = Chain(last_id=response_id)
        calls = {
            "stateless": lambda: chat(session, base, messages),
            "stored": lambda: send("responses", session, base, chain),
        }
        runs, errors = await _interleaved(calls, n, warmup)
        stateless, stored = runs["stateless"], runs["stored"]
        after = (await _json(session, f"{base}/v1/responses/{chain.last_id}"))["context_report"]
    body = orjson.dumps({"model": "qwen-plus", "messages": messages, "stream": False})
    alone = await upstream_alone(upstream, messages, early, n, warmup) if upstream else None
    return {
        "n": n,
        "warmup": warmup,
        "items": sent["items"],
        "kept": sent["report"]["kept"],
        "tokens": sent["report"].get("tokens"),
        "messages": len(messages),
        "body_bytes": len(body),
        "kept_after": len(positions(after["kept"])),
        "stateless": _lat(stateless),
        "stored": _lat(stored),
        "stateless_ms": [round(v, 3) for v in stateless],
        "stored_ms": [round(v, 3) for v in stored],
        "errors": errors,
        "upstream_alone": alone,
    }


def main(argv: list[str] | None = None) -> None:
    import uvloop

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", required=True, help="the gateway's base URL")
    p.add_argument("--response", required=True, help="the chain's last response id")
    p.add_argument("--n", type=int, default=50, help="measured pairs")
    p.add_argument("--warmup", type=int, default=5, help="pairs before them, not recorded")
    p.add_argument("--upstream", help="the fake upstream's base URL: also measure it alone (see above)")
    p.add_argument("--early", type=int, default=19, help="messages of the early payload [default 19: turn 10's]")
    args = p.parse_args(argv)
    started = time.perf_counter()
    upstream = args.upstream.rstrip("/") if args.upstream else None
    result = uvloop.run(compare(args.url.rstrip("/"), args.response, args.n, args.warmup, upstream, args.early))
    result["wall_s"] = time.perf_counter() - started
    sys.stdout.write(orjson.dumps(result).decode() + "\n")


if __name__ == "__main__":
    main()
