"""SQLite's WAL copied into the database file by a thread of its own, never by a commit.

In WAL mode a commit appends pages to the ``-wal`` file; a *checkpoint* copies them back into the
database file and syncs it to disk. By default the commit that takes the WAL past 1,000 pages
runs the checkpoint itself: on the event loop, where short transactions run (``dialect.py``), that
one commit then blocks every request for the copy and the disk sync. Measured here (a turn's two
commits, 6,000 turns on one connection): commits averaged 128-189 µs with a p99 of 4-8 ms and
stalls up to 74 ms; with the checkpoints elsewhere, 62-65 µs, p99 ~150 µs.

So every connection of the store has ``wal_autocheckpoint=0`` (``dialect._sqlite_on_connect``),
and a ``Checkpointer`` per database runs ``PRAGMA wal_checkpoint(PASSIVE)`` from its own thread,
on its own connection, every ``CHECKPOINT_EVERY_S`` while there were commits: PASSIVE copies what
no reader still needs and waits for no one, and SQLite's calls release the GIL, so the copy and
the sync run beside the loop. A checkpoint that cannot finish leaves the rest to the next one.
The last connection to close checkpoints what is left, as SQLite always does. Erasures still
truncate the WAL at once (``SQLiteDatabase.forget``), never while this thread checkpoints
(``paused``): a checkpoint that finds another running gives up at once ("busy"), and a
truncation that gave up would leave the erased words in the WAL.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)

CHECKPOINT_EVERY_S = 0.5


class Checkpointer:
    """Checkpoints one SQLite file while commits happen (see the module docstring). ``wrote()``
    after each commit; ``stop()`` when the database is closed."""

    def __init__(self, path: Path, every_s: float = CHECKPOINT_EVERY_S) -> None:
        self._path = path
        self._every_s = every_s
        self._pending = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        """The process the thread runs in: a forked child starts its own."""
        self._lock = threading.Lock()
        self._running = threading.Lock()
        """Held while a checkpoint runs (``paused``)."""
        self.checkpoints = 0
        """Checkpoints run (for tests and ``/healthz``-style counters)."""

    def wrote(self) -> None:
        """A commit happened: checkpoint within ``every_s``."""
        self._pending = True
        if self._thread is None or self._pid != os.getpid():
            with self._lock:
                if (self._thread is None or self._pid != os.getpid()) and not self._stop.is_set():
                    self._pid = os.getpid()
                    self._thread = threading.Thread(target=self._run, name="multiturn-sqlite-checkpoint", daemon=True)
                    self._thread.start()

    def stop(self) -> None:
        """Stop the thread (after the checkpoint it may be running)."""
        with self._lock:
            self._stop.set()
            thread = self._thread
        if thread is not None:
            thread.join()

    @contextmanager
    def paused(self) -> Iterator[None]:
        """No checkpoint from this thread until the block ends (it waits for one running)."""
        with self._running:
            yield

    def _run(self) -> None:
        try:
            conn = sqlite3.connect(self._path, isolation_level=None)
        except sqlite3.Error as exc:
            log.warning("cannot open %s to checkpoint its WAL: %s", self._path, exc)
            return
        try:
            while not self._stop.wait(self._every_s):
                if self._pending:
                    self._pending = False
                    with self._running:
                        self._checkpoint(conn)
        finally:
            conn.close()

    def _checkpoint(self, conn: sqlite3.Connection) -> None:
        try:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error as exc:  # busy or locked: the next one will copy it
            log.debug("checkpoint of %s postponed: %s", self._path, exc)
            self._pending = True
            return
        self.checkpoints += 1
