"""The sqlite inbox's writer thread: every operation on the file, in group commits.

The writer thread owns the one connection that reads and writes (``connection``). Every
operation is a ``Job`` on its queue (``jobs``); the writer takes all queued jobs, runs them in
one transaction and commits once (group commit), so a burst of concurrent requests shares one
commit. If a job fails, the group runs again with one SAVEPOINT per job, so that job fails
alone. Callers await an asyncio future that the writer resolves with
``loop.call_soon_threadsafe``; no sqlite call ever runs on the event loop thread. The
checkpointer thread (``checkpointer``) copies the WAL into the database file in the
background, so no commit waits for those fsyncs.

What the jobs do (the SQL, the schema, the claim cursor) is the inbox's business
(``whizrouter.inbox.sqlite.inbox``, ``schema``, ``claims``); this module only runs them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import anyio

from whizrouter.errors import InboxError, InboxUnavailableError
from whizrouter.inbox.base import RawEvent
from whizrouter.inbox.sqlite.checkpointer import Checkpointer
from whizrouter.inbox.sqlite.connection import advice, connect
from whizrouter.inbox.sqlite.jobs import Job, Signal, Stop, resolve
from whizrouter.log_throttle import LogThrottle

# The inbox's own logger: one name to configure for everything the sqlite inbox reports.
logger = logging.getLogger("whizrouter.inbox.sqlite")

_T = TypeVar("_T")

_MAX_GROUP = 1024  # jobs per transaction; the rest wait for the next group

Prepare = Callable[[sqlite3.Connection], None]
InsertBatches = Callable[[sqlite3.Connection, list[list[RawEvent]]], list[int]]
Prune = Callable[[sqlite3.Connection], float]


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
        stopping: set when ``stop`` began or the thread failed; ``enqueue`` then refuses.
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
        self._queue: queue.SimpleQueue[Job[Any] | Stop] = queue.SimpleQueue()
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
        ready = Signal()
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
            stop = Stop()
            self._queue.put(stop)
            await stop.future
        await self._join()

    async def _join(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            await anyio.to_thread.run_sync(thread.join)

    def enqueue(
        self,
        fn: Callable[[sqlite3.Connection], _T],
        on_commit: Callable[[_T], None] | None = None,
        *,
        readonly: bool = False,
        on_abandon: Callable[[_T], None] | None = None,
        batch: list[RawEvent] | None = None,
    ) -> asyncio.Future[_T]:
        """Queue a job now, in order with every job queued before and after it; returns the
        future of its result, which a caller may await later. See ``Job`` for the arguments.

        Raises:
            InboxError: the writer is not running (the future fails with one when the job or
                its commit failed).
        """
        if self._thread is None or self.stopping:
            raise InboxError(f"the sqlite inbox {self.description} is not open")
        job = Job(fn, on_commit, on_abandon, readonly, batch)
        self._queue.put(job)
        return job.future

    # -- on the writer thread --------------------------------------------------------------

    def _main(self, ready: Signal) -> None:
        try:
            conn = connect(
                self._path,
                synchronous=self._synchronous,
                busy_timeout=self._busy_timeout,
                statements=self._statements,
                prepare=self._prepare,
            )
        except BaseException as exc:
            ready.resolve(exc)
            return
        ready.resolve()
        next_prune = time.monotonic() + self._prune_interval
        stop: Stop | None = None
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
                    if isinstance(item, Stop):
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
            if isinstance(item, Stop):
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
                f"{advice(str(exc), self._path)} (meanwhile callbacks get 503 and events "
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
                advice(str(exc), self._path),
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
            resolve(job.future, job.result, job.error)
        self._after_settle()


class _JobFailed(Exception):
    """A job of the group failed (its error is the cause), not BEGIN or COMMIT."""
