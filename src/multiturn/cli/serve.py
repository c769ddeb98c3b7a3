"""``multiturn serve``: run the gateway on uvicorn.

API keys are off by default on a loopback address and required on any other interface: static
ones (``--api-key``) or keys stored with ``multiturn keys create``.
``--port 0`` picks a free port; the line printed at start-up names the real one. HTTP/1.1 is parsed
by httptools, with upgrade offers declined (``server/upgrade.py``: the JDK client's ``h2c``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from typing import Annotated

import typer

from ..errors import InvalidInput
from ..store.sql import SQLStore
from .models import ensure_pulled
from .options import Db, ModelPath, settings


def serve(
    host: Annotated[
        str | None, typer.Option(metavar="HOST", help="Interface to bind [default: 127.0.0.1] [env: MULTITURN_HOST]")
    ] = None,
    port: Annotated[
        int | None, typer.Option(metavar="PORT", help="Port; 0 picks a free one [default: 8000] [env: MULTITURN_PORT]")
    ] = None,
    api_key: Annotated[
        list[str] | None,
        typer.Option(
            "--api-key",
            metavar="KEY",
            help="Accept this Bearer key (repeatable) [env: MULTITURN_API_KEYS, a JSON list]",
        ),
    ] = None,
    db: Db = None,
    model_path: ModelPath = None,
    access_log: Annotated[bool, typer.Option(help="One JSON line per request on stderr")] = True,
) -> None:
    """Serve the OpenAI-compatible and DashScope-native APIs."""
    import uvicorn

    from ..server import create_app
    from ..server.upgrade import UpgradeDecliningProtocol

    s = settings(db=db, model_path=model_path)
    overrides = {"host": host, "port": port, "api_keys": api_key or None}
    s = s.model_copy(update={k: v for k, v in overrides.items() if v is not None})
    if not s.api_keys and not _is_loopback(s.host) and not asyncio.run(_stored_keys(s.database_url)):
        raise InvalidInput(
            f"binding to {s.host} exposes the gateway beyond this machine: give it API keys "
            "(--api-key KEY, MULTITURN_API_KEYS='[\"KEY\"]' or `multiturn keys create`)"
        )
    if any(alias.backend == "embedded" for alias in s.models.values()):
        from rich.console import Console

        ensure_pulled(s, Console(stderr=True))
    sock = _bind(s.host, s.port)
    real_port = sock.getsockname()[1]
    if access_log:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
        logging.getLogger("multiturn.access").setLevel(logging.INFO)
    typer.echo(
        f"multiturn serve listening on http://{s.host}:{real_port} "
        f"(OpenAI-compatible: /v1 and /compatible-mode/v1; DashScope: /api/v1)",
        err=False,
    )
    config = uvicorn.Config(
        create_app(s),
        loop="uvloop",
        http=UpgradeDecliningProtocol,  # httptools, answering h2c offers (the JDK client's) over HTTP/1.1
        access_log=False,
        log_level="warning",
        timeout_graceful_shutdown=5,
    )
    uvicorn.Server(config).run(sockets=[sock])


async def _stored_keys(url: str) -> bool:
    store = SQLStore(url)
    try:
        await store.migrate()
        return await store.has_api_keys()
    finally:
        await store.close()


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise InvalidInput(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    sock.listen(2048)  # connections made as soon as the address is printed wait in the backlog
    sock.set_inheritable(True)
    return sock
