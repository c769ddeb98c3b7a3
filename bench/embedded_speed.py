"""Embedded decode speed: multiturn's library vs raw llama-cpp-python on the same prompt and settings.

Every measurement runs in a fresh subprocess (``--worker CONFIG``): no two configurations share a
process, a thread or a KV cache. Configurations are interleaved round by round; medians are reported.
A worker loads the model, warms up with another short prompt (the same in every worker, so the KV
state before the measured call is the same), then generates the measured prompt once.

- ``raw``: ``Llama.generate`` on the prompt rendered with the GGUF chat template through
  ``Jinja2ChatFormatter`` (as multiturn does), EOS ignored, exactly ``--max-tokens`` tokens,
  every llama call from the main thread.
- ``raw-chat``: ``Llama.create_chat_completion(stream=True)``, the usual llama-cpp-python path.
- ``multiturn``: ``AsyncClient`` -> ``conv.stream(...)`` with a temporary SQLite store.

Decode tok/s = (chunks - 1) / (last chunk - first chunk), one chunk per content delta (one per
token for this ASCII prompt). TTFT = start of the call -> first content. End-to-end = start of the
call -> the stream is exhausted (for multiturn: the final ``Reply``, i.e. after the store write).

    .venv/bin/python bench/embedded_speed.py [--rounds 3] [--max-tokens 128] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SYSTEM = "You are a helpful assistant."
PROMPT = "Write a numbered list of 60 fruits, one per line."
WARM = ("You answer in one short sentence.", "Say hello.", 8)  # system, user, tokens
SAMPLING = {"temperature": 0.0, "top_k": 20, "top_p": 0.8}  # greedy; top_k/top_p pinned for both sides
CONFIGS = ("raw", "multiturn", "raw-chat")
COLUMNS = ("config", "decode tok/s", "TTFT ms", "e2e s", "prompt", "tokens", "decode/raw", "TTFT/raw", "same text")


def cpu_sample() -> tuple[float, float, float]:
    """(machine busy s, machine total s, this process's CPU s): to spot other load on the machine."""
    first = Path("/proc/stat").read_text().split("\n", 1)[0]
    ticks = [int(x) / os.sysconf("SC_CLK_TCK") for x in first.split()[1:9]]
    own = os.times()
    return sum(ticks) - ticks[3] - ticks[4], sum(ticks), own.user + own.system


def measure(t0: float, stamps: list[float], t_end: float, cpu0: tuple[float, float, float]) -> dict[str, Any]:
    busy, total, own = (b - a for a, b in zip(cpu0, cpu_sample(), strict=True))
    return {
        "decode_tps": (len(stamps) - 1) / (stamps[-1] - stamps[0]),
        "ttft_s": stamps[0] - t0,
        "e2e_s": t_end - t0,
        "other_cpu": max(0.0, busy - own) / total,  # share of all cores used by other processes
    }


def worker_raw(args: argparse.Namespace, chat: bool) -> dict[str, Any]:
    from llama_cpp import Llama
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    opts = {"n_ctx": args.n_ctx, "n_threads": args.threads, "n_batch": args.n_batch, "flash_attn": args.flash_attn}
    llm = Llama(model_path=args.model, verbose=False, **opts)
    text_of, template = llm._model.token_get_text, llm.metadata["tokenizer.chat_template"]  # as multiturn does
    fmt = Jinja2ChatFormatter(template, text_of(llm.token_eos()), text_of(llm.token_bos()))

    def tokenize(messages: list[dict[str, str]]) -> list[int]:
        r = fmt(messages=messages)
        return llm.tokenize(r.prompt.encode(), add_bos=not r.added_special, special=True)

    def run(system: str, user: str, n: int) -> dict[str, Any]:
        messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
        stamps: list[float] = []
        cpu0, t0 = cpu_sample(), time.perf_counter()
        if chat:
            pieces = []
            for chunk in llm.create_chat_completion(
                messages, stream=True, max_tokens=n, min_p=0.0, repeat_penalty=1.0, **SAMPLING
            ):
                if text := chunk["choices"][0]["delta"].get("content"):
                    stamps.append(time.perf_counter())
                    pieces.append(text)
            t_end = time.perf_counter()
            out = "".join(pieces)
            generated, prompt_tokens, eos_at = len(stamps), len(tokenize(messages)), None
        else:
            tokens = tokenize(messages)
            ids: list[int] = []
            temp, top_k, top_p = SAMPLING["temperature"], SAMPLING["top_k"], SAMPLING["top_p"]
            for tok in llm.generate(tokens, temp=temp, top_k=top_k, top_p=top_p, min_p=0.0, repeat_penalty=1.0):
                stamps.append(time.perf_counter())
                ids.append(tok)
                if len(ids) >= n:  # EOS is ignored: always exactly n tokens
                    break
            t_end = time.perf_counter()
            eos_at = next((i for i, t in enumerate(ids) if llm.token_eos() == t), None)
            out = llm.detokenize(ids[:eos_at]).decode(errors="replace")
            generated, prompt_tokens = len(ids), len(tokens)
        extra = {"prompt_tokens": prompt_tokens, "tokens": generated, "eos_at": eos_at, "text": out}
        return measure(t0, stamps, t_end, cpu0) | extra

    run(*WARM)
    return run(SYSTEM, PROMPT, args.max_tokens)


async def worker_multiturn(args: argparse.Namespace) -> dict[str, Any]:
    from multiturn import AsyncClient, Reply, Settings

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            db=str(Path(tmp) / "bench.db"), n_ctx=args.n_ctx, n_threads=args.threads, flash_attn=args.flash_attn
        )
        async with AsyncClient(settings) as client:

            async def run(system: str, user: str, n: int) -> dict[str, Any]:
                conv = await client.create(system=system)
                stamps, pieces, reply = [], [], None
                cpu0, t0 = cpu_sample(), time.perf_counter()
                async for ev in conv.stream(user, max_tokens=n, **SAMPLING):
                    if isinstance(ev, Reply):
                        reply = ev
                    elif ev.content:
                        stamps.append(time.perf_counter())
                        pieces.append(ev.content)
                t_end = time.perf_counter()
                assert reply is not None
                usage, text = reply.usage, "".join(pieces)
                extra = {"prompt_tokens": usage.prompt_tokens, "tokens": usage.completion_tokens, "text": text}
                return measure(t0, stamps, t_end, cpu0) | extra | {"finish": reply.finish_reason}

            await run(*WARM)
            return await run(SYSTEM, PROMPT, args.max_tokens)


def spawn(config: str, args: argparse.Namespace) -> dict[str, Any]:
    opts = f"--max-tokens {args.max_tokens} --threads {args.threads} --n-ctx {args.n_ctx} --n-batch {args.n_batch}"
    cmd = [sys.executable, __file__, "--worker", config, "--model", args.model, *opts.split()]
    cmd += [] if args.flash_attn else ["--no-flash-attn"]
    for attempt in range(1, max(1, args.attempts) + 1):
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            sys.exit(f"worker {config} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
        result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1]) | {"attempt": attempt}
        if result["other_cpu"] <= args.max_other or attempt >= args.attempts:
            break
        print(f"  {config}: other processes used {result['other_cpu']:.0%} of the CPU; again in 15 s", file=sys.stderr)
        time.sleep(15)
    return result


def summarize(results: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    keys = ("decode_tps", "ttft_s", "e2e_s")
    out: dict[str, Any] = {c: {k: statistics.median(r[k] for r in runs) for k in keys} for c, runs in results.items()}
    base = out["raw"]
    for c in results:
        out[c]["ratio_decode"] = out[c]["decode_tps"] / base["decode_tps"]
        out[c]["ratio_ttft"] = out[c]["ttft_s"] / base["ttft_s"]
        ref = results["raw"][0]["text"]
        out[c]["text_matches_raw"] = all(r["text"] == ref for r in results[c])
        out[c]["prompt_tokens"] = sorted({r["prompt_tokens"] for r in results[c]})
        out[c]["tokens"] = sorted({r["tokens"] for r in results[c]})
    return out


def spread(runs: list[dict[str, Any]], key: str, scale: float) -> str:
    digits = 0 if scale > 1 else 1
    return "[" + ", ".join(f"{r[key] * scale:.{digits}f}" for r in runs) + "]"


def print_table(results: dict[str, list[dict[str, Any]]], summary: dict[str, Any], args: argparse.Namespace) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Embedded decode speed: {args.rounds} rounds, medians \\[runs], max_tokens={args.max_tokens}")
    for col in (*COLUMNS, "other CPU"):
        table.add_column(col, justify="left" if col == "config" else "right")
    for c, runs in results.items():
        s = summary[c]
        table.add_row(
            c,
            f"{s['decode_tps']:.1f} {spread(runs, 'decode_tps', 1)}",
            f"{s['ttft_s'] * 1000:.0f} {spread(runs, 'ttft_s', 1000)}",
            f"{s['e2e_s']:.2f}",
            "/".join(map(str, s["prompt_tokens"])),
            "/".join(map(str, s["tokens"])),
            f"{s['ratio_decode']:.3f}",
            f"{s['ratio_ttft']:.2f}",
            "yes" if s["text_matches_raw"] else "NO",
            f"{max(r['other_cpu'] for r in runs):.0%}",  # the busiest run
        )
    console = Console(width=160)
    console.print(table)
    if busy := sum(r["other_cpu"] > args.max_other for runs in results.values() for r in runs):
        console.print(f"[red]{busy} run(s) kept with other CPU > {args.max_other:.0%} (--attempts ran out)[/]")
    gap = (summary["multiturn"]["ratio_decode"] - 1) * 100
    verdict = "within" if gap >= -5 else "NOT within"
    console.print(f"multiturn/raw decode = {summary['multiturn']['ratio_decode']:.3f} ({gap:+.1f} %): {verdict} 5 %")


def main() -> None:
    from multiturn import catalog
    from multiturn.settings import DEFAULT_MODEL, Settings

    default_model = str(Settings().models_dir / catalog.find(DEFAULT_MODEL).filename)
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--max-tokens", type=int, default=128)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--n-ctx", type=int, default=8192)
    p.add_argument("--n-batch", type=int, default=512, help="raw only: multiturn always uses 512")
    p.add_argument("--no-flash-attn", dest="flash_attn", action="store_false")
    p.add_argument("--model", default=default_model)
    p.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated subset of " + ",".join(CONFIGS))
    p.add_argument("--max-other", type=float, default=0.1, help="rerun a worker if other processes used more CPU")
    p.add_argument("--attempts", type=int, default=5, help="runs per measurement at most (see --max-other)")
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    p.add_argument("--worker", choices=CONFIGS, help=argparse.SUPPRESS)
    args = p.parse_args()

    if args.worker == "multiturn":
        print(json.dumps(asyncio.run(worker_multiturn(args))))
        return
    if args.worker:
        print(json.dumps(worker_raw(args, chat=args.worker == "raw-chat")))
        return

    configs = [c for c in args.configs.split(",") if c]
    if "raw" not in configs or "multiturn" not in configs:
        p.error("--configs must include raw and multiturn")
    results: dict[str, list[dict[str, Any]]] = {c: [] for c in configs}
    for i in range(args.rounds):
        for c in configs:  # interleaved: raw, multiturn, raw-chat, raw, multiturn, ...
            results[c].append(spawn(c, args))
            if not args.json:
                print(f"round {i + 1} {c:<10} {results[c][-1]['decode_tps']:.1f} tok/s", file=sys.stderr)
    summary = summarize(results)
    settings = {k: getattr(args, k) for k in ("rounds", "max_tokens", "threads", "n_ctx", "n_batch", "flash_attn")}
    if args.json:
        report = {"settings": {**settings, "model": args.model, "system": SYSTEM, "prompt": PROMPT}}
        print(json.dumps(report | {"summary": summary, "runs": results}, indent=2))
    else:
        print_table(results, summary, args)


if __name__ == "__main__":
    main()
