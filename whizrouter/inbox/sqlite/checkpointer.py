"""The sqlite inbox's checkpointer: a thread that copies the WAL into the database file.

A checkpoint fsyncs the file; done by the writer thread, it would hold up every caller of
the group it runs in for that long. The checkpointer runs PASSIVE checkpoints on its own
connection after commits, at most one every ``CHECKPOINT_PAUSE``, so no commit waits for
those fsyncs; the writer only checkpoints itself if the WAL outgrows its
``wal_autocheckpoint`` (``whizrouter.inbox.sqlite.connection``).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

from whizrouter.log_throttle import LogThrottle

# The inbox's own logger: one name to configure for everything the sqlite inbox reports.
logger = logging.getLogger("whizrouter.inbox.sqlite")

# At most one checkpoint every 20 ms. A checkpoint fsyncs, and the writer's appends to the WAL
# wait behind that fsync on the file system: the less each one has to flush, the shorter the
# wait. In the benchmark, 200 ms between checkpoints put sqlite's p99 at 14 ms, 1 s at 32 ms,
# 20 ms at 9 ms, for the same throughput; back to back (0 s) cost 15 % of it.
CHECKPOINT_PAUSE = 0.02


class Checkpointer:
    """A thread that copies committed pages from the WAL into the database file.

    A checkpoint fsyncs the file; done by the writer, it would hold up every caller of the
    group for that long. A PASSIVE checkpoint on its own connection does not block the writer,
    which only checkpoints itself if the WAL outgrows its ``wal_autocheckpoint``.

    Args:
        path: the database file.
        description: names the inbox in logs.
        busy_timeout: seconds to wait for a lock when connecting.
    """

    def __init__(self, path: Path, description: str, *, busy_timeout: float) -> None:
        self._path = path
        self._description = description
        self._busy_timeout = busy_timeout
        self._due = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: Checkpoints that failed (a full disk fails one after every commit).
        self.failures = 0
        self._failure_log = LogThrottle()

    def start(self) -> None:
        """Start the thread; it waits for ``request``."""
        self._due.clear()
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._main, name="whizrouter-inbox-checkpoint", daemon=True
        )
        self._thread.start()

    def request(self) -> None:
        """Ask for a checkpoint soon (after a commit); cheap, never blocks."""
        self._due.set()

    def stop(self) -> None:
        """End the thread and wait for it (a running checkpoint finishes first)."""
        self._stop.set()
        self._due.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join()

    def _failed(self, exc: sqlite3.Error) -> None:
        # While the disk is full every commit asks for a checkpoint that fails: a line
        # every 10 s, with how many failed meanwhile.
        self.failures += 1
        if self._failure_log.due():
            logger.warning(
                "sqlite inbox %s: checkpoint failed (%d so far): %s; the WAL file grows until "
                "one succeeds, free disk space",
                self._description,
                self.failures,
                exc,
            )

    def _main(self) -> None:
        try:
            conn = sqlite3.connect(self._path, timeout=self._busy_timeout, isolation_level=None)
        except sqlite3.Error as exc:  # the writer's own fallback checkpoints still run
            logger.warning("sqlite inbox %s: no background checkpoints: %s", self._description, exc)
            return
        try:
            while True:
                self._due.wait()
                if self._stop.is_set():
                    return
                self._due.clear()
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error as exc:
                    self._failed(exc)
                self._stop.wait(CHECKPOINT_PAUSE)
        finally:
            conn.close()
