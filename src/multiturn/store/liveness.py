"""Which processes are alive, and word of turns that ended in other processes.

Every process that runs stored turns writes them under an *owner token*; a turn whose owner is
dead is closed by whichever process finds it (``TurnStore.close_abandoned``). Liveness must be
exact, not a timeout: a restarted process closes what its predecessor left open at once, and a
process that is merely slow is never mistaken for a dead one.

- **PostgreSQL** (any number of machines): the process holds a session-level advisory lock, on a
  connection of its own, for as long as it lives; the lock's key is its token (``pg:<key>``).
  The server drops the lock when the process dies or its connection is cut, and ``pg_locks``
  lists the keys held, so one query tells which owners live. The same connection ``LISTEN``s on
  ``multiturn_turns``: the transaction that ends a turn sends ``NOTIFY`` with the conversation's
  id, so a turn queued in one process starts as soon as the turn ahead of it ends in another.
  PostgreSQL is the only thing gateways share: no other coordination exists between them.
- **SQLite** (one machine): the token is ``sqlite:<host>:<pid>:<start>`` (``start``: the boot and
  the process's start time, so a reused pid is not mistaken for the old process); an owner on this
  host is alive while its process is. An owner on another host counts as alive: SQLite on a shared
  file system is not supported. There are no cross-process notifications: a turn waiting on
  another process's turn polls.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Callable, Iterable
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection

log = logging.getLogger(__name__)

CHANNEL = "multiturn_turns"
"""The PostgreSQL channel on which a turn's end is announced (payload: its conversation id)."""

_LIVE_KEYS = sa.text(
    "SELECT (classid::bigint << 32) | objid::bigint AS key FROM pg_locks "
    "WHERE locktype = 'advisory' AND objsubid = 1 AND granted "
    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)
_RECONNECT_DELAY_S = 1.0

Wake = Callable[[str], None]
"""Called with a conversation id when a turn of it ended in another process."""


class Liveness:
    """This process as an owner of turns, and a judge of other owners. SQLite flavour (see the
    module docstring); ``PostgresLiveness`` overrides what differs."""

    notifies = False
    """Whether turn ends in other processes are announced (else waiters poll)."""

    def __init__(self) -> None:
        self.host = socket.gethostname()
        self.token = f"sqlite:{self.host}:{os.getpid()}:{_process_start(os.getpid())}"

    async def start(self, wake: Wake) -> None:
        """Begin owning turns; ``wake`` hears of turns ended elsewhere (when ``notifies``)."""

    async def close(self) -> None:
        """Stop owning turns (this process's open turns become another's to close)."""

    def alive(self, conn: Connection, owners: Iterable[str]) -> set[str]:
        """Which of ``owners`` are running processes (this one always is)."""
        live: set[str] = set()
        for owner in set(owners):
            kind, _, rest = owner.partition(":")
            host, _, process = rest.partition(":")
            pid, _, start = process.partition(":")
            if owner == self.token or kind != "sqlite" or host != self.host or not pid.isdigit():
                live.add(owner)  # ours, or not ours to judge (another host, another scheme)
            elif _process_start(int(pid)) == start:
                live.add(owner)
        return live


class PostgresLiveness(Liveness):
    notifies = True

    def __init__(self, conninfo: str) -> None:
        super().__init__()
        self._conninfo = conninfo
        self._key = secrets.randbits(63)
        self.token = f"pg:{self._key}"
        self._task: asyncio.Task[None] | None = None
        self._held = asyncio.Event()

    async def start(self, wake: Wake) -> None:
        self._task = asyncio.get_running_loop().create_task(self._hold(wake), name="multiturn-liveness")
        held = asyncio.ensure_future(self._held.wait())
        try:
            await asyncio.wait({held, self._task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            held.cancel()
        if self._task.done():  # it could not connect even once: say why
            self._task.result()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def alive(self, conn: Connection, owners: Iterable[str]) -> set[str]:
        wanted = set(owners)
        if not any(owner.startswith("pg:") for owner in wanted):
            return wanted
        held = {f"pg:{key}" for key in conn.execute(_LIVE_KEYS).scalars()}
        return {owner for owner in wanted if owner in held or not owner.startswith("pg:")}

    async def _hold(self, wake: Wake) -> None:
        """Hold the lock and listen, on one connection; reconnect if it drops."""
        import psycopg  # the postgres extra; SQLStore has already needed it to get here

        first = True
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True) as conn:
                    await conn.execute("SELECT pg_advisory_lock(%s)", (self._key,))
                    await conn.execute(f"LISTEN {CHANNEL}")
                    if not first:
                        log.warning("liveness connection restored; this process owns its turns again")
                    first = False
                    self._held.set()
                    async for note in conn.notifies():
                        wake(note.payload)
            except asyncio.CancelledError:
                raise
            except psycopg.Error as exc:
                if first:
                    raise
                self._held.clear()
                log.warning("liveness connection lost (%s); reconnecting", str(exc).strip().splitlines()[0])
                await asyncio.sleep(_RECONNECT_DELAY_S)


def _process_start(pid: int) -> str:
    """The boot and start time of process ``pid`` (``""`` when there is none); on systems without
    ``/proc``, ``"?"`` for any running process (a reused pid then counts as alive)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()[:8]
        return f"{boot}-{int(stat.rsplit(b')', 1)[1].split()[19])}"
    except FileNotFoundError:
        if not Path("/proc/self/stat").exists():
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return ""
            except PermissionError:
                return "?"
            return "?"
        return ""
    except (OSError, ValueError, IndexError):
        return ""
