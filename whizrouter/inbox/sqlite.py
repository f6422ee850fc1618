"""The ``sqlite`` inbox: the durable default, one file on local disk.

A 200 from the receiver means the events are committed to the file: they survive the process
being killed (WAL with ``synchronous=normal``) or, with ``?synchronous=full``, a power loss.
Whatever was not settled when the process stopped is handed out again after the next start.

Threads: one writer thread owns the connection that reads and writes. Every operation is a
job on its queue; the writer takes all queued jobs, runs them in one transaction and commits
once (group commit), so a burst of concurrent requests shares one commit. If a job fails, the
group runs again with one SAVEPOINT per job, so that job fails alone. Callers await an
asyncio future that the writer resolves with ``loop.call_soon_threadsafe``; no sqlite call
ever runs on the event loop thread. A second thread checkpoints the WAL into the database file
in the background, so no commit waits for those fsyncs.

Schema (``PRAGMA user_version`` 1)::

    events(seq INTEGER PRIMARY KEY AUTOINCREMENT, state 0 pending | 2 dead, attempts, kind,
           key, conversation, received_at, handler, error, died_at, body)
    seen(key TEXT PRIMARY KEY, at REAL) WITHOUT ROWID     -- dedupe keys, pruned by age
    meta(name TEXT PRIMARY KEY, value INTEGER)            -- 'claimed_through', see _claim_rows

Settled events are deleted; the dedupe window lives in ``seen``. ``AUTOINCREMENT`` keeps seqs
from ever being reused, which the in-memory claim cursor relies on.

One process consumes a file (calls ``claim``); others (``whizrouter dead list|replay``) may
open it at the same time to inspect, replay and drop dead letters.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar, cast
from urllib.parse import parse_qsl

import anyio
import orjson

from whizrouter.errors import ConfigurationError, InboxError, InboxFullError
from whizrouter.inbox.base import DEFAULT_DEDUPE_SECONDS, DeadLetter, RawEvent, StoredEvent

logger = logging.getLogger(__name__)

Synchronous = Literal["normal", "full"]

_T = TypeVar("_T")

_SCHEMA_VERSION = 1
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
CREATE TABLE IF NOT EXISTS seen (key TEXT PRIMARY KEY, at REAL NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS seen_at ON seen(at);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
INSERT OR IGNORE INTO meta(name, value) VALUES ('claimed_through', 0);
PRAGMA user_version = {_SCHEMA_VERSION};
COMMIT;
"""

# Keys and seqs travel as one JSON array, so a whole group needs one statement whatever its
# size: each statement hands the GIL to the busy event loop and waits to get it back.
_IN_JSON = "IN (SELECT value FROM json_each(?1))"
# A key is new when it was never seen, or seen before the dedupe horizon (then refreshed, so
# the window stays exact however late the prune runs). The rowcount says how many were new;
# only when some were not does a second query ask which: ``at`` is unique per call.
_REMEMBER_KEYS = (
    "INSERT INTO seen(key, at) SELECT value, ?2 FROM json_each(?1) WHERE true "
    "ON CONFLICT(key) DO UPDATE SET at = excluded.at WHERE seen.at < ?3"
)
_KEYS_WRITTEN = f"SELECT key FROM seen WHERE key {_IN_JSON} AND at = ?2"
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
_KILL = (
    "UPDATE events SET state = 2, handler = ?, attempts = ?, error = ?, died_at = ? "
    "WHERE seq = ? AND state = 0"
)
_STATS = (
    "SELECT (SELECT count(*) FROM events WHERE state = 0), "
    "(SELECT count(*) FROM events WHERE state = 2), (SELECT count(*) FROM seen)"
)
_DEAD_LETTERS = (
    "SELECT seq, kind, key, conversation, body, coalesce(handler, ''), attempts, "
    "coalesce(error, ''), coalesce(died_at, 0) FROM events WHERE state = 2 ORDER BY seq LIMIT ?"
)
_PRUNE = "DELETE FROM seen WHERE key IN (SELECT key FROM seen WHERE at < ? ORDER BY at LIMIT ?)"
_PRUNE_BATCH = 1000
# The writer only checkpoints itself (stalling its callers) if the WAL outgrows this many
# pages; normally a background thread copies it into the database file first.
_WAL_PAGES_FALLBACK = 8000
_CHECKPOINT_PAUSE = 0.2
_MAX_GROUP = 1024
_MAX_ROWS = 128  # events per INSERT statement

_EventRow = tuple[str, str, str, float, bytes]
_Claimed = tuple[list[StoredEvent], int | None, int, int]


class _Job(Generic[_T]):
    """One caller's operation, run by the writer thread inside the current group."""

    __slots__ = (
        "batch", "error", "fn", "future", "loop", "on_abandon", "on_commit", "readonly", "result"
    )  # fmt: skip

    def __init__(
        self,
        fn: Callable[[sqlite3.Connection], _T],
        on_commit: Callable[[_T], None] | None,
        on_abandon: Callable[[_T], None] | None,
        readonly: bool,
        batch: list[RawEvent] | None,
    ) -> None:
        self.fn = fn
        self.on_commit = on_commit  # writer thread, after the commit
        self.on_abandon = on_abandon  # loop thread, when the caller was cancelled meanwhile
        self.readonly = readonly
        self.batch = batch  # the events of an append, merged with the group's other appends
        self.loop = asyncio.get_running_loop()
        self.future: asyncio.Future[_T] = self.loop.create_future()
        self.result: _T | None = None
        self.error: BaseException | None = None


class _Signal:
    """A future for the loop thread that the writer thread resolves."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.future: asyncio.Future[None] = self.loop.create_future()

    def resolve(self, error: BaseException | None = None) -> None:
        """Resolve from the writer thread."""
        self.loop.call_soon_threadsafe(_resolve, self.future, None, error)


class _Stop(_Signal):
    """Queued last: the writer finishes the jobs before it, closes the connection, exits."""


class SqliteInbox:
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

    Attributes:
        description: the inbox URL, for logs (a file path holds no secret).
        durable: always True.
        path: the database file, absolute.
        synchronous: ``normal`` or ``full``.
        commits: transactions committed for callers since ``open``; with many concurrent
            callers this grows much slower than the number of calls (group commit).
    """

    durable: bool = True

    def __init__(
        self,
        path: str | Path,
        *,
        synchronous: Synchronous = "normal",
        max_backlog: int = 100_000,
        dedupe_seconds: float = DEFAULT_DEDUPE_SECONDS,
        prune_interval: float = 60.0,
        poll_interval: float = 1.0,
        busy_timeout: float = 5.0,
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
        ]:
            if value <= 0:
                raise ConfigurationError(f"sqlite inbox {name}={value!r} must be positive")
        if dedupe_seconds < 0:
            raise ConfigurationError(
                f"sqlite inbox dedupe_seconds={dedupe_seconds!r} must not be negative"
            )
        suffix = "?synchronous=full" if synchronous == "full" else ""
        self.description = f"sqlite:///{path}{suffix}"
        self.commits = 0
        self.path = Path(path).absolute()
        self.synchronous: Synchronous = synchronous
        self._max_backlog = max_backlog
        self._dedupe_seconds = dedupe_seconds
        self._prune_interval = prune_interval
        self._poll_interval = poll_interval
        self._busy_timeout = busy_timeout
        self._queue: queue.SimpleQueue[_Job[Any] | _Stop] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._checkpoint_due = threading.Event()
        self._checkpoint_stop = threading.Event()
        self._closing = False
        self._wakeup = anyio.Event()
        self._stash: list[StoredEvent] = []
        self._claiming = anyio.Lock()
        # Loop thread only: events of appends queued and not yet answered.
        self._reserved = 0
        # Writer thread only; the loop reads them (an int read is atomic).
        self._backlog = 0
        self._cursor = 0
        self._recovered = False
        self._writes = 0  # rows inserted by this process, counted before their commit
        self._claim_mark = 0  # ``_writes`` when the last claim looked
        self._data_version = 0  # changes when another process commits to the file
        self._last_now = 0.0

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        max_backlog: int = 100_000,
        dedupe_seconds: float = DEFAULT_DEDUPE_SECONDS,
        **options: Any,
    ) -> SqliteInbox:
        """Build the inbox a ``WHIZROUTER_INBOX`` URL names.

        ``sqlite:///inbox.db`` is relative to the working directory, ``sqlite:////var/x.db``
        absolute; ``?synchronous=full`` asks for power-loss safety.

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
            if name != "synchronous":
                raise ConfigurationError(
                    f"WHIZROUTER_INBOX={url!r}: unknown parameter {name!r}; "
                    "the only one is synchronous=normal|full"
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

    # -- lifecycle -------------------------------------------------------------------------

    async def open(self) -> None:
        """Open (or create) the file and start the writer thread.

        Raises:
            InboxError: the file cannot be opened or was written by a newer whizrouter.
        """
        if self._thread is not None:
            return
        self._queue = queue.SimpleQueue()
        self._closing = False
        self._wakeup = anyio.Event()
        self._stash = []
        self._claiming = anyio.Lock()
        self._cursor = self._writes = self._claim_mark = self.commits = 0
        self._recovered = False
        ready = _Signal()
        self._thread = threading.Thread(
            target=self._writer_main, args=(ready,), name="whizrouter-inbox", daemon=True
        )
        self._thread.start()
        try:
            await ready.future
        except BaseException:
            await self._join()
            raise

    async def close(self) -> None:
        """Finish the queued work, then stop the writer; unsettled events stay in the file."""
        if self._thread is None:
            return
        if not self._closing:
            self._closing = True
            self._wakeup.set()
            stop = _Stop()
            self._queue.put(stop)
            await stop.future
        await self._join()

    async def _join(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            await anyio.to_thread.run_sync(thread.join)

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self.path,
                timeout=self._busy_timeout,
                isolation_level=None,
                cached_statements=_MAX_ROWS + 64,
            )
        except sqlite3.Error as exc:
            raise InboxError(
                f"cannot open the sqlite inbox {self.path}: {exc}; check that the directory "
                "exists and is writable, or set WHIZROUTER_INBOX"
            ) from exc
        try:
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode != "wal":
                logger.warning(
                    "sqlite inbox %s runs in journal mode %r, not WAL (a network file "
                    "system?): still durable, but readers and the writer block each other",
                    self.path,
                    mode,
                )
            conn.execute(f"PRAGMA synchronous = {self.synchronous.upper()}")
            conn.execute(f"PRAGMA wal_autocheckpoint = {_WAL_PAGES_FALLBACK}")
            # Dedupe keys land on random pages of a large index: cache more than the 2 MB default.
            conn.execute("PRAGMA cache_size = -16384")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > _SCHEMA_VERSION:
                raise InboxError(
                    f"the sqlite inbox {self.path} has schema version {version}, written by "
                    "a newer whizrouter; upgrade whizrouter or point WHIZROUTER_INBOX elsewhere"
                )
            conn.executescript(_SCHEMA)
            self._backlog = _scalar(conn, _COUNT_PENDING)
            self._data_version = _scalar(conn, "PRAGMA data_version")
        except BaseException as exc:
            conn.close()
            if isinstance(exc, sqlite3.Error):
                raise InboxError(f"cannot use the sqlite inbox {self.path}: {exc}") from exc
            raise
        return conn

    # -- the writer thread -----------------------------------------------------------------

    def _writer_main(self, ready: _Signal) -> None:
        try:
            conn = self._connect()
        except BaseException as exc:
            ready.resolve(exc)
            return
        logger.info("sqlite inbox %s open: %d events pending", self.description, self._backlog)
        ready.resolve()
        next_prune = time.monotonic() + self._prune_interval
        stop: _Stop | None = None
        get, get_nowait = self._queue.get, self._queue.get_nowait
        checkpointer = threading.Thread(
            target=self._checkpoint_main, name="whizrouter-inbox-checkpoint", daemon=True
        )
        self._checkpoint_due.clear()
        self._checkpoint_stop.clear()
        checkpointer.start()
        try:
            while stop is None:
                try:
                    item = get(timeout=max(0.0, next_prune - time.monotonic()))
                except queue.Empty:
                    next_prune = self._prune(conn)
                    continue
                jobs: list[_Job[Any]] = []
                while True:
                    if isinstance(item, _Stop):
                        stop = item
                        break
                    jobs.append(item)
                    if len(jobs) >= _MAX_GROUP:
                        break
                    try:
                        item = get_nowait()
                    except queue.Empty:
                        break
                if jobs:
                    self._run_group(conn, jobs)
                if stop is None and time.monotonic() >= next_prune:
                    next_prune = self._prune(conn)
        except Exception:
            logger.exception("sqlite inbox %s: the writer thread failed", self.description)
            self._closing = True
        finally:
            self._checkpoint_stop.set()
            self._checkpoint_due.set()
            checkpointer.join()
            conn.close()  # the last connection: checkpoints and removes the WAL
            self._fail_queued()
            if stop is not None:
                stop.resolve()

    def _checkpoint_main(self) -> None:
        """Copy committed pages from the WAL into the database file, off the commit path.

        A checkpoint fsyncs the file; done by the writer, it would hold up every caller of
        the group for that long. A PASSIVE checkpoint on its own connection does not block
        the writer.
        """
        try:
            conn = sqlite3.connect(self.path, timeout=self._busy_timeout, isolation_level=None)
        except sqlite3.Error as exc:  # the writer's own fallback checkpoints still run
            logger.warning("sqlite inbox %s: no background checkpoints: %s", self.description, exc)
            return
        try:
            while True:
                self._checkpoint_due.wait()
                if self._checkpoint_stop.is_set():
                    return
                self._checkpoint_due.clear()
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error as exc:
                    logger.warning("sqlite inbox %s: checkpoint failed: %s", self.description, exc)
                self._checkpoint_stop.wait(_CHECKPOINT_PAUSE)
        finally:
            conn.close()

    def _fail_queued(self) -> None:
        """Answer jobs that can no longer run (only left after a writer failure)."""
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if isinstance(item, _Stop):
                item.resolve()
            else:
                item.error = InboxError(f"the sqlite inbox {self.description} stopped")
                self._answer([item])

    def _run_group(self, conn: sqlite3.Connection, jobs: list[_Job[Any]]) -> None:
        """Run queued jobs in one transaction and commit once, then answer their callers."""
        try:
            self._run_together(conn, jobs)
        except Exception as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if isinstance(exc, _JobFailed) and len(jobs) > 1:
                for job in jobs:
                    job.result = job.error = None
                self._run_isolated(conn, jobs)
            else:  # one job, or BEGIN/COMMIT failed (busy, disk full): all of them fail
                if not isinstance(exc, _JobFailed):
                    logger.error("sqlite inbox %s: commit failed: %s", self.description, exc)
                cause = exc.__cause__ if isinstance(exc, _JobFailed) else exc
                for job in jobs:
                    job.error = _as_inbox_error(cause)
        for job in jobs:
            if job.error is None and job.on_commit is not None:
                job.on_commit(job.result)
        self._answer(jobs)

    def _run_together(self, conn: sqlite3.Connection, jobs: list[_Job[Any]]) -> None:
        """The fast path: no savepoints, and all appends of the group merged into one."""
        conn.execute("BEGIN" if all(job.readonly for job in jobs) else "BEGIN IMMEDIATE")
        try:
            appends = [job for job in jobs if job.batch is not None]
            if appends:
                counts = self._insert(conn, [job.batch for job in appends if job.batch])
                for job, count in zip(appends, counts, strict=True):
                    job.result = count
            for job in jobs:
                if job.batch is None:
                    job.result = job.fn(conn)
        except Exception as exc:
            raise _JobFailed from exc
        conn.execute("COMMIT")
        self.commits += 1
        self._checkpoint_due.set()

    def _run_isolated(self, conn: sqlite3.Connection, jobs: list[_Job[Any]]) -> None:
        """The path after a failure: each job in its own savepoint, so it fails alone."""
        try:
            conn.execute("BEGIN IMMEDIATE")
            for job in jobs:
                conn.execute("SAVEPOINT job")
                try:
                    job.result = job.fn(conn)
                except Exception as exc:
                    job.error = _as_inbox_error(exc)
                    conn.execute("ROLLBACK TO job")
                conn.execute("RELEASE job")
            conn.execute("COMMIT")
            self.commits += 1
            self._checkpoint_due.set()
        except sqlite3.Error as exc:
            logger.error("sqlite inbox %s: commit failed: %s", self.description, exc)
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            for job in jobs:
                if job.error is None:
                    job.error = _as_inbox_error(exc)

    def _answer(self, jobs: list[_Job[Any]]) -> None:
        loops = {job.loop for job in jobs}
        for loop in loops:
            mine = jobs if len(loops) == 1 else [job for job in jobs if job.loop is loop]
            # RuntimeError: that loop is closed, so nobody waits for these results.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._settle, mine)

    def _settle(self, jobs: list[_Job[Any]]) -> None:
        """On the loop: hand each caller its result, and wake ``claim`` for new events."""
        for job in jobs:
            if job.future.cancelled() and job.error is None and job.on_abandon is not None:
                job.on_abandon(job.result)
            _resolve(job.future, job.result, job.error)
        if self._writes > self._claim_mark or self._stash:
            self._wakeup.set()

    def _prune(self, conn: sqlite3.Connection) -> float:
        """Forget one batch of expired dedupe keys; return when to prune next."""
        horizon = time.time() - self._dedupe_seconds
        try:
            conn.execute("BEGIN IMMEDIATE")
            pruned = conn.execute(_PRUNE, (horizon, _PRUNE_BATCH)).rowcount
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            logger.warning("sqlite inbox %s: pruning dedupe keys failed: %s", self.description, exc)
            if conn.in_transaction:
                conn.execute("ROLLBACK")
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
        if self._thread is None or self._closing:
            raise InboxError(f"the sqlite inbox {self.description} is not open")
        job = _Job(fn, on_commit, on_abandon, readonly, batch)
        self._queue.put(job)
        return await job.future

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
        if backlog + count > self._max_backlog:
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
        new = dict.fromkeys(event.key for batch in batches for event in batch)
        keys = orjson.dumps(list(new)).decode()
        remembered = conn.execute(_REMEMBER_KEYS, (keys, now, now - self._dedupe_seconds))
        if remembered.rowcount < len(new):
            new = dict.fromkeys(key for (key,) in conn.execute(_KEYS_WRITTEN, (keys, now)))
        rows: list[_EventRow] = []
        counts = []
        for batch in batches:
            before = len(rows)
            for event in batch:
                # Taken at its first occurrence: a repeat later in the group is a redelivery.
                if event.key in new:
                    del new[event.key]
                    rows.append((event.kind, event.key, event.conversation, now, event.body))
            counts.append(len(rows) - before)
        for start in range(0, len(rows), _MAX_ROWS):
            chunk = rows[start : start + _MAX_ROWS]
            conn.execute(_insert_sql(len(chunk)), [value for row in chunk for value in row])
        self._writes += len(rows)
        return counts

    def _inserted(self, count: int) -> None:
        self._backlog += count

    async def claim(self, limit: int) -> list[StoredEvent]:
        """Wait for pending events and return up to ``limit`` of them, oldest first.

        Each event is handed out once per process lifetime: a cursor remembers the highest seq
        handed out, and starts at 0 after ``open`` so everything unsettled is handed out again.
        ``StoredEvent.attempts`` counts handler runs that may have started, including one for
        an event that was in flight when the previous process stopped.

        Raises:
            InboxError: the inbox is not open (or was closed while waiting).
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
                elif self._closing:
                    raise InboxError(f"the sqlite inbox {self.description} is not open")
                look = False
                if self._stash:  # older than anything a later claim finds: they go first
                    events = self._stash + events
                    events, self._stash = events[:limit], events[limit:]
                if events:
                    return events
                if self._wakeup.is_set():
                    self._wakeup = anyio.Event()
                    continue  # something happened while we looked
                with anyio.move_on_after(self._poll_interval) as idle:
                    await self._wakeup.wait()
                # After a quiet interval, look for events another process put back.
                look = idle.cancelled_caught

    def _claim_rows(self, conn: sqlite3.Connection, limit: int) -> _Claimed:
        mark = self._writes
        # Attempts after a crash: meta 'claimed_through' is the highest seq this process
        # handed out. Every pending row at or below it was handed out (seqs are claimed in
        # order, never reused, and commit in seq order), so before its first claim a new
        # process counts one more attempt for each. One tiny UPDATE per claim, instead of
        # rewriting each claimed row (body included) to flag it. It runs at the first claim,
        # not at open(), so a CLI that opens the file meanwhile leaves the bot's events alone.
        if not self._recovered:
            bumped = conn.execute(
                "UPDATE events SET attempts = attempts + 1 WHERE state = 0 AND seq <= "
                "(SELECT value FROM meta WHERE name = 'claimed_through')"
            ).rowcount
            if bumped:
                logger.warning(
                    "sqlite inbox %s: %d events were in flight when the previous process "
                    "stopped; handing them out again",
                    self.description,
                    bumped,
                )
        events = [StoredEvent(*row) for row in conn.execute(_SELECT_READY, (self._cursor, limit))]
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


def _scalar(conn: sqlite3.Connection, sql: str) -> int:
    row = conn.execute(sql).fetchone()
    return int(row[0]) if row and row[0] is not None else 0


class _JobFailed(Exception):
    """A job of the group failed (its error is the cause), not BEGIN or COMMIT."""


def _as_inbox_error(exc: BaseException | None) -> InboxError:
    if isinstance(exc, InboxError):
        return exc
    error = InboxError(f"the sqlite inbox could not store or settle events: {exc}")
    error.__cause__ = exc
    return error


def _resolve(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
