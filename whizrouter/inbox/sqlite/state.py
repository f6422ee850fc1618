"""Conversation state in the sqlite inbox file: one row per conversation.

The table is created beside the events (``SCHEMA``, part of the inbox's schema script); a
handler's write is applied in the same job, so the same transaction, as its event's
acknowledgement (``ack_job``): both commit, or neither. Rows older than ``state_ttl`` read as
absent and are deleted now and then by the acks' own transactions.

Reads come from memory when they can (``SqliteStates.cached``): one process consumes a file,
so every state it reads or commits is known to it, and a read job (a trip to the writer
thread) is needed only for a conversation it has not seen. The one other writer is the CLI
(``whizrouter state clear``, from another process): the claims notice that another connection
changed the file (``PRAGMA data_version``) and the inbox then forgets what it remembered, so
an event claimed after such a change reads the file again.
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, Protocol, TypeVar

import orjson

from whizrouter.inbox.stored_state import NOT_CACHED, NotCached, StateWrite, StoredState

#: What an ack job returns (the deleted rows, and the journal keys deleted with them).
T = TypeVar("T")

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
SELECT_MANY = (
    "SELECT conversation, state, data, seq, updated_at FROM conversation_state "
    "WHERE conversation IN (SELECT value FROM json_each(?)) AND updated_at >= ?"
)
UPSERT = (
    "INSERT INTO conversation_state(conversation, state, data, seq, updated_at) "
    "VALUES {} ON CONFLICT(conversation) DO UPDATE SET state = excluded.state, "
    "data = excluded.data, seq = excluded.seq, updated_at = excluded.updated_at"
)
#: Rows per UPSERT statement (sqlite takes at most 32,766 parameters).
_MAX_ROWS = 128


@functools.lru_cache(maxsize=_MAX_ROWS)
def upsert_sql(rows: int) -> str:
    """One UPSERT for ``rows`` conversations: one statement step instead of one per row."""
    return UPSERT.format(", ".join(["(?, ?, ?, ?, ?)"] * rows))


DELETE = "DELETE FROM conversation_state WHERE conversation = ?"
EXPIRE = "DELETE FROM conversation_state WHERE updated_at < ?"

#: Seconds between deletions of expired rows (by whichever ack comes first after).
_EXPIRE_EVERY = 300.0
#: Conversations whose state is remembered in memory (about 300 bytes each); past it the
#: oldest remembered is forgotten.
_CACHED_CONVERSATIONS = 50_000


def json_array_text(values: list[str]) -> str:
    """Strings as the JSON array ``json_each`` takes."""
    return orjson.dumps(values).decode()


#: ``SqliteStates.cached``'s answer for a conversation it does not know.


class Submit(Protocol):
    """The inbox's ``_submit``: run a job on the writer thread and return its result."""

    def __call__(
        self, fn: Callable[[sqlite3.Connection], Any], /, *, readonly: bool = ...
    ) -> Awaitable[Any]: ...


class SqliteStates:
    """The jobs that read and write the ``conversation_state`` table (on the writer thread).

    Args:
        ttl: seconds a state lives after its last write.
    """

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._next_expiry = 0.0  # writer thread only
        # Loop thread only (``forget`` replaces it whole, from any thread): the committed
        # state of conversations read or written lately (None: known to have none).
        self._cache: dict[str, StoredState | None] = {}
        #: Counts ``forget`` calls: a read that began before one is not remembered.
        self.generation = 0
        #: Whether handlers read state: claims then read ahead (``prefetch``).
        self.in_use = False
        # Conversations a read-ahead is fetching, and the future it resolves when done.
        self._inflight: dict[str, asyncio.Future[None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def cached(self, conversation: str) -> StoredState | NotCached | None:
        """The remembered state (None: none), or ``NOT_CACHED``: read the file."""
        stored = self._cache.get(conversation, NOT_CACHED)
        if isinstance(stored, StoredState) and stored.updated_at < time.time() - self.ttl:
            return None
        return stored

    def _remember(self, conversation: str, stored: StoredState | None) -> None:
        cache = self._cache
        if len(cache) >= _CACHED_CONVERSATIONS and conversation not in cache:
            del cache[next(iter(cache))]
        cache[conversation] = stored

    async def load(self, conversation: str, submit: Submit) -> StoredState | None:
        """The conversation's state: remembered, read ahead, or read by a job ``submit``
        runs."""
        self.in_use = True
        known = self.cached(conversation)
        if known is NOT_CACHED and (ahead := self._inflight.get(conversation)) is not None:
            await asyncio.shield(ahead)
            known = self.cached(conversation)
        if known is not NOT_CACHED:
            return known
        generation = self.generation
        stored: StoredState | None = await submit(self.load_job(conversation), readonly=True)
        if generation == self.generation:
            self._remember(conversation, stored)
        return stored

    def prefetch(self, conversations: Iterable[str], submit: Submit) -> None:
        """Read the states of claimed events' conversations not remembered, in one job and
        in the background: a lane's first event then waits for that job, not for a job of
        its own (a trip to the writer thread for each new conversation)."""
        cache, inflight = self._cache, self._inflight
        missing = {c for c in conversations if c not in cache and c not in inflight}
        if not missing:
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        for conversation in missing:
            inflight[conversation] = done
        task = asyncio.create_task(self._read_ahead(missing, done, submit))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _read_ahead(
        self, conversations: set[str], done: asyncio.Future[None], submit: Submit
    ) -> None:
        generation = self.generation
        try:
            found: dict[str, StoredState] = await submit(
                self.prefetch_job(sorted(conversations)), readonly=True
            )
            # Only where nothing newer is known: a commit or a read since is at least as new.
            if generation == self.generation:
                cache = self._cache
                for conversation in conversations:
                    if conversation not in cache:
                        self._remember(conversation, found.get(conversation))
        except Exception:
            pass  # a read ahead only saves time: each event reads for itself instead
        finally:
            for conversation in conversations:
                if self._inflight.get(conversation) is done:
                    del self._inflight[conversation]
            done.set_result(None)

    async def stop(self) -> None:
        """Cancel the reads ahead (before the writer stops)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def committed(self, writes: Sequence[StateWrite]) -> None:
        """Remember what an ack job committed (on the loop, once it returned)."""
        for write in writes:
            self._remember(write.conversation, None if write.deletes else write)

    def forget(self) -> None:
        """Another process changed the file: read everything from it again."""
        self._cache = {}
        self.generation += 1

    def prefetch_job(
        self, conversations: list[str]
    ) -> Callable[[sqlite3.Connection], dict[str, StoredState]]:
        """A read-only job: the states of ``conversations`` that have one, by conversation."""

        def load(conn: sqlite3.Connection) -> dict[str, StoredState]:
            rows = conn.execute(
                SELECT_MANY, (json_array_text(conversations), time.time() - self.ttl)
            )
            return {
                row[0]: StoredState(row[1], orjson.loads(row[2]), row[3], row[4]) for row in rows
            }

        return load

    def load_job(self, conversation: str) -> Callable[[sqlite3.Connection], StoredState | None]:
        """A read-only job: the conversation's state, unless expired."""

        def load(conn: sqlite3.Connection) -> StoredState | None:
            row = conn.execute(SELECT, (conversation, time.time() - self.ttl)).fetchone()
            if row is None:
                return None
            return StoredState(row[0], orjson.loads(row[1]), row[2], row[3])

        return load

    def ack_job(
        self, writes: Sequence[StateWrite], ack: Callable[[sqlite3.Connection], T]
    ) -> Callable[[sqlite3.Connection], T]:
        """One job: apply ``writes`` in order, then ``ack`` (what it returns is the result)."""

        def apply_then_ack(conn: sqlite3.Connection) -> T:
            now = time.time()
            # Only each conversation's last write matters: they commit together.
            last = {write.conversation: write for write in writes}
            values: list[Any] = []
            for write in writes:
                write.updated_at = now
            for conversation, write in last.items():
                if write.deletes:
                    conn.execute(DELETE, (conversation,))
                else:
                    values += (conversation, write.state, orjson.dumps(write.data), write.seq, now)
            for start in range(0, len(values), _MAX_ROWS * 5):
                chunk = values[start : start + _MAX_ROWS * 5]
                conn.execute(upsert_sql(len(chunk) // 5), chunk)
            if now >= self._next_expiry:
                self._next_expiry = now + _EXPIRE_EVERY
                conn.execute(EXPIRE, (now - self.ttl,))
            return ack(conn)

        return apply_then_ack

    def put_job(
        self, conversation: str, state: str | None, data: dict[str, Any]
    ) -> Callable[[sqlite3.Connection], None]:
        """A job writing a state from outside any event (seq 0)."""
        return lambda conn: self._write(conn, conversation, state, data, 0, time.time())

    @staticmethod
    def _write(
        conn: sqlite3.Connection,
        conversation: str,
        state: str | None,
        data: dict[str, Any],
        seq: int,
        now: float,
    ) -> None:
        if state is None and not data:
            conn.execute(DELETE, (conversation,))
        else:
            conn.execute(upsert_sql(1), (conversation, state, orjson.dumps(data), seq, now))
