"""Many input items at the edge: how long a request carrying N of them takes, accepted or refused.

A ``multiturn serve`` (alias ``qwen-plus`` -> the fake instant upstream ``gateway/upstream.py``)
on a fresh SQLite file and, when a DSN is given, on a fresh PostgreSQL schema. For each N, one
``POST /v1/responses`` whose ``input`` holds N short messages (stored: N input items and the
answer in one transaction, the items in one statement), then the same body on stateless chat
completions and on DashScope's text generation. Over ``max_input_items`` (default 10,000) each
is refused with a 400 before anything is stored; the script checks the store's item count.

    .venv/bin/python bench/edge_items.py [--n 1000,10000,10001,100000] [--pg-dsn DSN]
"""

from __future__ import annotations

import argparse
import os
import secrets
import sqlite3
import tempfile
from pathlib import Path

import orjson
import sqlalchemy as sa
from gateway.servers import multiturn_server, request, upstream_server

JSON = {"Content-Type": "application/json"}


def messages(n: int) -> list[dict[str, str]]:
    rows = [{"role": "user" if i % 2 == 0 else "assistant", "content": f"message number {i}"} for i in range(n - 1)]
    return [*rows, {"role": "user", "content": "Say hi."}]


def count_items(db: str) -> int:
    if "://" not in db:
        with sqlite3.connect(db) as conn:
            return int(conn.execute("SELECT count(*) FROM items").fetchone()[0])
    engine = sa.create_engine(sa.make_url(db).set(drivername="postgresql+psycopg"))
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT count(*) FROM items")).scalar_one())
    finally:
        engine.dispose()


def run(label: str, db: str, sizes: list[int], logdir: Path) -> None:
    upstream = upstream_server()
    upstream.start(logdir)
    gateway = multiturn_server(upstream.port, Path(db))
    gateway.env["MULTITURN_DB"] = db
    gateway.env["MULTITURN_EMBEDDER"] = "none"
    gateway.start(logdir)
    try:
        for n in sizes:
            body = messages(n)
            before = count_items(db)
            calls = [
                ("responses", "/v1/responses", {"model": "qwen-plus", "input": body}),
                ("chat", "/v1/chat/completions", {"model": "qwen-plus", "messages": body}),
                (
                    "dashscope",
                    "/api/v1/services/aigc/text-generation/generation",
                    {"model": "qwen-plus", "input": {"messages": body}},
                ),
            ]
            for name, path, payload in calls:
                data = orjson.dumps(payload)
                status, answer, seconds = request(gateway.port, "POST", path, data, JSON)
                note = "" if status == 200 else " " + answer[:90].decode(errors="replace")
                print(f"{label:8} N={n:>7} {name:10} {len(data) / 1e6:6.2f} MB  {status}  {seconds:7.3f} s{note}")
            stored = count_items(db) - before
            print(f"{label:8} N={n:>7} items stored by the stored turn: {stored}")
    finally:
        gateway.stop()
        upstream.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", default="1000,10000,10001,100000")
    parser.add_argument("--pg-dsn", default=os.environ.get("MULTITURN_TEST_PG_DSN", ""))
    args = parser.parse_args()
    sizes = [int(x) for x in args.n.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        run("sqlite", str(Path(tmp) / "edge.db"), sizes, Path(tmp))
        if args.pg_dsn:
            schema = f"edge_{secrets.token_hex(4)}"
            engine = sa.create_engine(sa.make_url(args.pg_dsn).set(drivername="postgresql+psycopg"))
            with engine.begin() as conn:
                conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
            try:
                run("postgres", f"{args.pg_dsn}?options=-csearch_path%3D{schema}", sizes, Path(tmp))
            finally:
                with engine.begin() as conn:
                    conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
                engine.dispose()


if __name__ == "__main__":
    main()
