"""Rebuild a cache benchmark's table from the store the run wrote, for a run that did not finish.

``multiturn bench cache`` reports at the end of a run; a run that is stopped (or stalls) leaves
its temporary SQLite store behind (``/tmp/multiturn-bench-cache-*/bench.db``). Every assistant
item there carries the backend's usage (prompt and cached tokens, exactly what the harness
reads from the reply) and the planner's context report, so the per-turn numbers can be read
back. Turn times are the gap between a turn's user and assistant items (the answer's wall time
less a few milliseconds); TTFT is not stored, and shows as "—".

    .venv/bin/python bench/cache_from_store.py STORE.db [--turns N] [--n-ctx 2048] [--max-tokens 24]

Conversations are the harness's own ("bench cache: <policy>"), in the order they were run.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
from dataclasses import replace

from multiturn.bench.cache import BenchConfig, CacheBench, PolicyRun, Turn, resolve_policies
from multiturn.bench.cache_report import to_markdown

PREFIX = "bench cache: "


def _turns(db: sqlite3.Connection, conversation_id: str) -> list[Turn]:
    rows = db.execute(
        "SELECT id, role, usage, context_report, created_at, status FROM items"
        " WHERE conversation_id = ? AND role IN ('user', 'assistant') ORDER BY created_at, rowid",
        (conversation_id,),
    ).fetchall()
    turns: list[Turn] = []
    users: list[str] = []
    asked_at = 0
    for item_id, role, usage, report_json, created_at, status in rows:
        if role == "user":
            users.append(item_id)
            asked_at = created_at
            continue
        used = json.loads(usage or "{}")
        report = json.loads(report_json or "{}")
        kept = set(report.get("kept", ()))
        earlier = users[:-1]
        left_out = sum(1 for user in earlier if user not in kept)
        turns.append(
            Turn(
                index=len(turns) + 1,
                prompt_tokens=int(used.get("prompt_tokens", 0)),
                cached_tokens=int(used.get("cached_tokens", 0)),
                completion_tokens=int(used.get("completion_tokens", 0)),
                rounds_sent=len(earlier) - left_out + 1,
                rounds_left_out=left_out,
                summarized=len(report.get("summarized", ())),
                recalled=len(report.get("recalled", ())),
                context_tokens=int(report.get("tokens", 0)),
                seconds=(created_at - asked_at) / 1000,
                ttft=None,
                status=status,
            )
        )
    return turns


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store")
    parser.add_argument("--turns", type=int, default=150, help="turns the run was asked for")
    parser.add_argument("--n-ctx", type=int, default=2048)
    parser.add_argument("--max-tokens", type=int, default=24)
    args = parser.parse_args()
    db = sqlite3.connect(f"file:{args.store}?mode=ro", uri=True)
    found = db.execute(
        "SELECT id, title FROM conversations WHERE title LIKE ? ORDER BY created_at", (PREFIX + "%",)
    ).fetchall()
    if not found:
        raise SystemExit(f"cache_from_store: no benchmark conversation in {args.store}")
    names = [title.removeprefix(PREFIX) for _, title in found]
    runs = []
    for (conversation_id, _), (name, policy) in zip(found, resolve_policies(names), strict=True):
        turns = _turns(db, conversation_id)
        stopped = None if len(turns) >= args.turns else f"turn {len(turns) + 1}: not run (the run was stopped)"
        runs.append(PolicyRun(name, policy, tuple(turns), error=stopped))
    config = replace(
        BenchConfig(), turns=args.turns, policies=tuple(names), n_ctx=args.n_ctx, max_tokens=args.max_tokens
    )
    result = CacheBench(config, "qwen2.5-coder-0.5b", {"compaction": True, "recall": True}, 0.0, tuple(runs))
    text = to_markdown(result, command=f"python bench/cache_from_store.py {args.store}")
    print(text.replace("; model load 0.0 s.", "; rebuilt from the run's store."), end="")


if __name__ == "__main__":
    main()
