"""The sqlite inbox's read-write connection, and what to tell the operator when the file fails.

The writer thread opens the one connection that reads and writes, in WAL mode (readers and
the writer do not block each other), with a large page cache for the dedupe index. Storage
errors say what to do about them: free disk space, make the file writable again, find the
process that holds a write lock; and a healthy file that cannot be written is never to be
moved aside, since that would strand its events.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path

from whizrouter.errors import InboxError

# The inbox's own logger: one name to configure for everything the sqlite inbox reports.
logger = logging.getLogger("whizrouter.inbox.sqlite")

# The writer only checkpoints itself (stalling its callers) if the WAL outgrows this many
# pages; normally the checkpointer copies it into the database file first.
WAL_PAGES_FALLBACK = 8000


def connect(
    path: Path,
    *,
    synchronous: str,
    busy_timeout: float,
    statements: int,
    prepare: Callable[[sqlite3.Connection], None],
) -> sqlite3.Connection:
    """Open the inbox file for reading and writing and let ``prepare`` set up the schema.

    Args:
        path: the database file.
        synchronous: ``normal`` or ``full``, the connection's ``PRAGMA synchronous``.
        busy_timeout: seconds to wait for another connection's lock.
        statements: prepared statements the connection caches.
        prepare: runs on the new connection; a ``sqlite3.Error`` it raises becomes an
            ``InboxError`` that says what to do.

    Raises:
        InboxError: the file cannot be opened or used; the message says what to do.
    """
    try:
        conn = sqlite3.connect(
            path, timeout=busy_timeout, isolation_level=None, cached_statements=statements
        )
    except sqlite3.Error as exc:
        raise InboxError(
            f"cannot open the sqlite inbox {path}: {exc}; check that the directory "
            "exists and is writable, or set WHIZROUTER_INBOX"
        ) from exc
    try:
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode != "wal":
            logger.warning(
                "sqlite inbox %s runs in journal mode %r, not WAL (a network file "
                "system?): still durable, but readers and the writer block each other",
                path,
                mode,
            )
        conn.execute(f"PRAGMA synchronous = {synchronous.upper()}")
        conn.execute(f"PRAGMA wal_autocheckpoint = {WAL_PAGES_FALLBACK}")
        # Dedupe keys land on random pages of a large index: cache more than the 2 MB default.
        conn.execute("PRAGMA cache_size = -16384")
        prepare(conn)
    except BaseException as exc:
        conn.close()
        if isinstance(exc, sqlite3.OperationalError):
            # The file may be a healthy inbox the process cannot write: moving it aside
            # would strand its events, so say what to fix instead.
            raise InboxError(
                f"cannot use the sqlite inbox {path}: {exc}; {_open_advice(str(exc), path)}"
            ) from exc
        if isinstance(exc, sqlite3.Error):
            raise InboxError(
                f"cannot use the sqlite inbox {path}: {exc}; if the file is not a "
                "whizrouter inbox or is damaged, move it aside (a new one is created) or "
                "point WHIZROUTER_INBOX at another file"
            ) from exc
        raise
    return conn


def advice(problem: str, path: Path) -> str:
    """What to do about a storage error of the inbox file ``path``."""
    if "full" in problem:
        return f"free disk space on the file system of {path}"
    if "readonly" in problem or "read-only" in problem:
        return f"make {path} and its directory writable again"
    if "locked" in problem or "busy" in problem:
        return f"another process holds a write lock on {path} for too long"
    return f"check the disk that holds {path}"


def _open_advice(problem: str, path: Path) -> str:
    """What to do when an existing inbox file cannot be opened for writing."""
    if "full" in problem or "locked" in problem or "busy" in problem:
        return advice(problem, path)
    return (
        f"check that {path} and its directory are writable by this user and that the file "
        "system is not read-only; the file keeps its events, so do not move it aside"
    )
