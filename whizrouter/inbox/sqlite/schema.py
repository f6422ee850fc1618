"""The sqlite inbox's tables and every statement the inbox runs on them.

Schema (``PRAGMA user_version`` 2)::

    events(seq INTEGER PRIMARY KEY AUTOINCREMENT, state 0 pending | 2 dead, attempts, kind,
           key, conversation, received_at, handler, error, died_at, body)
    seen_recent(id INTEGER PRIMARY KEY AUTOINCREMENT, key, at)  -- newest dedupe keys
    seen(key TEXT PRIMARY KEY, at REAL) WITHOUT ROWID          -- older ones, pruned by age
    meta(name TEXT PRIMARY KEY, value INTEGER)  -- 'claimed_through' (see claims),
                                                -- 'seen_generation' (see seen)
    send_journal(event_key, slot, request_hash, message_id)  -- see journal
    conversation_state(conversation TEXT PRIMARY KEY, state, data, seq, updated_at)
        WITHOUT ROWID                           -- see state; added within version 2

Settled events are deleted; the dedupe window lives in the two ``seen`` tables
(``whizrouter.inbox.sqlite.seen``, which owns their statements; version 1 had only ``seen``
and is upgraded in place). ``AUTOINCREMENT`` keeps seqs from ever being reused, which the
in-memory claim cursor relies on.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import orjson

from whizrouter.errors import InboxError
from whizrouter.inbox.base import EventKind
from whizrouter.inbox.sqlite.journal import SCHEMA as JOURNAL_SCHEMA
from whizrouter.inbox.sqlite.seen import COUNT as COUNT_SEEN
from whizrouter.inbox.sqlite.seen import IN_JSON
from whizrouter.inbox.sqlite.seen import SCHEMA as SEEN_SCHEMA
from whizrouter.inbox.sqlite.state import SCHEMA as STATE_SCHEMA

SCHEMA_VERSION = 2
SCHEMA = f"""
BEGIN IMMEDIATE;
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    state INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    conversation TEXT NOT NULL,
    received_at REAL NOT NULL,
    handler TEXT,
    error TEXT,
    died_at REAL,
    body BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS events_dead ON events(seq) WHERE state = 2;
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
INSERT OR IGNORE INTO meta(name, value) VALUES ('claimed_through', 0);
{SEEN_SCHEMA}
{JOURNAL_SCHEMA}
{STATE_SCHEMA}
PRAGMA user_version = {SCHEMA_VERSION};
COMMIT;
"""

# -- handing out (``whizrouter.inbox.sqlite.claims``) -------------------------------------

SELECT_READY = (
    "SELECT seq, kind, key, conversation, body, attempts, received_at FROM events "
    "WHERE state = 0 AND seq > ? ORDER BY seq LIMIT ?"
)
#: What ``SELECT_READY`` returns: StoredEvent's fields up to ``received_at``, in order.
ReadyRow = tuple[int, EventKind, str, str, bytes, int, float]
COUNT_PENDING = "SELECT count(*) FROM events WHERE state = 0"
CLAIMED_THROUGH = "SELECT value FROM meta WHERE name = 'claimed_through'"
SET_CLAIMED_THROUGH = "UPDATE meta SET value = ? WHERE name = 'claimed_through'"
COUNT_TAKEN = "SELECT count(*) FROM events WHERE state = 0 AND seq <= ?"
# A clean stop: one attempt for every event handed out, except those spared (JSON array).
COUNT_CUT_SHORT = (
    "UPDATE events SET attempts = attempts + 1 WHERE state = 0 AND seq <= "
    "(SELECT value FROM meta WHERE name = 'claimed_through') "
    f"AND seq NOT {IN_JSON}"
)
CLEAR_CLAIMED_THROUGH = "UPDATE meta SET value = 0 WHERE name = 'claimed_through'"
DATA_VERSION = "PRAGMA data_version"

# -- storing and settling (``whizrouter.inbox.sqlite.inbox``) -----------------------------

#: Events per INSERT statement.
MAX_ROWS = 128
#: What one event is inserted as: kind, key, conversation, received_at, body.
EventRow = tuple[str, str, str, float, bytes | bytearray]
REPLAY = (
    "INSERT INTO events(kind, key, conversation, received_at, body) "
    "SELECT kind, key, conversation, ?2, body FROM events WHERE state = 2 {} ORDER BY seq"
)
REPLAY_ALL = REPLAY.format("")
REPLAY_SOME = REPLAY.format(f"AND seq {IN_JSON}")
DELETE_PENDING = f"DELETE FROM events WHERE state = 0 AND seq {IN_JSON}"
DELETE_PENDING_RANGE = "DELETE FROM events WHERE state = 0 AND seq BETWEEN ? AND ?"
DELETE_DEAD = f"DELETE FROM events WHERE state = 2 AND seq {IN_JSON}"
DELETE_ALL_DEAD = "DELETE FROM events WHERE state = 2"
RECORD_ATTEMPT = "UPDATE events SET attempts = ?, error = ? WHERE seq = ? AND state = 0"
COUNT_RUN = "UPDATE events SET attempts = attempts + 1 WHERE seq = ? AND state = 0"
KILL = (
    "UPDATE events SET state = 2, handler = ?, attempts = ?, error = ?, died_at = ? "
    "WHERE seq = ? AND state = 0"
)
#: When the oldest pending event was stored (seq order is arrival order).
OLDEST_PENDING = "SELECT received_at FROM events WHERE state = 0 ORDER BY seq LIMIT 1"
STATS = (
    "SELECT (SELECT count(*) FROM events WHERE state = 0), "
    f"(SELECT count(*) FROM events WHERE state = 2), {COUNT_SEEN}"
)
DEAD_LETTERS = (
    "SELECT seq, kind, key, conversation, body, coalesce(handler, ''), attempts, "
    "coalesce(error, ''), coalesce(died_at, 0) FROM events WHERE state = 2 ORDER BY seq LIMIT ?"
)


def create_or_check(conn: sqlite3.Connection, path: Path) -> None:
    """Create the tables a new file lacks; refuse a file of a newer schema.

    Raises:
        InboxError: a newer whizrouter wrote the file.
    """
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise InboxError(
            f"the sqlite inbox {path} has schema version {version}, written by "
            "a newer whizrouter; upgrade whizrouter or point WHIZROUTER_INBOX elsewhere"
        )
    conn.executescript(SCHEMA)


@functools.lru_cache(maxsize=MAX_ROWS)
def insert_sql(rows: int) -> str:
    """One INSERT for ``rows`` events: one statement step instead of one per event."""
    values = ", ".join(["(?, ?, ?, ?, ?)"] * rows)
    return f"INSERT INTO events(kind, key, conversation, received_at, body) VALUES {values}"


def json_array(values: Iterable[int]) -> str:
    """Seqs as the JSON array an ``IN_JSON`` statement takes (one statement for any number)."""
    return orjson.dumps([int(value) for value in values]).decode()


def delete_pending(seqs: Sequence[int]) -> tuple[str, tuple[Any, ...]]:
    """The statement that deletes the pending events ``seqs`` (not empty), and its parameters.

    Seqs that form one unbroken run, as a busy dispatcher's ack batches mostly do (events are
    claimed in seq order), are deleted as a range: no JSON array to write and parse, and one
    walk along the table instead of a look-up per seq (the writer's work per one-message
    callback, callgrind: 43,700 instructions with every ack as a JSON array, 40,700 with
    ranges).
    """
    low, high = min(seqs), max(seqs)
    if high - low + 1 == len(seqs) == len(set(seqs)):
        return DELETE_PENDING_RANGE, (low, high)
    return DELETE_PENDING, (json_array(seqs),)


def rowcount(sql: str, params: tuple[Any, ...]) -> Callable[[sqlite3.Connection], int]:
    """A job that runs one statement and returns how many rows it changed."""
    return lambda conn: conn.execute(sql, params).rowcount


def scalar(conn: sqlite3.Connection, sql: str, params: tuple[Any, ...] = ()) -> int:
    """The integer a one-value query returns (0 for no row or NULL)."""
    row = conn.execute(sql, params).fetchone()
    return int(row[0]) if row and row[0] is not None else 0
