"""The sqlite inbox's send journal: a table in the inbox file, written through the writer.

Schema (added to the file by ``CREATE TABLE IF NOT EXISTS``; older files gain it on open)::

    send_journal(event_key, slot, request_hash, message_id, PRIMARY KEY (event_key, slot))

Rows are buffered on the loop and written as one job: by the next job any caller queues (an
append, the event's own ack, a read), or by a timer ``FLUSH_DELAY`` after the first, or at
once when a caller awaits one (the run's next send, which must not start before it). The
buffer is written ahead of the job that flushed it, in the same group commit, so an ack never
overtakes its event's rows. A row is deleted in the same transaction that deletes its
acknowledged event, or its dropped dead letter. The keys of the events that have rows are kept
in memory (read at open, then kept up to date by this process, the only consumer of the
file), so that an event with none, every first run, is answered without touching the file,
and an ack costs nothing more while no event has rows.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable, Generator, Iterable
from typing import Any

import orjson

from whizrouter.errors import InboxError
from whizrouter.inbox.base import JournalEntry
from whizrouter.inbox.sqlite.seen import IN_JSON

logger = logging.getLogger("whizrouter.inbox.sqlite")

# How long a buffered row waits for another job to carry it. A journal row written as a job
# of its own made a journaled reply, sent one at a time, 1.9x a plain one: each job costs the
# loop thread GIL hand-offs with the writer thread on top of the writer's own work. Carried
# with the rows of 10 ms (or sooner by any other job), about 1.15x (benchmarks/README.md).
# The crash window this adds (docs/exactly-one-reply.md) is small beside the one no journal
# can close, the provider's round trip before its 2xx reaches us.
FLUSH_DELAY = 0.01

Enqueue = Callable[[Callable[[sqlite3.Connection], None]], "asyncio.Future[None]"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS send_journal (
    event_key TEXT NOT NULL,
    slot TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    message_id TEXT NOT NULL,
    PRIMARY KEY (event_key, slot)
) WITHOUT ROWID;
"""

_KEYS = "SELECT DISTINCT event_key FROM send_journal"
_ENTRIES = "SELECT slot, request_hash, message_id FROM send_journal WHERE event_key = ?"
# Every buffered row in one statement, from a JSON array of [key, slot, hash, id] arrays: one
# step of sqlite, where executemany would step once per row, and hand the GIL to the loop
# thread and back each time.
_RECORD = (
    "INSERT OR REPLACE INTO send_journal(event_key, slot, request_hash, message_id) "
    "SELECT value->>0, value->>1, value->>2, value->>3 FROM json_each(?)"
)
_DELETE_OF = (
    "DELETE FROM send_journal WHERE event_key IN "
    f"(SELECT key FROM events WHERE state = {{state}} AND seq {IN_JSON}) RETURNING event_key"
)
#: Deletes the rows of the pending events whose seqs a JSON array names (an ack).
DELETE_OF_PENDING = _DELETE_OF.format(state=0)
#: Deletes the rows of the dead letters whose seqs a JSON array names (a drop).
DELETE_OF_DEAD = _DELETE_OF.format(state=2)


class Recorded:
    """Buffered journal rows: awaiting them writes the buffer now and waits for its commit."""

    __slots__ = ("_flush", "_future")

    def __init__(self, future: asyncio.Future[None], flush: Callable[[], None]) -> None:
        self._future = future
        self._flush = flush

    def __await__(self) -> Generator[Any, None, None]:
        if not self._future.done():
            self._flush()
        return self._future.__await__()


class SqliteJournal:
    """The send journal's jobs, its buffer of rows, and which events have rows.

    Args:
        description: names the inbox in logs.

    Attributes:
        keys: the keys of the events with rows or buffered rows, as far as this process
            knows (a superset after another process dropped dead letters, or after a write
            failed, which is harmless).
        enqueue: queues a job on the writer and returns its future (set at open).
    """

    __slots__ = ("_batch", "_rows", "_timer", "description", "enqueue", "keys")

    def __init__(self, description: str) -> None:
        self.description = description
        self.keys: set[str] = set()
        self.enqueue: Enqueue | None = None
        self._rows: list[tuple[str, str, str, str]] = []
        self._batch: asyncio.Future[None] | None = None  # resolved when the buffer commits
        self._timer: asyncio.TimerHandle | None = None

    @property
    def buffered(self) -> bool:
        """Whether rows wait to be written (a timer is then set)."""
        return self._timer is not None

    def record(self, event_key: str, slot: str, entry: JournalEntry) -> Recorded:
        """Buffer one row, replacing the slot's earlier one when it is written."""
        if self.enqueue is None:
            raise InboxError(f"the sqlite inbox {self.description} is not open")
        self.keys.add(event_key)
        self._rows.append((event_key, slot, entry.request_hash, entry.message_id))
        batch = self._batch
        if batch is None:
            loop = asyncio.get_running_loop()
            batch = self._batch = loop.create_future()
            self._timer = loop.call_later(FLUSH_DELAY, self.flush)
        return Recorded(batch, self.flush)

    def flush(self) -> None:
        """Queue the buffered rows as one job, ahead of whatever is queued next."""
        timer, batch, rows = self._timer, self._batch, self._rows
        if timer is None or batch is None:
            return
        timer.cancel()
        self._timer = self._batch = None
        self._rows = []

        params = (orjson.dumps(rows).decode(),)

        def write(conn: sqlite3.Connection) -> None:
            conn.execute(_RECORD, params)

        try:
            if self.enqueue is None:
                raise InboxError(f"the sqlite inbox {self.description} is not open")
            written = self.enqueue(write)
        except InboxError as exc:
            self._failed(batch, len(rows), exc)
            return
        written.add_done_callback(lambda done: self._written(done, batch, len(rows)))

    def _written(self, done: asyncio.Future[None], batch: asyncio.Future[None], rows: int) -> None:
        error = None if done.cancelled() else done.exception()
        if error is not None:
            self._failed(batch, rows, error)
        elif not batch.done():
            batch.set_result(None)

    def _failed(self, batch: asyncio.Future[None], rows: int, error: BaseException) -> None:
        logger.warning(
            "sqlite inbox %s: %d send journal row(s) could not be written (%s); those sends "
            "are sent again if their events run again after a restart",
            self.description,
            rows,
            error,
        )
        if not batch.done():
            batch.set_exception(error)
            batch.exception()  # logged above: awaited by a later send or by nobody

    def load(self, conn: sqlite3.Connection) -> None:
        """On the writer thread, at open: which events have rows."""
        self.keys = {row[0] for row in conn.execute(_KEYS)}

    @staticmethod
    def entries_job(event_key: str) -> Callable[[sqlite3.Connection], dict[str, JournalEntry]]:
        """A read job: the rows of one event, by slot."""

        def read(conn: sqlite3.Connection) -> dict[str, JournalEntry]:
            rows = conn.execute(_ENTRIES, (event_key,))
            return {slot: JournalEntry(digest, message_id) for slot, digest, message_id in rows}

        return read

    @staticmethod
    def deleting_job(
        of_events: str, events_sql: str, seqs: str
    ) -> Callable[[sqlite3.Connection], tuple[int, list[str]]]:
        """A write job: delete the rows of some events (``DELETE_OF_*``), then run
        ``events_sql`` on the same seqs (a JSON array), in one transaction.

        Returns (from the job): the rows ``events_sql`` changed, and the keys whose journal
        rows were deleted (for ``forget``).
        """

        def delete(conn: sqlite3.Connection) -> tuple[int, list[str]]:
            keys = [row[0] for row in conn.execute(of_events, (seqs,))]
            return conn.execute(events_sql, (seqs,)).rowcount, keys

        return delete

    def forget(self, keys: Iterable[str]) -> None:
        """On the loop, once the deletion committed: these events have no rows any more."""
        self.keys.difference_update(keys)
