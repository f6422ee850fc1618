"""The sqlite inbox's send journal: a table in the inbox file, written through the writer.

Schema (added to the file by ``CREATE TABLE IF NOT EXISTS``; older files gain it on open)::

    send_journal(event_key, slot, request_hash, message_id, PRIMARY KEY (event_key, slot))

A row is written in the writer's group commit before the send returns to the handler
(``whizrouter.send_journal``), and deleted in the same transaction that deletes its
acknowledged event, or its dropped dead letter. The keys of the events that have rows are kept
in memory (read at open, then kept up to date by this process, the only consumer of the
file), so that an event with none, every first run, is answered without touching the file,
and an ack costs nothing more while no event has rows.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable

from whizrouter.inbox.base import JournalEntry
from whizrouter.inbox.sqlite.seen import IN_JSON

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
_RECORD = (
    "INSERT OR REPLACE INTO send_journal(event_key, slot, request_hash, message_id) "
    "VALUES (?, ?, ?, ?)"
)
_DELETE_OF = (
    "DELETE FROM send_journal WHERE event_key IN "
    f"(SELECT key FROM events WHERE state = {{state}} AND seq {IN_JSON}) RETURNING event_key"
)
#: Deletes the rows of the pending events whose seqs a JSON array names (an ack).
DELETE_OF_PENDING = _DELETE_OF.format(state=0)
#: Deletes the rows of the dead letters whose seqs a JSON array names (a drop).
DELETE_OF_DEAD = _DELETE_OF.format(state=2)


class SqliteJournal:
    """The send journal's jobs, and which events have rows.

    Attributes:
        keys: the keys of the events with rows, as far as this process knows (a superset
            after another process dropped dead letters, which is harmless).
    """

    __slots__ = ("keys",)

    def __init__(self) -> None:
        self.keys: set[str] = set()

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
    def record_job(
        event_key: str, slot: str, entry: JournalEntry
    ) -> Callable[[sqlite3.Connection], None]:
        """A write job: one row, replacing the slot's earlier one."""
        params = (event_key, slot, entry.request_hash, entry.message_id)

        def write(conn: sqlite3.Connection) -> None:
            conn.execute(_RECORD, params)

        return write

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
