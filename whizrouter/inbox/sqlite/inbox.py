"""``SqliteInbox``: the ``Inbox`` protocol over one sqlite file; see the package docstring.

This module opens the file, settles events and keeps counts; it turns each operation into a
job for the writer thread (``writer``), whose group commits it shares. Storing events (with the
dedupe window of ``seen``) is ``appends``'s, the dead letters ``dead_letters``'s, handing
events out ``claims``'s; the SQL is ``schema``'s.

One process consumes a file (calls ``claim``): the first claim takes the consumer lock
(``lock``) and holds it until ``close``; a second consumer's claim fails with an
``InboxError`` saying so. Others that never claim (``whizrouter dead list|replay|drop``,
``whizrouter inbox stats``, a receiver-only process) take no lock and may open the file at
any time.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import anyio

from whizrouter.defaults import DEFAULT_DEDUPE_SECONDS, DEFAULT_MAX_BACKLOG
from whizrouter.errors import ConfigurationError, InboxError
from whizrouter.inbox.base import Inbox, JournalEntry, RawEvent, StoredEvent
from whizrouter.inbox.sqlite.appends import AppendCalls
from whizrouter.inbox.sqlite.claims import Claims, FileCounts
from whizrouter.inbox.sqlite.dead_letters import DeadLetterCalls
from whizrouter.inbox.sqlite.journal import DELETE_OF_PENDING, Recorded, SqliteJournal
from whizrouter.inbox.sqlite.lock import ConsumerLock
from whizrouter.inbox.sqlite.schema import (
    COUNT_PENDING,
    COUNT_RUN,
    DATA_VERSION,
    DELETE_PENDING,
    KILL,
    MAX_ROWS,
    RECORD_ATTEMPT,
    create_or_check,
    delete_pending,
    json_array,
    rowcount,
    scalar,
)
from whizrouter.inbox.sqlite.seen import SeenKeys
from whizrouter.inbox.sqlite.state import SqliteStates
from whizrouter.inbox.sqlite.url import Synchronous, parse_sqlite_url
from whizrouter.inbox.sqlite.writer import Writer
from whizrouter.inbox.stored_state import (
    NotCached,
    StateWrite,
    StoredState,
    without_orphans,
)

# The package's name: one logger for everything the sqlite inbox reports.
logger = logging.getLogger("whizrouter.inbox.sqlite")

_T = TypeVar("_T")


def _no_rows(conn: sqlite3.Connection) -> int:
    """An ack job for no event: a batch of state writes whose events were all orphans."""
    return 0


class SqliteInbox(AppendCalls, DeadLetterCalls, Inbox):
    """The durable inbox in one SQLite file; see ``whizrouter.inbox.sqlite`` for the design.

    Args:
        path: the database file; a relative path is resolved against the current directory
            now. The directory must exist.
        synchronous: ``normal`` survives a crash or kill of the process; ``full`` also survives
            a power loss or OS crash, at the cost of an fsync per commit.
        max_backlog: unsettled events above which ``append`` refuses with ``InboxFullError``.
        dedupe_seconds: how long a dedupe key is remembered (7 days by default).
        prune_interval: seconds between background passes that forget expired dedupe keys.
        poll_interval: seconds between checks, while ``claim`` waits, for events another
            process put back (``whizrouter dead replay``).
        busy_timeout: seconds to wait for another process' write lock before failing.
        recent_keys: new dedupe keys gathered (in an append-only table, and in memory at about
            150 bytes each) before they are merged into the dedupe index in key order; see
            ``whizrouter.inbox.sqlite.seen``.

    Attributes:
        description: the inbox URL, for logs (a file path holds no secret).
        durable: always True.
        path: the database file, absolute.
        synchronous: ``normal`` or ``full``.
        recent_keys: see the arguments.
    """

    durable: bool = True
    keeps_state: bool = True  # in the same file (``whizrouter.inbox.sqlite.state``)

    def __init__(
        self,
        path: str | Path,
        *,
        synchronous: Synchronous = "normal",
        max_backlog: int = DEFAULT_MAX_BACKLOG,
        dedupe_seconds: float = DEFAULT_DEDUPE_SECONDS,
        prune_interval: float = 60.0,
        poll_interval: float = 1.0,
        busy_timeout: float = 5.0,
        recent_keys: int = 50_000,
    ) -> None:
        if synchronous not in ("normal", "full"):
            raise ConfigurationError(
                f"sqlite inbox synchronous={synchronous!r} is not supported; "
                "use 'normal' (survives a crash) or 'full' (survives a power loss too)"
            )
        for name, value in [
            ("max_backlog", max_backlog),
            ("prune_interval", prune_interval),
            ("poll_interval", poll_interval),
            ("busy_timeout", busy_timeout),
            ("recent_keys", recent_keys),
        ]:
            if value <= 0:
                raise ConfigurationError(f"sqlite inbox {name}={value!r} must be positive")
        if dedupe_seconds < 0:
            raise ConfigurationError(
                f"sqlite inbox dedupe_seconds={dedupe_seconds!r} must not be negative"
            )
        suffix = "?synchronous=full" if synchronous == "full" else ""
        self.description = f"sqlite:///{path}{suffix}"
        self.path = Path(path).absolute()
        self.synchronous: Synchronous = synchronous
        self.recent_keys = recent_keys
        self._max_backlog = max_backlog
        self._dedupe_seconds = dedupe_seconds
        self._prune_interval = prune_interval
        self._poll_interval = poll_interval
        self._busy_timeout = busy_timeout
        self._consumer = ConsumerLock(self.path)
        # A new writer, new counts and new claims at each open.
        self._writer: Writer | None = None
        self._claims: Claims | None = None
        self._counts = FileCounts()
        # Loop thread only: events of appends queued and not yet answered.
        self._reserved = 0
        self._last_now = 0.0  # writer thread only
        self._seen = SeenKeys(dedupe_seconds, merge_at=recent_keys)  # writer thread only
        self._journal = SqliteJournal(self.description)  # loaded at open, then loop only
        self._states = SqliteStates(self.state_ttl)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        max_backlog: int = DEFAULT_MAX_BACKLOG,
        dedupe_seconds: float = DEFAULT_DEDUPE_SECONDS,
        **options: Any,
    ) -> SqliteInbox:
        """Build the inbox a ``WHIZROUTER_INBOX`` URL names.

        ``sqlite:///inbox.db`` is relative to the working directory, ``sqlite:////var/x.db``
        absolute; ``?synchronous=full`` asks for power-loss safety, ``?recent_keys=N`` sets
        ``recent_keys``; join both with ``&``.

        Args:
            url: the URL.
            max_backlog: see the class.
            dedupe_seconds: see the class.
            **options: other keyword arguments of the class (``prune_interval`` ...); the
                URL's own options win.

        Raises:
            ConfigurationError: the URL is malformed; the message says what to write.
        """
        parsed = parse_sqlite_url(url)
        inbox = cls(
            parsed.path,
            synchronous=parsed.synchronous,
            max_backlog=max_backlog,
            dedupe_seconds=dedupe_seconds,
            **{**options, **parsed.options},
        )
        inbox.description = url
        return inbox

    @property
    def commits(self) -> int:
        """Transactions committed for callers since ``open``.

        With many concurrent callers this grows much slower than the number of calls (group
        commit).
        """
        return 0 if self._writer is None else self._writer.commits

    # -- lifecycle -------------------------------------------------------------------------

    async def open(self) -> None:
        """Open (or create) the file and start the writer thread.

        Raises:
            InboxError: the file cannot be opened or was written by a newer whizrouter.
        """
        if self._writer is not None and self._writer.running:
            return
        self._counts = FileCounts()
        self._seen = SeenKeys(self._dedupe_seconds, merge_at=self.recent_keys)
        self._states = SqliteStates(self.state_ttl)
        self._writer = Writer(
            self.description,
            self.path,
            synchronous=self.synchronous,
            busy_timeout=self._busy_timeout,
            statements=MAX_ROWS + 64,
            prepare=self._prepare,
            insert=self._insert,
            prune=self._maintain,
            prune_interval=self._prune_interval,
            on_rollback=self._rolled_back,
            after_settle=self._after_settle,
        )
        self._claims = Claims(
            self._writer,
            self._counts,
            self._consumer,
            description=self.description,
            poll_interval=self._poll_interval,
            changed_elsewhere=self._states.forget,
        )
        await self._writer.start()
        self._journal.description = self.description
        self._journal.enqueue = self._writer.enqueue

    async def close(self) -> None:
        """Finish the queued work, then stop the writer; unsettled events stay in the file.

        Also gives up the claim on the file, if ``claim`` took it.
        """
        writer = self._writer
        if writer is None or not writer.running:
            return
        if self._claims is not None:
            self._claims.wake()  # a waiting claim sees the writer stopping and fails
        await self._states.stop()
        self._journal.flush()
        self._journal.enqueue = None
        await writer.stop()
        if self._consumer.held:
            await anyio.to_thread.run_sync(self._consumer.release)

    def _prepare(self, conn: sqlite3.Connection) -> None:
        """On the writer thread, once connected: check the schema version, create the tables."""
        create_or_check(conn, self.path)
        self._counts.backlog = scalar(conn, COUNT_PENDING)
        self._journal.load(conn)
        if self._claims is not None:
            self._claims.data_version = scalar(conn, DATA_VERSION)
        logger.info(
            "sqlite inbox %s open: %d events pending", self.description, self._counts.backlog
        )

    def _rolled_back(self) -> None:
        """On the writer thread: what mirrors the file in memory is read again."""
        self._seen.invalidate()
        if self._claims is not None:
            self._claims.forget_fresh()

    def _maintain(self, conn: sqlite3.Connection) -> float:
        """Between commit groups, on the writer thread: the dedupe window's upkeep."""
        return self._seen.maintain(
            conn, interval=self._prune_interval, description=self.description
        )

    async def _submit(
        self,
        fn: Callable[[sqlite3.Connection], _T],
        on_commit: Callable[[_T], None] | None = None,
        *,
        readonly: bool = False,
        on_abandon: Callable[[_T], None] | None = None,
        batch: list[RawEvent] | None = None,
    ) -> _T:
        if self._writer is None:
            raise InboxError(f"the sqlite inbox {self.description} is not open")
        if self._journal.buffered:  # the rows go first, in the same group commit
            self._journal.flush()
        return await self._writer.enqueue(
            fn, on_commit, readonly=readonly, on_abandon=on_abandon, batch=batch
        )

    def _after_settle(self) -> None:
        if self._claims is not None:
            self._claims.wake_if_due()

    # -- handing out (``claims``) ----------------------------------------------------------

    async def take_consumer_lock(self) -> None:
        """Take the file for this process's consumer now instead of at the first ``claim``.

        A bot calls this at startup, so a second bot on the same file stops before it
        listens. Holding it already is fine.

        Raises:
            InboxError: another process (or inbox) consumes the file; the message names it.
        """
        await self._submit(lambda conn: self._consumer.acquire(), readonly=True)

    async def claim(self, limit: int) -> list[StoredEvent]:
        """Wait for pending events and return up to ``limit`` of them, oldest first.

        Each event is handed out once per process lifetime: a cursor remembers the highest seq
        handed out, and starts at 0 after ``open`` so everything unsettled is handed out again.
        ``StoredEvent.attempts`` counts handler runs known to have started (failed, or cut
        short by a clean stop); an event the previous process held when it crashed comes out
        ``maybe_ran``, and ``count_run`` counts its next run before that starts.

        The first claim takes the file for this inbox until ``close`` (see the module
        docstring): a second consumer of the same file would handle every event twice.

        Raises:
            InboxError: the inbox is not open (or was closed while waiting), or another
                process (or another inbox in this one) already consumes the file.
        """
        if limit < 1:
            raise ValueError(f"claim(limit={limit}) needs a positive limit")
        if self._claims is None:
            raise InboxError(f"the sqlite inbox {self.description} is not open")
        events = await self._claims.claim(limit)
        if self._states.in_use:  # read the states their handlers will want, in one job
            self._states.prefetch([event.conversation for event in events], self._submit)
        return events

    async def release(self, unstarted: Sequence[int]) -> None:
        """The consumer stops cleanly: claimed events in ``unstarted`` never reached a handler.

        Counts now the attempt of every other claimed, unsettled event (its handler may have
        run), and clears the claim mark, so the next start counts none: an event that waits
        through many clean restarts keeps its attempt count. After a crash the next start
        still counts one for every claimed event, since nobody can tell which had started.
        Events claimed but still unsettled stay pending; call ``close`` afterwards.
        """
        if self._claims is not None:
            await self._claims.release(unstarted)

    # -- settling --------------------------------------------------------------------------

    async def ack(self, seqs: Sequence[int]) -> None:
        """Settle handled events (they are deleted; their keys stay in the dedupe window).

        Their send journal goes in the same transaction (nothing to do while no event has
        one: a bot that does not send pays nothing).
        """
        if seqs and self._journal.keys:
            job = self._journal.deleting_job(DELETE_OF_PENDING, DELETE_PENDING, json_array(seqs))
            _, keys = await self._submit(job, lambda done: self._settled(done[0]))
            self._journal.forget(keys)
        elif seqs:
            await self._submit(rowcount(*delete_pending(seqs)), self._settled)

    async def ack_with_state(self, seqs: Sequence[int], writes: Sequence[StateWrite]) -> None:
        """``ack``, with the handlers' state writes in the same transaction."""
        seqs, writes = without_orphans(seqs, writes)
        if seqs and self._journal.keys:  # their send journal goes in the same transaction
            ack = self._journal.deleting_job(DELETE_OF_PENDING, DELETE_PENDING, json_array(seqs))
            job = self._states.ack_job(writes, ack)
            _, keys = await self._submit(job, lambda done: self._settled(done[0]))
            self._journal.forget(keys)
        else:
            plain = rowcount(*delete_pending(seqs)) if seqs else _no_rows
            await self._submit(self._states.ack_job(writes, plain), self._settled)
        self._states.committed(writes)

    async def load_state(self, conversation: str) -> StoredState | None:
        """The conversation's committed state, unless expired (from memory when known)."""
        return await self._states.load(conversation, self._submit)

    def cached_state(self, conversation: str) -> StoredState | NotCached | None:
        """The state this process remembers (read or committed lately), else ``NOT_CACHED``."""
        return self._states.cached(conversation)

    async def put_state(self, conversation: str, state: str | None, data: dict[str, Any]) -> None:
        """Write a conversation's state outside any event (the CLI, a test)."""
        await self._submit(self._states.put_job(conversation, state, data))
        self._states.forget()

    def _settled(self, count: int) -> None:
        self._counts.backlog -= count

    async def count_run(self, seq: int) -> None:
        """Count a handler run of a ``maybe_ran`` event before it starts (see ``claim``)."""
        await self._submit(rowcount(COUNT_RUN, (seq,)))

    async def record_attempt(self, seq: int, attempts: int, error: str) -> None:
        """Remember that ``attempts`` handler runs failed so far, the last with ``error``."""
        await self._submit(rowcount(RECORD_ATTEMPT, (attempts, error, seq)))

    async def dead(self, seq: int, *, handler: str, attempts: int, error: str) -> None:
        """Move a pending event to the dead letters."""
        params = (handler, attempts, error, time.time(), seq)
        await self._submit(rowcount(KILL, params), self._settled)

    # -- counts (the dead letters: ``dead_letters``) ---------------------------------------

    def backlog(self) -> int:
        """Unsettled events as known to this process (an in-memory counter, no I/O)."""
        return self._counts.backlog

    # -- the send journal (``whizrouter.inbox.sqlite.journal``) ----------------------------

    async def journal_entries(self, event_key: str) -> dict[str, JournalEntry]:
        """The event's journaled sends; no I/O for an event without any (a first run)."""
        if event_key not in self._journal.keys:
            return {}
        return await self._submit(self._journal.entries_job(event_key), readonly=True)

    def journal_record(self, event_key: str, slot: str, entry: JournalEntry) -> Recorded:
        """Buffer a journaled send for the writer; it goes ahead of the next job queued (the
        event's ack among them), or by a timer. Awaiting the result writes it at once and
        waits for its commit."""
        return self._journal.record(event_key, slot, entry)
