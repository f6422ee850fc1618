"""The ``sqlite`` inbox: the durable default, one file on local disk.

A 200 from the receiver means the events are committed to the file: they survive the process
being killed (WAL with ``synchronous=normal``) or, with ``?synchronous=full``, a power loss.
Whatever was not settled when the process stopped is handed out again after the next start.

Threads (``whizrouter.inbox.sqlite_writer``): one writer thread owns the connection that reads
and writes. Every operation is a job on its queue, and jobs queued together share one
commit (group commit). No sqlite call ever runs on the event loop thread. A second thread
checkpoints the WAL into the database file in the background.

Schema (``PRAGMA user_version`` 2)::

    events(seq INTEGER PRIMARY KEY AUTOINCREMENT, state 0 pending | 2 dead, attempts, kind,
           key, conversation, received_at, handler, error, died_at, body)
    seen_recent(id INTEGER PRIMARY KEY AUTOINCREMENT, key, at)  -- newest dedupe keys
    seen(key TEXT PRIMARY KEY, at REAL) WITHOUT ROWID          -- older ones, pruned by age
    meta(name TEXT PRIMARY KEY, value INTEGER)  -- 'claimed_through' (see _claim_rows),
                                                -- 'seen_generation' (see sqlite_seen)

Settled events are deleted; the dedupe window lives in the two ``seen`` tables
(``whizrouter.inbox.sqlite_seen``; version 1 had only ``seen`` and is upgraded in place).
``AUTOINCREMENT`` keeps seqs from ever being reused, which the in-memory claim cursor relies
on.

One process consumes a file (calls ``claim``): the first claim takes an exclusive ``flock`` on
``<db>.lock`` and holds it until ``close``; a second consumer's claim fails with an
``InboxError`` saying so. The kernel drops the lock when the process dies, even by SIGKILL.
Others that never claim (``whizrouter dead list|replay|drop``, ``whizrouter inbox stats``, a
receiver-only process) take no lock and may open the file at any time.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar, cast
from urllib.parse import parse_qsl

import anyio
import orjson

from whizrouter.defaults import DEFAULT_DEDUPE_SECONDS, DEFAULT_MAX_BACKLOG
from whizrouter.errors import ConfigurationError, InboxError, InboxFullError
from whizrouter.inbox.base import (
    DeadLetter,
    EventKind,
    Inbox,
    RawEvent,
    StoredEvent,
    build_stored_event,
)
from whizrouter.inbox.sqlite_seen import COUNT as _COUNT_SEEN
from whizrouter.inbox.sqlite_seen import IN_JSON as _IN_JSON
from whizrouter.inbox.sqlite_seen import SCHEMA as _SEEN_SCHEMA
from whizrouter.inbox.sqlite_seen import SeenKeys
from whizrouter.inbox.sqlite_writer import ConsumerLock, Writer

logger = logging.getLogger(__name__)

Synchronous = Literal["normal", "full"]

_T = TypeVar("_T")

_SCHEMA_VERSION = 2
_SCHEMA = f"""
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
{_SEEN_SCHEMA}
PRAGMA user_version = {_SCHEMA_VERSION};
COMMIT;
"""

_SELECT_READY = (
    "SELECT seq, kind, key, conversation, body, attempts, received_at FROM events "
    "WHERE state = 0 AND seq > ? ORDER BY seq LIMIT ?"
)
_COUNT_PENDING = "SELECT count(*) FROM events WHERE state = 0"
_REPLAY = (
    "INSERT INTO events(kind, key, conversation, received_at, body) "
    "SELECT kind, key, conversation, ?2, body FROM events WHERE state = 2 {} ORDER BY seq"
)
_REPLAY_ALL = _REPLAY.format("")
_REPLAY_SOME = _REPLAY.format(f"AND seq {_IN_JSON}")
_DELETE_PENDING = f"DELETE FROM events WHERE state = 0 AND seq {_IN_JSON}"
_DELETE_DEAD = f"DELETE FROM events WHERE state = 2 AND seq {_IN_JSON}"
_RECORD_ATTEMPT = "UPDATE events SET attempts = ?, error = ? WHERE seq = ? AND state = 0"
_COUNT_RUN = "UPDATE events SET attempts = attempts + 1 WHERE seq = ? AND state = 0"
_KILL = (
    "UPDATE events SET state = 2, handler = ?, attempts = ?, error = ?, died_at = ? "
    "WHERE seq = ? AND state = 0"
)
_STATS = (
    "SELECT (SELECT count(*) FROM events WHERE state = 0), "
    f"(SELECT count(*) FROM events WHERE state = 2), {_COUNT_SEEN}"
)
_DEAD_LETTERS = (
    "SELECT seq, kind, key, conversation, body, coalesce(handler, ''), attempts, "
    "coalesce(error, ''), coalesce(died_at, 0) FROM events WHERE state = 2 ORDER BY seq LIMIT ?"
)
_PRUNE_BATCH = 1000
_MAX_ROWS = 128  # events per INSERT statement

_EventRow = tuple[str, str, str, float, bytes]
#: What _SELECT_READY returns: StoredEvent's fields up to ``received_at``, in order.
_ReadyRow = tuple[int, EventKind, str, str, bytes, int, float]
_Claimed = tuple[list[StoredEvent], int | None, int, int]


class SqliteInbox(Inbox):
    """The durable inbox in one SQLite file; see the module docstring for the design.

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
            ``whizrouter.inbox.sqlite_seen``.

    Attributes:
        description: the inbox URL, for logs (a file path holds no secret).
        durable: always True.
        path: the database file, absolute.
        synchronous: ``normal`` or ``full``.
        recent_keys: see the arguments.
    """

    durable: bool = True

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
        self._max_backlog = max_backlog
        self._dedupe_seconds = dedupe_seconds
        self._prune_interval = prune_interval
        self._poll_interval = poll_interval
        self._busy_timeout = busy_timeout
        self._writer: Writer | None = None  # a new one at each open
        self._consumer = ConsumerLock(self.path)
        self._wakeup = asyncio.Event()
        self._stash: list[StoredEvent] = []
        self._claiming = anyio.Lock()
        # Loop thread only: events of appends queued and not yet answered.
        self._reserved = 0
        # Writer thread only; the loop reads them (an int read is atomic).
        self._backlog = 0
        self._cursor = 0
        self._recovered = False
        # Writer thread only: pending events at or below this seq were taken by a process
        # that crashed (0: none).
        self._maybe_ran_through = 0
        self._writes = 0  # rows inserted by this process, counted before their commit
        self._claim_mark = 0  # ``_writes`` when the last claim looked
        self._data_version = 0  # changes when another process commits to the file
        self._last_now = 0.0
        self.recent_keys = recent_keys
        self._seen = SeenKeys(dedupe_seconds, merge_at=recent_keys)  # writer thread only

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
            **options: other keyword arguments of the class (``prune_interval`` ...).

        Raises:
            ConfigurationError: the URL is malformed; the message says what to write.
        """
        hint = (
            "write sqlite:///relative/path.db (three slashes: relative to the working "
            "directory) or sqlite:////absolute/path.db (four slashes), optionally with "
            "?synchronous=full"
        )
        if not url.startswith("sqlite://"):
            raise ConfigurationError(f"WHIZROUTER_INBOX={url!r} is not a sqlite URL; {hint}")
        location, _, query = url.removeprefix("sqlite://").partition("?")
        if not location.startswith("/"):
            raise ConfigurationError(
                f"WHIZROUTER_INBOX={url!r} names a host ({location.split('/')[0]!r}), but a "
                f"sqlite inbox is a local file; {hint}"
            )
        path = location[1:]
        if not path or path.endswith("/"):
            raise ConfigurationError(f"WHIZROUTER_INBOX={url!r} names no database file; {hint}")
        if path == ":memory:":
            raise ConfigurationError(
                f"WHIZROUTER_INBOX={url!r} would lose events on a restart; "
                "use WHIZROUTER_INBOX=memory if that is what you want"
            )
        synchronous = "normal"
        for name, value in parse_qsl(query, keep_blank_values=True):
            if name == "recent_keys":
                if not value.isdigit() or int(value) < 1:
                    raise ConfigurationError(
                        f"WHIZROUTER_INBOX={url!r}: recent_keys={value!r} is not a positive "
                        "whole number; write e.g. recent_keys=50000"
                    )
                options["recent_keys"] = int(value)
                continue
            if name != "synchronous":
                raise ConfigurationError(
                    f"WHIZROUTER_INBOX={url!r}: unknown parameter {name!r}; "
                    "the parameters are synchronous=normal|full and recent_keys=N"
                )
            synchronous = value.lower()
            if synchronous not in ("normal", "full"):
                raise ConfigurationError(
                    f"WHIZROUTER_INBOX={url!r}: synchronous={value!r} is not supported; use "
                    "synchronous=normal (survives a crash) or synchronous=full (survives a "
                    "power loss too)"
                )
        inbox = cls(
            path,
            synchronous=cast(Synchronous, synchronous),
            max_backlog=max_backlog,
            dedupe_seconds=dedupe_seconds,
            **options,
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
        self._wakeup = asyncio.Event()
        self._stash = []
        self._claiming = anyio.Lock()
        self._cursor = self._writes = self._claim_mark = self._maybe_ran_through = 0
        self._recovered = False
        self._seen = SeenKeys(self._dedupe_seconds, merge_at=self.recent_keys)
        self._writer = Writer(
            self.description,
            self.path,
            synchronous=self.synchronous,
            busy_timeout=self._busy_timeout,
            statements=_MAX_ROWS + 64,
            prepare=self._prepare,
            insert=self._insert,
            prune=self._maintain,
            prune_interval=self._prune_interval,
            on_rollback=self._seen.invalidate,
            after_settle=self._wake_claim,
        )
        await self._writer.start()

    async def close(self) -> None:
        """Finish the queued work, then stop the writer; unsettled events stay in the file.

        Also gives up the claim on the file, if ``claim`` took it.
        """
        writer = self._writer
        if writer is None or not writer.running:
            return
        self._wakeup.set()  # a waiting claim sees the writer stopping and fails
        await writer.stop()
        if self._consumer.held:
            await anyio.to_thread.run_sync(self._consumer.release)

    def _prepare(self, conn: sqlite3.Connection) -> None:
        """On the writer thread, once connected: check the schema version, create the tables."""
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > _SCHEMA_VERSION:
            raise InboxError(
                f"the sqlite inbox {self.path} has schema version {version}, written by "
                "a newer whizrouter; upgrade whizrouter or point WHIZROUTER_INBOX elsewhere"
            )
        conn.executescript(_SCHEMA)
        self._backlog = _scalar(conn, _COUNT_PENDING)
        self._data_version = _scalar(conn, "PRAGMA data_version")
        logger.info("sqlite inbox %s open: %d events pending", self.description, self._backlog)

    def _maintain(self, conn: sqlite3.Connection) -> float:
        """Between commit groups: one slice of a dedupe-key merge if one is due, else forget
        one batch of expired dedupe keys. Returns when to run next."""
        if self._seen.merge_due:
            try:
                self._seen.merge_step(conn)
            except sqlite3.Error as exc:
                logger.warning(
                    "sqlite inbox %s: merging dedupe keys failed: %s", self.description, exc
                )
                return time.monotonic() + self._prune_interval
            return time.monotonic()  # the next slice after the groups queued meanwhile
        horizon = time.time() - self._dedupe_seconds
        try:
            pruned = self._seen.prune(conn, horizon, _PRUNE_BATCH)
        except sqlite3.Error as exc:
            logger.warning("sqlite inbox %s: pruning dedupe keys failed: %s", self.description, exc)
            return time.monotonic() + self._prune_interval
        if pruned:
            logger.debug("sqlite inbox %s: forgot %d dedupe keys", self.description, pruned)
        # A full batch means more are due: go on right after the jobs queued meanwhile.
        return time.monotonic() + (0.0 if pruned == _PRUNE_BATCH else self._prune_interval)

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
        return await self._writer.submit(
            fn, on_commit, readonly=readonly, on_abandon=on_abandon, batch=batch
        )

    def _wake_claim(self) -> None:
        """After the writer answered a group: wake ``claim`` if it may find new events."""
        if self._writes > self._claim_mark or self._stash:
            self._wakeup.set()

    # -- the Inbox protocol ----------------------------------------------------------------

    async def append(self, events: Sequence[RawEvent]) -> int:
        """Store events durably, dropping redeliveries; see ``Inbox.append``.

        Returns only after the commit that holds them.

        Raises:
            InboxFullError: the backlog would pass ``max_backlog``; nothing was stored.
            InboxError: the events could not be stored; nothing was stored.
        """
        count = len(events)
        if not count:
            return 0
        backlog = self._backlog + self._reserved
        # An empty inbox takes any callback, however many events: none is refused forever.
        if backlog and backlog + count > self._max_backlog:
            raise InboxFullError(
                f"the sqlite inbox holds {backlog} unsettled events (bound {self._max_backlog}); "
                "the provider will retry, or raise max_backlog",
                retry_after=5.0,
            )
        batch = list(events)
        self._reserved += count
        try:
            return await self._submit(
                lambda conn: self._insert(conn, [batch])[0], self._inserted, batch=batch
            )
        finally:
            self._reserved -= count

    def _insert(self, conn: sqlite3.Connection, batches: list[list[RawEvent]]) -> list[int]:
        """Store the new events of several appends; return how many were new in each."""
        now = self._last_now = max(time.time(), self._last_now + 1e-6)
        keys = list(dict.fromkeys(event.key for batch in batches for event in batch))
        new = self._seen.new_keys(conn, keys, now)
        if self._seen.merge_due and self._writer is not None:
            self._writer.maintain_soon()
        rows: list[_EventRow] = []
        counts = []
        for batch in batches:
            before = len(rows)
            for event in batch:
                # Taken at its first occurrence: a repeat later in the group is a redelivery.
                if event.key in new:
                    new.discard(event.key)
                    rows.append((event.kind, event.key, event.conversation, now, event.body))
            counts.append(len(rows) - before)
        for start in range(0, len(rows), _MAX_ROWS):
            chunk = rows[start : start + _MAX_ROWS]
            conn.execute(_insert_sql(len(chunk)), [value for row in chunk for value in row])
        self._writes += len(rows)
        return counts

    def _inserted(self, count: int) -> None:
        self._backlog += count

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
        # One claim at a time: the cursor moves when a claim's transaction commits.
        async with self._claiming:
            look = True  # read the file first: an earlier run or a replay may have left events
            while True:
                events: list[StoredEvent] = []
                if look or self._writes > self._claim_mark:
                    events, *_ = await self._submit(
                        functools.partial(self._claim_rows, limit=limit),
                        self._claimed,
                        on_abandon=self._stash_back,
                    )
                elif self._writer is None or self._writer.stopping:
                    raise InboxError(f"the sqlite inbox {self.description} is not open")
                look = False
                if self._stash:  # older than anything a later claim finds: they go first
                    events = self._stash + events
                    events, self._stash = events[:limit], events[limit:]
                if events:
                    return events
                if self._wakeup.is_set():
                    self._wakeup = asyncio.Event()
                    continue  # something happened while we looked
                with anyio.move_on_after(self._poll_interval) as idle:
                    await self._wakeup.wait()
                # After a quiet interval, look for events another process put back.
                look = idle.cancelled_caught

    def _claim_rows(self, conn: sqlite3.Connection, limit: int) -> _Claimed:
        mark = self._writes
        # After a crash: meta 'claimed_through' is the highest seq the dead process handed
        # out. Every pending row at or below it was handed out (seqs are claimed in order,
        # never reused, and commit in seq order), so a handler may have started on it: those
        # events go out ``maybe_ran``, and the dispatcher counts their next run before it
        # starts it. Nothing is counted here: most of them were only waiting in memory, and
        # counting those would dead-letter events that never ran. One tiny UPDATE per claim
        # instead of rewriting each claimed row (body included) to flag it. It runs at the
        # first claim, not at open(), so a CLI that opens the file meanwhile changes nothing.
        if not self._recovered:
            self._consumer.acquire()  # before touching anything: another process may own it
            through = _scalar(conn, "SELECT value FROM meta WHERE name = 'claimed_through'")
            taken = _scalar(
                conn, "SELECT count(*) FROM events WHERE state = 0 AND seq <= ?", (through,)
            )
            if taken:
                self._maybe_ran_through = through
                logger.warning(
                    "sqlite inbox %s: the previous process stopped while holding %d events; "
                    "handing them out again (handlers may have started on some: their "
                    "ctx.attempt is 2 or more)",
                    self.description,
                    taken,
                )
        rows: Iterable[_ReadyRow] = conn.execute(_SELECT_READY, (self._cursor, limit))
        if through := self._maybe_ran_through:
            events = [build_stored_event(*row, row[0] <= through) for row in rows]
        else:
            events = [build_stored_event(*row) for row in rows]
        if events or not self._recovered:
            conn.execute(
                "UPDATE meta SET value = ? WHERE name = 'claimed_through'",
                (events[-1].seq if events else self._cursor,),
            )
        # Another process (the CLI's replay) changed the file: re-count the backlog.
        version = _scalar(conn, "PRAGMA data_version")
        backlog = _scalar(conn, _COUNT_PENDING) if version != self._data_version else None
        return events, backlog, mark, version

    def _claimed(self, result: _Claimed) -> None:
        events, backlog, mark, version = result
        self._recovered = True
        self._claim_mark = mark
        self._data_version = version
        if events:
            self._cursor = events[-1].seq
        if backlog is not None:
            self._backlog = backlog

    async def release(self, unstarted: Sequence[int]) -> None:
        """The consumer stops cleanly: claimed events in ``unstarted`` never reached a handler.

        Counts now the attempt of every other claimed, unsettled event (its handler may have
        run), and clears the claim mark, so the next start counts none: an event that waits
        through many clean restarts keeps its attempt count. After a crash the next start
        still counts one for every claimed event, since nobody can tell which had started.
        Events claimed but still unsettled stay pending; call ``close`` afterwards.
        """
        if not self._recovered:
            return  # this process never claimed: its mark is not ours to move
        spared = _json([*unstarted, *(event.seq for event in self._stash)])
        await self._submit(lambda conn: self._release_rows(conn, spared))

    def _release_rows(self, conn: sqlite3.Connection, spared: str) -> None:
        conn.execute(
            "UPDATE events SET attempts = attempts + 1 WHERE state = 0 AND seq <= "
            "(SELECT value FROM meta WHERE name = 'claimed_through') "
            f"AND seq NOT {_IN_JSON}",
            (spared,),
        )
        conn.execute("UPDATE meta SET value = 0 WHERE name = 'claimed_through'")

    def _stash_back(self, result: _Claimed) -> None:
        # The claimer was cancelled after the writer took these events: keep them for the
        # next claim instead of stranding them until the next restart.
        self._stash.extend(result[0])

    async def ack(self, seqs: Sequence[int]) -> None:
        """Settle handled events (they are deleted; their keys stay in the dedupe window)."""
        if seqs:
            await self._submit(_rowcount(_DELETE_PENDING, (_json(seqs),)), self._settled)

    def _settled(self, count: int) -> None:
        self._backlog -= count

    async def count_run(self, seq: int) -> None:
        """Count a handler run of a ``maybe_ran`` event before it starts (see ``claim``)."""
        await self._submit(_rowcount(_COUNT_RUN, (seq,)))

    async def record_attempt(self, seq: int, attempts: int, error: str) -> None:
        """Remember that ``attempts`` handler runs failed so far, the last with ``error``."""
        await self._submit(_rowcount(_RECORD_ATTEMPT, (attempts, error, seq)))

    async def dead(self, seq: int, *, handler: str, attempts: int, error: str) -> None:
        """Move a pending event to the dead letters."""
        params = (handler, attempts, error, time.time(), seq)
        await self._submit(_rowcount(_KILL, params), self._settled)

    def backlog(self) -> int:
        """Unsettled events as known to this process (an in-memory counter, no I/O)."""
        return self._backlog

    async def stats(self) -> dict[str, int]:
        """Counts by state: ``pending``, ``dead``, ``seen`` (remembered dedupe keys)."""
        row = await self._submit(lambda conn: conn.execute(_STATS).fetchone(), readonly=True)
        return {"pending": row[0], "dead": row[1], "seen": row[2]}

    async def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        """The oldest dead letters (by seq), up to ``limit``."""
        rows = await self._submit(
            lambda conn: conn.execute(_DEAD_LETTERS, (limit,)).fetchall(), readonly=True
        )
        return [DeadLetter(*row) for row in rows]

    async def replay(self, seqs: Sequence[int] | None = None) -> int:
        """Put dead letters back as new pending events (new seq, attempts 0).

        Works from another process while the consuming one runs: its ``claim`` finds them
        within ``poll_interval``. The keys stay remembered, so redeliveries are still dropped.
        """
        if seqs is not None and not seqs:
            return 0
        chosen = None if seqs is None else _json(seqs)
        return await self._submit(lambda conn: self._replay_rows(conn, chosen), self._inserted)

    def _replay_rows(self, conn: sqlite3.Connection, seqs: str | None) -> int:
        now = time.time()
        if seqs is None:
            count = conn.execute(_REPLAY_ALL, (None, now)).rowcount
            conn.execute("DELETE FROM events WHERE state = 2")
        else:
            count = conn.execute(_REPLAY_SOME, (seqs, now)).rowcount
            conn.execute(_DELETE_DEAD, (seqs,))
        self._writes += count
        return count

    async def drop(self, seqs: Sequence[int]) -> int:
        """Delete dead letters for good; return how many were deleted."""
        return await self._submit(_rowcount(_DELETE_DEAD, (_json(seqs),))) if seqs else 0


@functools.lru_cache(maxsize=_MAX_ROWS)
def _insert_sql(rows: int) -> str:
    """One INSERT for ``rows`` events: one statement step instead of one per event."""
    values = ", ".join(["(?, ?, ?, ?, ?)"] * rows)
    return f"INSERT INTO events(kind, key, conversation, received_at, body) VALUES {values}"


def _json(values: Iterable[int]) -> str:
    return orjson.dumps([int(value) for value in values]).decode()


def _rowcount(sql: str, params: tuple[Any, ...]) -> Callable[[sqlite3.Connection], int]:
    """A job that runs one statement and returns how many rows it changed."""
    return lambda conn: conn.execute(sql, params).rowcount


def _scalar(conn: sqlite3.Connection, sql: str, params: tuple[Any, ...] = ()) -> int:
    row = conn.execute(sql, params).fetchone()
    return int(row[0]) if row and row[0] is not None else 0
