"""What runs under the ``sqlite`` inbox: the writer thread, the checkpointer, the consumer lock.

The writer thread owns the one connection that reads and writes. Every operation is a
``Job`` on its queue; the writer takes all queued jobs, runs them in one transaction and
commits once (group commit), so a burst of concurrent requests shares one commit. If a job
fails, the group runs again with one SAVEPOINT per job, so that job fails alone. Callers await
an asyncio future that the writer resolves with ``loop.call_soon_threadsafe``; no sqlite call
ever runs on the event loop thread. The checkpointer thread copies the WAL into the database
file in the background, so no commit waits for those fsyncs. ``ConsumerLock`` keeps a file
to one consuming process; the writer thread takes it, never the event loop.

What the jobs do (the SQL, the schema, the claim cursor) is ``whizrouter.inbox.sqlite``'s
business; this module only runs them.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic, TypeVar

import anyio

from whizrouter.errors import InboxError, InboxUnavailableError
from whizrouter.inbox.base import RawEvent
from whizrouter.log_throttle import LogThrottle

# The inbox's own logger: one name to configure for everything the sqlite inbox reports.
logger = logging.getLogger("whizrouter.inbox.sqlite")

_T = TypeVar("_T")

_MAX_GROUP = 1024  # jobs per transaction; the rest wait for the next group
# At most one checkpoint every 20 ms. A checkpoint fsyncs, and the writer's appends to the WAL
# wait behind that fsync on the file system: the less each one has to flush, the shorter the
# wait. In the benchmark, 200 ms between checkpoints put sqlite's p99 at 14 ms, 1 s at 32 ms,
# 20 ms at 9 ms, for the same throughput; back to back (0 s) cost 15 % of it.
_CHECKPOINT_PAUSE = 0.02
# The writer only checkpoints itself (stalling its callers) if the WAL outgrows this many
# pages; normally the checkpointer copies it into the database file first.
_WAL_PAGES_FALLBACK = 8000

Prepare = Callable[[sqlite3.Connection], None]
InsertBatches = Callable[[sqlite3.Connection, list[list[RawEvent]]], list[int]]
Prune = Callable[[sqlite3.Connection], float]


class Job(Generic[_T]):
    """One caller's operation, run by the writer thread inside the current group.

    Created on the event loop thread, whose loop then resolves ``future``.

    Args:
        fn: the work, given the writer's connection inside an open transaction.
        on_commit: runs on the writer thread with the result, once the group committed.
        on_abandon: runs on the loop thread with the result, when the caller was cancelled
            while the job ran (so a result that must not be lost can be put back).
        readonly: the job only reads; a group of such jobs needs no write lock.
        batch: the events of an append, merged with the group's other appends on the fast
            path; ``fn`` stores them alone when the group runs job by job.
    """

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
        self.on_commit = on_commit
        self.on_abandon = on_abandon
        self.readonly = readonly
        self.batch = batch
        self.loop = asyncio.get_running_loop()
        self.future: asyncio.Future[_T] = self.loop.create_future()
        self.result: _T | None = None
        self.error: BaseException | None = None


class _Signal:
    """A future for the loop thread that another thread resolves."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.future: asyncio.Future[None] = self.loop.create_future()

    def resolve(self, error: BaseException | None = None) -> None:
        """Resolve from the writer thread, with ``error`` if it failed."""
        self.loop.call_soon_threadsafe(_resolve, self.future, None, error)


class _Stop(_Signal):
    """Queued last: the writer finishes the jobs before it, closes the connection, exits."""


class Writer:
    """The thread that owns the inbox's connection and runs every job in commit groups.

    Args:
        description: names the inbox in logs and errors.
        path: the database file; the checkpointer opens its own connection to it.
        synchronous: ``normal`` or ``full``, the connection's ``PRAGMA synchronous``.
        busy_timeout: seconds to wait for another connection's lock.
        statements: prepared statements the connection caches.
        prepare: sets up the schema on the new connection (on the writer thread); what it
            raises fails ``start``, a ``sqlite3.Error`` as an ``InboxError``.
        insert: stores the events of several appends in the open transaction and returns how
            many of each were new; the fast path merges a group's appends through it.
        prune: background maintenance between groups; returns the ``time.monotonic()`` at
            which to run it next (``maintain_soon`` brings that forward).
        prune_interval: seconds from the start to the first ``prune``.
        on_rollback: runs on the writer thread whenever a group's transaction, or a job's
            savepoint in it, was rolled back, so state mirrored from the file can be reloaded.
        after_settle: runs on the loop thread after a group's callers were answered.

    Attributes:
        commits: transactions committed for callers.
        stopping: set when ``stop`` began or the thread failed; ``submit`` then refuses.
    """

    def __init__(
        self,
        description: str,
        path: Path,
        *,
        synchronous: str,
        busy_timeout: float,
        statements: int,
        prepare: Prepare,
        insert: InsertBatches,
        prune: Prune,
        prune_interval: float,
        on_rollback: Callable[[], None],
        after_settle: Callable[[], None],
    ) -> None:
        self.description = description
        self.commits = 0
        self._commit_failures = 0
        self._commit_failure_log = LogThrottle()
        self.stopping = False
        self._path = path
        self._synchronous = synchronous
        self._busy_timeout = busy_timeout
        self._statements = statements
        self._prepare = prepare
        self._insert = insert
        self._prune = prune
        self._prune_interval = prune_interval
        self._maintain_now = False  # writer thread only
        self._on_rollback = on_rollback
        self._after_settle = after_settle
        self._checkpointer = Checkpointer(path, description, busy_timeout=busy_timeout)
        self._queue: queue.SimpleQueue[Job[Any] | _Stop] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def maintain_soon(self) -> None:
        """Run ``prune`` right after the current group (call on the writer thread)."""
        self._maintain_now = True

    @property
    def running(self) -> bool:
        """Whether the thread was started and ``stop`` has not finished."""
        return self._thread is not None

    async def start(self) -> None:
        """Start the thread and wait until its connection is ready.

        Raises:
            InboxError: the file cannot be opened or ``prepare`` refused it; the thread has ended.
        """
        ready = _Signal()
        self._thread = threading.Thread(
            target=self._main, args=(ready,), name="whizrouter-inbox", daemon=True
        )
        self._thread.start()
        try:
            await ready.future
        except BaseException:
            await self._join()
            raise

    async def stop(self) -> None:
        """Run the jobs queued so far, close the connection and end the thread."""
        if self._thread is None:
            return
        if not self.stopping:
            self.stopping = True
            stop = _Stop()
            self._queue.put(stop)
            await stop.future
        await self._join()

    async def _join(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            await anyio.to_thread.run_sync(thread.join)

    async def submit(
        self,
        fn: Callable[[sqlite3.Connection], _T],
        on_commit: Callable[[_T], None] | None = None,
        *,
        readonly: bool = False,
        on_abandon: Callable[[_T], None] | None = None,
        batch: list[RawEvent] | None = None,
    ) -> _T:
        """Queue a job and wait for its result; see ``Job`` for the arguments.

        Raises:
            InboxError: the writer is not running, or the job or its commit failed.
        """
        if self._thread is None or self.stopping:
            raise InboxError(f"the sqlite inbox {self.description} is not open")
        job = Job(fn, on_commit, on_abandon, readonly, batch)
        self._queue.put(job)
        return await job.future

    # -- on the writer thread --------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self._path,
                timeout=self._busy_timeout,
                isolation_level=None,
                cached_statements=self._statements,
            )
        except sqlite3.Error as exc:
            raise InboxError(
                f"cannot open the sqlite inbox {self._path}: {exc}; check that the directory "
                "exists and is writable, or set WHIZROUTER_INBOX"
            ) from exc
        try:
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode != "wal":
                logger.warning(
                    "sqlite inbox %s runs in journal mode %r, not WAL (a network file "
                    "system?): still durable, but readers and the writer block each other",
                    self._path,
                    mode,
                )
            conn.execute(f"PRAGMA synchronous = {self._synchronous.upper()}")
            conn.execute(f"PRAGMA wal_autocheckpoint = {_WAL_PAGES_FALLBACK}")
            # Dedupe keys land on random pages of a large index: cache more than the 2 MB default.
            conn.execute("PRAGMA cache_size = -16384")
            self._prepare(conn)
        except BaseException as exc:
            conn.close()
            if isinstance(exc, sqlite3.OperationalError):
                # The file may be a healthy inbox the process cannot write: moving it aside
                # would strand its events, so say what to fix instead.
                raise InboxError(
                    f"cannot use the sqlite inbox {self._path}: {exc}; "
                    f"{_open_advice(str(exc), self._path)}"
                ) from exc
            if isinstance(exc, sqlite3.Error):
                raise InboxError(
                    f"cannot use the sqlite inbox {self._path}: {exc}; if the file is not a "
                    "whizrouter inbox or is damaged, move it aside (a new one is created) or "
                    "point WHIZROUTER_INBOX at another file"
                ) from exc
            raise
        return conn

    def _main(self, ready: _Signal) -> None:
        try:
            conn = self._connect()
        except BaseException as exc:
            ready.resolve(exc)
            return
        ready.resolve()
        next_prune = time.monotonic() + self._prune_interval
        stop: _Stop | None = None
        get, get_nowait = self._queue.get, self._queue.get_nowait
        self._checkpointer.start()
        try:
            while stop is None:
                try:
                    item = get(timeout=max(0.0, next_prune - time.monotonic()))
                except queue.Empty:
                    next_prune = self._prune(conn)
                    continue
                jobs: list[Job[Any]] = []
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
                if stop is None and (self._maintain_now or time.monotonic() >= next_prune):
                    self._maintain_now = False
                    next_prune = self._prune(conn)
        except Exception:
            logger.exception("sqlite inbox %s: the writer thread failed", self.description)
            self.stopping = True
        finally:
            self._checkpointer.stop()
            conn.close()  # the last connection: checkpoints and removes the WAL
            self._fail_queued()
            if stop is not None:
                stop.resolve()

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

    def _run_group(self, conn: sqlite3.Connection, jobs: list[Job[Any]]) -> None:
        """Run queued jobs in one transaction and commit once, then answer their callers."""
        # The order the jobs ran in, which their on_commit callbacks keep: a claim that
        # recounts the backlog must see the appends its count includes already counted.
        ran = jobs
        try:
            ran = self._run_together(conn, jobs)
        except Exception as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            self._on_rollback()  # also when COMMIT failed and sqlite rolled back itself
            if isinstance(exc, _JobFailed) and len(jobs) > 1:
                for job in jobs:
                    job.result = job.error = None
                self._run_isolated(conn, jobs)
            else:  # one job, or BEGIN/COMMIT failed (busy, disk full): all of them fail
                if not isinstance(exc, _JobFailed):
                    self._log_commit_failure(exc)
                cause = exc.__cause__ if isinstance(exc, _JobFailed) else exc
                for job in jobs:
                    job.error = self._inbox_error(cause)
        for job in ran:
            if job.error is None and job.on_commit is not None:
                job.on_commit(job.result)
        self._answer(jobs)

    def _run_together(self, conn: sqlite3.Connection, jobs: list[Job[Any]]) -> list[Job[Any]]:
        """The fast path: no savepoints, and all appends of the group merged into one, run
        first. Returns the jobs in the order they ran."""
        conn.execute("BEGIN" if all(job.readonly for job in jobs) else "BEGIN IMMEDIATE")
        appends = [job for job in jobs if job.batch is not None]
        others = [job for job in jobs if job.batch is None]
        try:
            if appends:
                counts = self._insert(conn, [job.batch for job in appends if job.batch])
                for job, count in zip(appends, counts, strict=True):
                    job.result = count
            for job in others:
                job.result = job.fn(conn)
        except Exception as exc:
            raise _JobFailed from exc
        conn.execute("COMMIT")
        self.commits += 1
        self._checkpointer.request()
        return appends + others

    def _run_isolated(self, conn: sqlite3.Connection, jobs: list[Job[Any]]) -> None:
        """The path after a failure: each job in its own savepoint, so it fails alone."""
        try:
            conn.execute("BEGIN IMMEDIATE")
            for job in jobs:
                conn.execute("SAVEPOINT job")
                try:
                    job.result = job.fn(conn)
                except Exception as exc:
                    job.error = self._inbox_error(exc)
                    conn.execute("ROLLBACK TO job")
                    self._on_rollback()
                conn.execute("RELEASE job")
            conn.execute("COMMIT")
            self.commits += 1
            self._checkpointer.request()
        except sqlite3.Error as exc:
            self._log_commit_failure(exc)
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            self._on_rollback()
            for job in jobs:
                if job.error is None:
                    job.error = self._inbox_error(exc)

    def _inbox_error(self, exc: BaseException | None) -> InboxError:
        """The error a job's caller gets: ``InboxUnavailableError`` (with what to do) when the
        file's storage fails for now, else an ``InboxError`` caused by ``exc``."""
        if isinstance(exc, InboxError):
            return exc
        if isinstance(exc, sqlite3.OperationalError):
            error: InboxError = InboxUnavailableError(
                f"the sqlite inbox {self.description} cannot write: {exc}; "
                f"{_advice(str(exc), self._path)} (meanwhile callbacks get 503 and events "
                "wait; it goes on by itself once it can write)"
            )
        else:
            error = InboxError(f"the sqlite inbox could not store or settle events: {exc}")
        error.__cause__ = exc
        return error

    def _log_commit_failure(self, exc: BaseException) -> None:
        # Every group fails alike while the disk is full: one line every 10 s, not one per
        # group (the callers' errors say it again, rate-limited where they are logged).
        self._commit_failures += 1
        if self._commit_failure_log.due():
            logger.error(
                "sqlite inbox %s: commit failed (%d so far): %s; %s",
                self.description,
                self._commit_failures,
                exc,
                _advice(str(exc), self._path),
            )

    def _answer(self, jobs: list[Job[Any]]) -> None:
        loops = {job.loop for job in jobs}
        for loop in loops:
            mine = jobs if len(loops) == 1 else [job for job in jobs if job.loop is loop]
            # RuntimeError: that loop is closed, so nobody waits for these results.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._settle, mine)

    def _settle(self, jobs: list[Job[Any]]) -> None:
        """On the loop: hand each caller its result, then tell the inbox."""
        for job in jobs:
            if job.future.cancelled() and job.error is None and job.on_abandon is not None:
                job.on_abandon(job.result)
            _resolve(job.future, job.result, job.error)
        self._after_settle()


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
                    logger.warning("sqlite inbox %s: checkpoint failed: %s", self._description, exc)
                self._stop.wait(_CHECKPOINT_PAUSE)
        finally:
            conn.close()


class ConsumerLock:
    """The claim on a file: an exclusive ``flock`` on ``<db>.lock``, from a first claim to close.

    A ``flock`` belongs to one open file description: the kernel drops it when the process
    dies, SIGKILL included, and two opens in one process exclude each other. The file is
    created once and never deleted (a process could lock a file just unlinked by another);
    the holder writes its pid into it for the message the next claimer gets.

    Args:
        database: the inbox's database file; the lock file sits beside it.
    """

    def __init__(self, database: Path) -> None:
        self.database = database
        self.path = database.with_name(database.name + ".lock")
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """Whether this inbox holds the lock."""
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock without waiting (on the writer thread); holding it already is fine.

        Raises:
            InboxError: another holder has it, or the lock file cannot be opened.
        """
        if self._fd is not None:
            return
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise InboxError(
                f"cannot open the lock file {self.path} of the sqlite inbox: {exc}; the "
                "directory of the inbox file must be writable"
            ) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _read_pid(fd)
            os.close(fd)
            if not isinstance(exc, BlockingIOError):
                raise InboxError(f"cannot lock {self.path}: {exc}") from exc
            if holder == os.getpid():
                who, pid = "another inbox in this process is", ""
            else:
                who, pid = "another process is", f" (pid {holder})" if holder else ""
            refusal = InboxError(
                f"{who} already handling events from {self.database}{pid}; run one bot per "
                "inbox file, or use a nats:// inbox to scale out"
            )
            raise refusal from None
        with contextlib.suppress(OSError):  # the pid only improves the message
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Give the lock up (closing the descriptor drops it); not holding it is fine."""
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            os.close(fd)


class _JobFailed(Exception):
    """A job of the group failed (its error is the cause), not BEGIN or COMMIT."""


def _open_advice(problem: str, path: Path) -> str:
    """What to do when an existing inbox file cannot be opened for writing."""
    if "full" in problem or "locked" in problem or "busy" in problem:
        return _advice(problem, path)
    return (
        f"check that {path} and its directory are writable by this user and that the file "
        "system is not read-only; the file keeps its events, so do not move it aside"
    )


def _advice(problem: str, path: Path) -> str:
    """What to do about a storage error of the inbox file ``path``."""
    if "full" in problem:
        return f"free disk space on the file system of {path}"
    if "readonly" in problem or "read-only" in problem:
        return f"make {path} and its directory writable again"
    if "locked" in problem or "busy" in problem:
        return f"another process holds a write lock on {path} for too long"
    return f"check the disk that holds {path}"


def _resolve(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    """Set ``future``'s result, or its exception if ``error``; a done future stays as it is."""
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


def _read_pid(fd: int) -> int | None:
    """The pid a lock holder wrote into the lock file, if it did yet."""
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
