"""The sqlite inbox's counts and dead letters: list, replay and drop them, from any process.

A part of :class:`~whizrouter.inbox.sqlite.inbox.SqliteInbox`, which provides the attributes
below; every call is a job for its writer thread. ``whizrouter dead`` and ``whizrouter inbox
stats`` use these while the consuming process runs.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence

from whizrouter.inbox.base import DeadLetter
from whizrouter.inbox.sqlite.claims import Claims, FileCounts
from whizrouter.inbox.sqlite.jobs import SubmitsJobs
from whizrouter.inbox.sqlite.journal import DELETE_OF_DEAD, SqliteJournal
from whizrouter.inbox.sqlite.schema import (
    DEAD_LETTERS,
    DELETE_ALL_DEAD,
    DELETE_DEAD,
    OLDEST_PENDING,
    REPLAY_ALL,
    REPLAY_SOME,
    STATS,
    json_array,
)


class DeadLetterCalls(SubmitsJobs):
    """``stats``, ``oldest_waiting``, ``dead_letters``, ``replay`` and ``drop``."""

    _claims: Claims | None
    _counts: FileCounts
    _journal: SqliteJournal

    def _inserted(self, count: int) -> None:
        raise NotImplementedError  # the inbox's: count rows added

    async def stats(self) -> dict[str, int]:
        """Counts by state: ``pending``, ``dead``, ``seen`` (remembered dedupe keys)."""
        row = await self._submit(lambda conn: conn.execute(STATS).fetchone(), readonly=True)
        return {"pending": row[0], "dead": row[1], "seen": row[2]}

    async def oldest_waiting(self) -> float | None:
        """When the oldest pending event was stored; see ``Inbox.oldest_waiting``."""
        row = await self._submit(
            lambda conn: conn.execute(OLDEST_PENDING).fetchone(), readonly=True
        )
        return float(row[0]) if row else None

    async def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        """The oldest dead letters (by seq), up to ``limit``."""
        rows = await self._submit(
            lambda conn: conn.execute(DEAD_LETTERS, (limit,)).fetchall(), readonly=True
        )
        return [DeadLetter(*row) for row in rows]

    async def replay(self, seqs: Sequence[int] | None = None) -> int:
        """Put dead letters back as new pending events (new seq, attempts 0).

        Works from another process while the consuming one runs: its ``claim`` finds them
        within ``poll_interval``. The keys stay remembered, so redeliveries are still dropped.
        """
        if seqs is not None and not seqs:
            return 0
        chosen = None if seqs is None else json_array(seqs)
        return await self._submit(lambda conn: self._replay_rows(conn, chosen), self._inserted)

    def _replay_rows(self, conn: sqlite3.Connection, seqs: str | None) -> int:
        if self._claims is not None:
            self._claims.forget_fresh()  # the replayed rows are not in memory
        now = time.time()
        if seqs is None:
            count = conn.execute(REPLAY_ALL, (None, now)).rowcount
            conn.execute(DELETE_ALL_DEAD)
        else:
            count = conn.execute(REPLAY_SOME, (seqs, now)).rowcount
            conn.execute(DELETE_DEAD, (seqs,))
        self._counts.writes += count
        return count

    async def drop(self, seqs: Sequence[int]) -> int:
        """Delete dead letters for good, with their send journal; return how many."""
        if not seqs:
            return 0
        job = self._journal.deleting_job(DELETE_OF_DEAD, DELETE_DEAD, json_array(seqs))
        dropped, keys = await self._submit(job)
        self._journal.forget(keys)
        return dropped
