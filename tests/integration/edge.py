"""What the edge-validation tests share: a real ``multiturn serve`` on SQLite or PostgreSQL in
front of the fake upstream (the requests refused never reach it; the accepted ones are answered
at once), raw HTTP calls, and a snapshot of every stored row to prove that nothing was written."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from support.fake_upstream import FakeUpstream
from support.pg import pg_schema
from support.serve import Server, start_serve

MODEL = "qwen-plus"
TURN_BYTES = 400_000
"""``max_turn_bytes`` of the servers under test: 10,000 short items fit, 400 KB of text does not."""
TABLES = ("conversations", "items", "responses", "turns")
CHAT = "/v1/chat/completions"
RESPONSES = "/v1/responses"
CONVERSATIONS = "/v1/conversations"
TEXT = "/api/v1/services/aigc/text-generation/generation"
MULTIMODAL = "/api/v1/services/aigc/multimodal-generation/generation"


@dataclass
class Edge:
    server: Server
    database: str

    def post(self, path: str, body: Any, *, raw: bytes | None = None) -> tuple[int, dict[str, Any]]:
        """POST JSON (``raw``: these exact bytes) over plain HTTP; (status, decoded body)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=60)
        try:
            data = raw if raw is not None else json.dumps(body).encode()
            conn.request("POST", path, data, {"Content-Type": "application/json"})
            response = conn.getresponse()
            return response.status, json.loads(response.read())
        finally:
            conn.close()

    def rows(self) -> dict[str, list[dict[str, Any]]]:
        """Every row of the tables a turn writes, read directly from the database."""
        url = self.database
        if url.startswith("postgresql"):
            url = sa.make_url(url).set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
        else:
            url = f"sqlite:///{url}"
        engine = sa.create_engine(url)
        try:
            with engine.connect() as conn:
                return {
                    t: [dict(r) for r in conn.execute(sa.text(f"SELECT * FROM {t} ORDER BY id")).mappings()]
                    for t in TABLES
                }
        finally:
            engine.dispose()


@contextmanager
def serving(kind: str, fake: FakeUpstream, home: Path) -> Iterator[Edge]:
    """A gateway on a fresh store of ``kind`` (``sqlite`` or ``postgres``) for the fake upstream."""
    with pg_schema() if kind == "postgres" else nullcontext(str(home / "gateway.db")) as database:
        models = {MODEL: {"backend": "upstream", "base_url": fake.base_url, "capabilities": ["text", "image"]}}
        env = {"MULTITURN_DB": database, "MULTITURN_EMBEDDER": "none", "MULTITURN_MAX_TURN_BYTES": str(TURN_BYTES)}
        server = start_serve(kind, home, models=models, env=env)
        try:
            yield Edge(server, database)
        finally:
            server.stop()
