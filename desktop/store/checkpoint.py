"""WAL checkpoints on a thread of their own, so a commit never waits for one.

In WAL mode a commit appends to the ``-wal`` file; a *checkpoint* copies those pages back into the database
file and syncs it. SQLite's default runs the checkpoint inside the commit that takes the WAL past 1000 pages,
on the committing thread, i.e. our writer: a page of 100 pulled patient edits (≈ 680 WAL pages with their
search index and history) then waited 20-30 ms for a checkpoint every other page (BENCHMARKS.md, P2).

`Checkpointer` runs ``PRAGMA wal_checkpoint(PASSIVE)`` on its own connection once commits pause for `QUIET_S`
(`poke` after each commit), while the writer goes on: a passive checkpoint never blocks a reader or the
writer, and copies what no open reader still needs (the rest goes next time). Waiting for a pause folds a
burst of commits (a first sync's pages, an import) into one checkpoint instead of syncing the file after
each. The engine keeps SQLite's automatic checkpoint as a bound (`desktop.store.engine.WAL_AUTOCHECKPOINT_PAGES`),
so the WAL stays bounded while commits never pause, or if this thread falls behind.
"""

from __future__ import annotations

import logging
import sqlite3
import threading

from sqlalchemy.engine import Engine

log = logging.getLogger(__name__)
THREAD_NAME = "integmed-checkpoint"
QUIET_S = 0.1
"""Checkpoint once no commit came for this long."""


class Checkpointer:
    """A thread that checkpoints the WAL after commits; `close` it before disposing of the engine."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._wake = threading.Event()
        self._closing = False
        self._thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)
        self._thread.start()

    def poke(self) -> None:
        """A commit happened: checkpoint once commits pause."""
        self._wake.set()

    def close(self) -> None:
        """Stop the thread (after the checkpoint in progress, if any)."""
        self._closing = True
        self._wake.set()
        self._thread.join()

    def _run(self) -> None:
        conn = None
        try:
            while True:
                self._wake.wait()
                self._wake.clear()
                while not self._closing and self._wake.wait(QUIET_S):  # another commit: wait for the pause
                    self._wake.clear()
                if self._closing:
                    return
                if conn is None:
                    conn = self._engine.raw_connection()  # autocommit (engine's connect listener): no BEGIN
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except sqlite3.Error as exc:  # never fatal: SQLite's own automatic checkpoint still bounds the WAL
                    log.warning("WAL checkpoint failed: %s", exc)
        finally:
            if conn is not None:
                conn.close()
