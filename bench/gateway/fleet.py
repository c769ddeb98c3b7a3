"""The fake upstream and one or more ``multiturn serve`` processes on one database, started and
stopped together.

``servers.Server.start`` pins every server to CPU 0 (``taskset -c 0``). Unless ``pin`` is set,
each server's command is wrapped in ``taskset -c 0-<n-1>``, which widens the affinity back to
every CPU before the server starts (an inner ``taskset`` may widen what an outer one set): the
upstream, the gateways, PostgreSQL and the load generator then share the machine's cores as the
scheduler sees fit. With ``pin`` the servers stay on CPU 0 and the caller runs the load
generator on CPU 1.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from .servers import Server, multiturn_server, proc_status, request, upstream_server

ALL_CPUS = f"0-{(os.cpu_count() or 1) - 1}"


def _unpinned(server: Server, pin: bool) -> Server:
    if not pin:
        server.cmd = ["taskset", "-c", ALL_CPUS, *server.cmd]
    return server


def gateway(
    upstream_port: int,
    db: str,
    name: str,
    pin: bool = False,
    src: Path | None = None,
    alias: dict[str, Any] | None = None,
) -> Server:
    """``multiturn serve`` with the alias ``qwen-plus`` on the upstream and the store ``db``
    (a SQLite path or a PostgreSQL DSN); ``alias`` adds settings to the alias (e.g.
    ``{"context_window": 2048}``). With ``src``, the ``multiturn`` package is imported from that
    directory (a snapshot of ``src/``) instead of the venv's editable install."""
    server = multiturn_server(upstream_port, Path("unused"))
    server.name = name
    server.env["MULTITURN_DB"] = db
    if alias:
        models = orjson.loads(server.env["MULTITURN_MODELS"])
        models["qwen-plus"] |= alias
        server.env["MULTITURN_MODELS"] = orjson.dumps(models).decode()
    if src is not None:
        server.env["PYTHONPATH"] = str(src)
    return _unpinned(server, pin)


@dataclass
class Fleet:
    """U and the gateways ``M1``..``Mk`` (one ``multiturn serve`` each) on one database."""

    workdir: Path
    pin: bool = False
    src: Path | None = None
    upstream: Server | None = None
    gateways: list[Server] = field(default_factory=list)

    def start_upstream(self) -> Server:
        self.upstream = _unpinned(upstream_server(), self.pin)
        self.upstream.start(self.workdir)
        return self.upstream

    def start_gateways(
        self, db: str, count: int = 1, logdir: Path | None = None, alias: dict[str, Any] | None = None
    ) -> list[Server]:
        """Start ``count`` gateways on ``db`` one after the other (the first migrates the store);
        their logs go to ``logdir`` (default: the fleet's directory) as ``M<k>.log``; ``alias``
        adds settings to every gateway's ``qwen-plus`` alias."""
        assert self.upstream is not None, "start the upstream first"
        logdir = logdir or self.workdir
        logdir.mkdir(parents=True, exist_ok=True)
        for k in range(1, count + 1):
            server = gateway(self.upstream.port, db, f"M{k}", self.pin, self.src, alias)
            server.start(logdir)
            server.facts["log"] = str(logdir / f"{server.name}.log")
            self.gateways.append(server)
            status, body, _ = request(server.port, "GET", "/healthz")
            if status != 200:
                raise RuntimeError(f"{server.name}: /healthz answered {status}: {body[:200]!r}")
            server.facts["after_start"] = proc_status(server.pid)
        return self.gateways

    @property
    def urls(self) -> list[str]:
        return [f"http://127.0.0.1:{s.port}" for s in self.gateways]

    @property
    def pids(self) -> dict[str, int]:
        named = {s.name: s.pid for s in self.gateways}
        if self.upstream is not None:
            named["U"] = self.upstream.pid
        return named

    def stop_gateways(self) -> dict[str, int | None]:
        exits = {s.name: s.stop() for s in reversed(self.gateways)}
        self.gateways = []
        return exits

    def stop(self) -> dict[str, int | None]:
        exits = self.stop_gateways()
        if self.upstream is not None:
            exits["U"] = self.upstream.stop()
            self.upstream = None
        return exits
