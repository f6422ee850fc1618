"""Storing events in the sqlite inbox: ``append``, the backlog bound, the batched inserts.

A part of :class:`~whizrouter.inbox.sqlite.inbox.SqliteInbox`, which provides the attributes
below. ``append`` refuses a callback that would pass ``max_backlog``, then queues its events
as one job for the writer thread; the writer hands the events of every append in a group
commit to ``_insert`` at once, which drops the keys the dedupe window (``seen``) remembers,
inserts the rest in statements of up to ``MAX_ROWS`` rows and tells the claims (``claims``)
what it inserted, so they need not read it back.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence

from whizrouter.errors import InboxFullError
from whizrouter.inbox.base import RawEvent
from whizrouter.inbox.sqlite.claims import Claims, FileCounts
from whizrouter.inbox.sqlite.jobs import SubmitsJobs
from whizrouter.inbox.sqlite.schema import MAX_ROWS, EventRow, insert_sql
from whizrouter.inbox.sqlite.seen import SeenKeys
from whizrouter.inbox.sqlite.writer import Writer


class AppendCalls(SubmitsJobs):
    """``append``, and ``_insert``, the writer's insert of a group commit's appends."""

    _writer: Writer | None
    _claims: Claims | None
    _counts: FileCounts
    _seen: SeenKeys  # writer thread only
    _last_now: float  # writer thread only
    _reserved: int  # loop thread only: events of appends queued and not yet answered
    _max_backlog: int

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
        backlog = self._counts.backlog + self._reserved
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
        rows: list[EventRow] = []
        stored: list[RawEvent] = []
        counts = []
        for batch in batches:
            before = len(rows)
            for event in batch:
                # Taken at its first occurrence: a repeat later in the group is a redelivery.
                if event.key in new:
                    new.discard(event.key)
                    # A bytearray, not the bytes: sqlite3 binds str, int, float and bytearray
                    # as they are, but looks for an adapter for bytes, and the failed look-up
                    # raises and clears an AttributeError (about 5,000 instructions an event).
                    body = bytearray(event.body)
                    rows.append((event.kind, event.key, event.conversation, now, body))
                    stored.append(event)
            counts.append(len(rows) - before)
        claims = self._claims
        for start in range(0, len(rows), MAX_ROWS):
            chunk = rows[start : start + MAX_ROWS]
            cursor = conn.execute(insert_sql(len(chunk)), [value for row in chunk for value in row])
            if claims is not None and cursor.lastrowid:
                claims.inserted(cursor.lastrowid, stored[start : start + MAX_ROWS], now)
        self._counts.writes += len(rows)
        return counts

    def _inserted(self, count: int) -> None:
        self._counts.backlog += count
