"""Handing events out of a sqlite inbox file: once each per process, and again after a crash.

A cursor remembers the highest seq handed out; it starts at 0 after ``open``, so everything
unsettled is handed out again by a new process. ``meta.claimed_through`` keeps the highest seq
handed out on disk, so that the next process knows which pending events a crashed one had
taken: those come out ``maybe_ran``, and the dispatcher counts their next run
(``Inbox.count_run``) before it starts it. A clean stop (``release``) counts the attempt of
every claimed event that reached a handler and clears the mark, so the next start counts none.

The first claim also takes the file's consumer lock (``whizrouter.inbox.sqlite.lock``): a
second consumer of the same file would handle every event twice.

Events this process appends are handed out from memory rather than read back: once a claim
found no more pending rows after the cursor than it asked for, the inbox tells the claims
each event it inserts (``inserted``), and while nothing else can have added rows after the
cursor, those in-memory events are exactly the file's next pending rows. Another process's
commit (``PRAGMA data_version``), a replay, or a rollback (``forget_fresh``) sends the next
claim back to the file. Reading the rows back was a fifth of the writer's work per event
(callgrind: 9,500 of 45,800 instructions for one-message callbacks).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import sqlite3
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import anyio

from whizrouter.errors import InboxError
from whizrouter.inbox.base import RawEvent, StoredEvent, build_stored_event
from whizrouter.inbox.sqlite.lock import ConsumerLock
from whizrouter.inbox.sqlite.schema import (
    CLAIMED_THROUGH,
    CLEAR_CLAIMED_THROUGH,
    COUNT_CUT_SHORT,
    COUNT_PENDING,
    COUNT_TAKEN,
    DATA_VERSION,
    SELECT_READY,
    SET_CLAIMED_THROUGH,
    ReadyRow,
    json_array,
    scalar,
)
from whizrouter.inbox.sqlite.writer import Writer

# The inbox's own logger: one name to configure for everything the sqlite inbox reports.
logger = logging.getLogger("whizrouter.inbox.sqlite")

#: What a claim's job returns: the events, the backlog re-counted (None: unchanged), the
#: ``FileCounts.writes`` it saw, and the file's data version.
_Claimed = tuple[list[StoredEvent], int | None, int, int]


@dataclass(slots=True)
class FileCounts:
    """What this process knows of an open inbox file without reading it.

    The writer thread changes these and the loop thread reads them (an int read is atomic).

    Attributes:
        backlog: pending events.
        writes: rows inserted by this process, counted before their commit; a claim looks at
            the file again only when this grew since its last look (or after a quiet
            ``poll_interval``, for what other processes put back).
    """

    backlog: int = 0
    writes: int = 0


def _nothing() -> None:
    """``Claims``' ``changed_elsewhere`` when nobody asks."""


class Claims:
    """The consumer's side of one open inbox file; see the module docstring.

    Args:
        writer: the open inbox's writer thread.
        counts: the counters the inbox shares with its claims.
        consumer: the file's consumer lock; the first claim takes it.
        description: the inbox URL, for logs and errors.
        poll_interval: seconds between checks, while ``claim`` waits, for events another
            process put back (``whizrouter dead replay``).
        changed_elsewhere: called when a claim finds that another process changed the file.

    Attributes:
        data_version: the file's ``PRAGMA data_version`` at the last look; the inbox sets the
            first one at open. When it changed, another process committed to the file and the
            backlog is re-counted.
    """

    def __init__(
        self,
        writer: Writer,
        counts: FileCounts,
        consumer: ConsumerLock,
        *,
        description: str,
        poll_interval: float,
        changed_elsewhere: Callable[[], None] = _nothing,
    ) -> None:
        self._writer = writer
        self._counts = counts
        self._consumer = consumer
        self._description = description
        self._poll_interval = poll_interval
        self._wakeup = asyncio.Event()
        self._stash: list[StoredEvent] = []
        self._claiming = anyio.Lock()
        self._cursor = 0
        self._recovered = False
        # Writer thread only: pending events at or below this seq were taken by a process
        # that crashed (0: none).
        self._maybe_ran_through = 0
        self._claim_mark = 0  # ``counts.writes`` when the last claim looked
        # Writer thread only: while ``_fresh_valid``, the file's pending rows after the cursor
        # are exactly these events, which this process inserted (see the module docstring).
        self._fresh: deque[StoredEvent] = deque()
        self._fresh_valid = False
        self.data_version = 0
        # Called when a claim finds the file changed by another process.
        self._changed_elsewhere = changed_elsewhere

    def inserted(self, last_seq: int, events: Sequence[RawEvent], now: float) -> None:
        """On the writer thread, in the open transaction: one INSERT stored ``events`` as the
        rows up to ``last_seq`` (consecutive seqs), received at ``now``."""
        if self._fresh_valid:
            first = last_seq - len(events) + 1
            self._fresh.extend(
                build_stored_event(first + n, e.kind, e.key, e.conversation, e.body, 0, now)
                for n, e in enumerate(events)
            )

    def forget_fresh(self) -> None:
        """On the writer thread: rows after the cursor may differ from those in memory (a
        rollback, a replay): the next claim reads them from the file."""
        self._fresh_valid = False
        self._fresh.clear()

    def wake(self) -> None:
        """Wake a waiting ``claim`` (at close: it then sees the writer stopping and fails)."""
        self._wakeup.set()

    def wake_if_due(self) -> None:
        """After the writer answered a group: wake ``claim`` if it may find new events."""
        if self._counts.writes > self._claim_mark or self._stash:
            self._wakeup.set()

    async def claim(self, limit: int) -> list[StoredEvent]:
        """Wait for pending events and return up to ``limit`` (positive) of them, oldest first.

        Raises:
            InboxError: the inbox was closed (or closed while waiting), or another process
                (or another inbox in this one) already consumes the file.
        """
        # One claim at a time: the cursor moves when a claim's transaction commits.
        async with self._claiming:
            look = True  # read the file first: an earlier run or a replay may have left events
            while True:
                events: list[StoredEvent] = []
                if look or self._counts.writes > self._claim_mark:
                    events, *_ = await self._writer.enqueue(
                        functools.partial(self._claim_rows, limit=limit),
                        self._claimed,
                        on_abandon=self._stash_back,
                    )
                elif self._writer.stopping:
                    raise InboxError(f"the sqlite inbox {self._description} is not open")
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
        mark = self._counts.writes
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
            through = scalar(conn, CLAIMED_THROUGH)
            taken = scalar(conn, COUNT_TAKEN, (through,))
            if taken:
                self._maybe_ran_through = through
                logger.warning(
                    "sqlite inbox %s: the previous process stopped while holding %d events; "
                    "handing them out again (handlers may have started on some: their "
                    "ctx.attempt is 2 or more)",
                    self._description,
                    taken,
                )
        # Another process (the CLI's replay, a receiver-only process) changed the file: read
        # the rows back, and re-count the backlog.
        version = scalar(conn, DATA_VERSION)
        changed = version != self.data_version
        if changed:
            self.forget_fresh()
        fresh = self._fresh
        if self._fresh_valid:
            events = [fresh.popleft() for _ in range(min(limit, len(fresh)))]
        else:
            rows: list[ReadyRow] = conn.execute(SELECT_READY, (self._cursor, limit)).fetchall()
            # One build per event with every field (StoredEvent is frozen; see
            # build_stored_event).
            if through := self._maybe_ran_through:
                events = [build_stored_event(*row, row[0] <= through) for row in rows]
            else:
                events = [build_stored_event(*row) for row in rows]
            # Fewer than asked for: none is left after them, so what this process inserts
            # from now on is the next to hand out.
            self._fresh_valid = len(rows) < limit
        if events or not self._recovered:
            conn.execute(SET_CLAIMED_THROUGH, (events[-1].seq if events else self._cursor,))
        backlog = scalar(conn, COUNT_PENDING) if changed else None
        return events, backlog, mark, version

    def _claimed(self, result: _Claimed) -> None:
        events, backlog, mark, version = result
        self._recovered = True
        self._claim_mark = mark
        self.data_version = version
        if events:
            self._cursor = events[-1].seq
        if backlog is not None:
            self._counts.backlog = backlog
            self._changed_elsewhere()

    def _stash_back(self, result: _Claimed) -> None:
        # The claimer was cancelled after the writer took these events: keep them for the
        # next claim instead of stranding them until the next restart.
        self._stash.extend(result[0])

    async def release(self, unstarted: Sequence[int]) -> None:
        """Count the attempt of every claimed event except ``unstarted``; clear the mark.

        Events handed out but stashed (their claimer was cancelled) never started either.
        Nothing to do when this process never claimed: the mark is not ours to move.
        """
        if not self._recovered:
            return
        spared = json_array([*unstarted, *(event.seq for event in self._stash)])
        await self._writer.enqueue(lambda conn: self._release_rows(conn, spared))

    def _release_rows(self, conn: sqlite3.Connection, spared: str) -> None:
        conn.execute(COUNT_CUT_SHORT, (spared,))
        conn.execute(CLEAR_CLAIMED_THROUGH)
