"""Conversation state in the sqlite inbox file: one row per conversation.

The table is created beside the events (``SCHEMA``, part of the inbox's schema script); a
handler's write is applied in the same job, so the same transaction, as its event's
acknowledgement (``ack_job``): both commit, or neither. Rows older than ``state_ttl`` read as
absent and are deleted now and then by the acks' own transactions.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from whizrouter.inbox.stored_state import StateWrite, StoredState

SCHEMA = """
CREATE TABLE IF NOT EXISTS conversation_state (
    conversation TEXT PRIMARY KEY,
    state TEXT,
    data BLOB NOT NULL,
    seq INTEGER NOT NULL,
    updated_at REAL NOT NULL
) WITHOUT ROWID;
"""
SELECT = (
    "SELECT state, data, seq, updated_at FROM conversation_state "
    "WHERE conversation = ? AND updated_at >= ?"
)
UPSERT = (
    "INSERT INTO conversation_state(conversation, state, data, seq, updated_at) "
    "VALUES (?, ?, ?, ?, ?) ON CONFLICT(conversation) DO UPDATE SET state = excluded.state, "
    "data = excluded.data, seq = excluded.seq, updated_at = excluded.updated_at"
)
DELETE = "DELETE FROM conversation_state WHERE conversation = ?"
EXPIRE = "DELETE FROM conversation_state WHERE updated_at < ?"

#: Seconds between deletions of expired rows (by whichever ack comes first after).
_EXPIRE_EVERY = 300.0


class SqliteStates:
    """The jobs that read and write the ``conversation_state`` table (on the writer thread).

    Args:
        ttl: seconds a state lives after its last write.
    """

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._next_expiry = 0.0  # writer thread only

    def load_job(self, conversation: str) -> Callable[[sqlite3.Connection], StoredState | None]:
        """A read-only job: the conversation's state, unless expired."""

        def load(conn: sqlite3.Connection) -> StoredState | None:
            row = conn.execute(SELECT, (conversation, time.time() - self.ttl)).fetchone()
            if row is None:
                return None
            return StoredState(row[0], orjson.loads(row[1]), row[2], row[3])

        return load

    def ack_job(
        self, writes: Sequence[StateWrite], ack: Callable[[sqlite3.Connection], int]
    ) -> Callable[[sqlite3.Connection], int]:
        """One job: apply ``writes`` in order, then ``ack`` (what it returns is the result)."""

        def apply_then_ack(conn: sqlite3.Connection) -> int:
            for write in writes:
                self._write(conn, write.conversation, write.state, write.data, write.seq)
            now = time.time()
            if now >= self._next_expiry:
                self._next_expiry = now + _EXPIRE_EVERY
                conn.execute(EXPIRE, (now - self.ttl,))
            return ack(conn)

        return apply_then_ack

    def put_job(
        self, conversation: str, state: str | None, data: dict[str, Any]
    ) -> Callable[[sqlite3.Connection], None]:
        """A job writing a state from outside any event (seq 0)."""
        return lambda conn: self._write(conn, conversation, state, data, 0)

    @staticmethod
    def _write(
        conn: sqlite3.Connection,
        conversation: str,
        state: str | None,
        data: dict[str, Any],
        seq: int,
    ) -> None:
        if state is None and not data:
            conn.execute(DELETE, (conversation,))
        else:
            row = (conversation, state, orjson.dumps(data), seq, time.time())
            conn.execute(UPSERT, row)
