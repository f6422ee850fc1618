"""The sqlite inbox's dedupe window: which event keys it has stored, for how long.

Provider ids arrive in no particular order, so a B-tree keyed by them takes each new key on
a page of its own: with one insert per event, every commit rewrites a page per event (about
three times the cost of storing the event itself). The window is therefore kept in two
levels, like a small log-structured merge tree:

- ``seen_recent``: an append-only table (rows only ever go on its last page) of the newest
  keys, mirrored in a dict on the writer thread, so checking a recent key reads no page;
- ``seen``: the B-tree of the older keys. When ``merge_at`` recent keys have gathered, they
  are sorted on a thread of their own (``merge_plan``), then move into it in key order, a
  slice per transaction between commit groups, and their recent rows go, a slice at a time
  too. Many keys then share each page write, and no commit group waits long for one.

A key is new when neither level holds it inside the window. The dict only ever holds keys
committed to ``seen_recent`` (or written by the open transaction): after any rollback it is
reloaded from the table before the next check, so a key whose event was not stored is never
taken for a redelivery. Other processes appending to the same file (receiver-only ones, the
CLI's replay) are caught up on at each check when ``PRAGMA data_version`` says the file
changed; a merge or prune that deletes recent rows bumps ``meta.seen_generation`` so that
every process reloads.

Everything here runs on the inbox's writer thread, inside transactions the writer opens,
except ``maintain`` (``merge_step`` and ``prune``), which the writer calls between commit
groups and which opens its own.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path

import orjson

from whizrouter.inbox.sqlite.merge_plan import MergePlan, MergePlanner

logger = logging.getLogger("whizrouter.inbox.sqlite")

MERGE_SLICE = 256  # keys a merge moves per transaction: about 1 ms of the writer's time
# Merged recent rows deleted per transaction (about 1 ms): deleting 50,000 at once held the
# writer for about 15 ms.
DROP_SLICE = 4096
PLAN_POLL = 0.005  # seconds between looks for a merge's plan while it is being read
PRUNE_BATCH = 1000  # expired keys of each level forgotten per transaction

SCHEMA = """
CREATE TABLE IF NOT EXISTS seen (key TEXT PRIMARY KEY, at REAL NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS seen_at ON seen(at);
CREATE TABLE IF NOT EXISTS seen_recent (
    id INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL, at REAL NOT NULL
);
INSERT OR IGNORE INTO meta(name, value) VALUES ('seen_generation', 0);
"""

# Keys and seqs travel as one JSON array, so a whole group needs one statement whatever its
# size: each statement hands the GIL to the busy event loop and waits to get it back.
IN_JSON = "IN (SELECT value FROM json_each(?1))"
# ``id`` comes from AUTOINCREMENT: never reused, so "rows after id N" stays meaningful after
# deletes.
_APPEND_RECENT = "INSERT INTO seen_recent(key, at) SELECT value, ?2 FROM json_each(?1)"
# The keys of ?1 that the older level does not hold inside the window, appended at once: the
# look-up and the append in one statement (one GIL hand-over, one JSON array less per group).
_APPEND_UNSEEN = (
    "INSERT INTO seen_recent(key, at) SELECT j.value, ?3 FROM json_each(?1) AS j "
    "WHERE NOT EXISTS (SELECT 1 FROM seen WHERE seen.key = j.value AND seen.at >= ?2)"
)
_RECENT_AFTER = "SELECT id, key, at FROM seen_recent WHERE id > ? ORDER BY id"
_APPENDED = "SELECT id, key FROM seen_recent WHERE id > ? ORDER BY id"
_GENERATION = "SELECT value FROM meta WHERE name = 'seen_generation'"
_NEXT_GENERATION = "UPDATE meta SET value = value + 1 WHERE name = 'seen_generation'"
# A slice of a merge's keys (a JSON array, in key order), all at one time, so the ``seen_at``
# entries of a merge are written in key order at one end of that index, not each on a page of
# its own. ``WHERE true`` lets sqlite tell the upsert's ON CONFLICT from a join's ON.
_MERGE = (
    "INSERT INTO seen(key, at) SELECT value, ?2 FROM json_each(?1) WHERE true "
    "ON CONFLICT(key) DO UPDATE SET at = excluded.at WHERE excluded.at > seen.at"
)
# A slice of the merged rows: at most ?2 ids from the oldest left, none past ?1.
_DROP_MERGED = (
    "DELETE FROM seen_recent WHERE id <= min(?1, (SELECT min(id) FROM seen_recent) + ?2 - 1)"
)
_FIRST_RECENT = "SELECT min(id) FROM seen_recent"
_MAIN_FILE = "SELECT file FROM pragma_database_list WHERE name = 'main'"
_PRUNE_OLDER = (
    "DELETE FROM seen WHERE key IN (SELECT key FROM seen WHERE at < ? ORDER BY at LIMIT ?)"
)
# Recent rows are (nearly) in time order: this stops at the first batch it finds expired.
_PRUNE_RECENT = (
    "DELETE FROM seen_recent WHERE id IN "
    "(SELECT id FROM seen_recent WHERE at < ? ORDER BY id LIMIT ?)"
)
# Keys in both levels (between a merge's slices and its end) count once.
COUNT = (
    "(SELECT count(*) FROM seen) + (SELECT count(DISTINCT key) FROM seen_recent AS r "
    "WHERE NOT EXISTS (SELECT 1 FROM seen WHERE seen.key = r.key))"
)


class SeenKeys:
    """The two-level dedupe window of one sqlite inbox connection; see the module docstring.

    Args:
        window: seconds a key is remembered; a key seen longer ago is new again.
        merge_at: recent keys that start a merge into the ``seen`` B-tree. The dict holding
            them costs about 150 bytes a key.
    """

    def __init__(self, window: float, *, merge_at: int) -> None:
        self.window = window
        self.merge_at = merge_at
        self.merge_slice = MERGE_SLICE
        self._recent: dict[str, float] = {}
        self._through = 0  # highest seen_recent id mirrored in _recent
        self._generation = -1
        self._data_version = -1
        self._stale = True
        self._planner: MergePlanner | None = None  # made at the first merge, on its file
        self._plan: MergePlan | None = None  # the running merge's
        self._merged = 0  # how many of its keys are in ``seen``

    @property
    def merge_due(self) -> bool:
        """A merge runs, or enough recent keys gathered to start one."""
        return self._plan is not None or len(self._recent) >= self.merge_at

    def invalidate(self) -> None:
        """The open transaction was rolled back (wholly or to a savepoint): reload first."""
        self._stale = True

    def new_keys(self, conn: sqlite3.Connection, keys: list[str], now: float) -> set[str]:
        """Which of ``keys`` (distinct) are outside the window; remember those at ``now``.

        Runs inside the writer's open write transaction, so the answer and the rows it adds
        commit or roll back with the events they guard.
        """
        self._sync(conn)
        fresh_after = now - self.window
        recent = self._recent
        new: set[str] = set()
        unknown: list[str] = []
        for key in keys:
            at = recent.get(key)
            if at is None:
                unknown.append(key)
            elif at < fresh_after:
                new.add(key)  # the older level can only hold it from even earlier
        if new:  # keys of the recent level that expired: new again, whatever the older says
            ordered = [key for key in keys if key in new]
            cursor = conn.execute(_APPEND_RECENT, (_json(ordered), now))
            for key in ordered:
                recent[key] = now
            self._through = cursor.lastrowid or self._through
        if unknown:
            before = self._through
            cursor = conn.execute(_APPEND_UNSEEN, (_json(unknown), fresh_after, now))
            if cursor.rowcount == len(unknown):  # the usual case: none was seen before
                appended = unknown
                self._through = cursor.lastrowid or self._through
            elif cursor.rowcount > 0:  # some were redeliveries: read back which were appended
                appended = []
                for row_id, key in conn.execute(_APPENDED, (before,)):
                    appended.append(key)
                    self._through = row_id
            else:
                appended = []
            for key in appended:
                recent[key] = now
            new.update(appended)
        return new

    def maintain(self, conn: sqlite3.Connection, *, interval: float, description: str) -> float:
        """Between commit groups: one slice of a merge if one is due, else forget one batch
        of expired keys. Returns the ``time.monotonic()`` at which to run next: at once while
        a merge or a full batch of expired keys leaves more to do, else in ``interval``.

        A failure is logged (naming the inbox by ``description``) and retried in ``interval``.
        """
        if self.merge_due:
            try:
                moved = self.merge_step(conn)
            except sqlite3.Error as exc:
                logger.warning("sqlite inbox %s: merging dedupe keys failed: %s", description, exc)
                return time.monotonic() + interval
            # The next slice right after the groups queued meanwhile; a plan being read is
            # looked for again shortly.
            return time.monotonic() + (0.0 if moved else PLAN_POLL)
        try:
            pruned = self.prune(conn, time.time() - self.window, PRUNE_BATCH)
        except sqlite3.Error as exc:
            logger.warning("sqlite inbox %s: pruning dedupe keys failed: %s", description, exc)
            return time.monotonic() + interval
        if pruned:
            logger.debug("sqlite inbox %s: forgot %d dedupe keys", description, pruned)
        # A full batch means more are due: go on right after the jobs queued meanwhile.
        return time.monotonic() + (0.0 if pruned == PRUNE_BATCH else interval)

    def merge_step(self, conn: sqlite3.Connection) -> bool:
        """One step of a merge, in its own transaction; False while its plan is being read.

        Before the first step the keys are sorted on a thread of their own
        (``MergePlanner``). Each step then moves ``merge_slice`` keys into the ``seen``
        B-tree, and once every key is there, deletes ``DROP_SLICE`` of the merged rows from
        ``seen_recent``. Until then each key is in both levels, which changes no answer, so
        a crash in between only means the next process merges those keys again.
        """
        plan = self._plan
        if plan is None:
            plan = self._next_plan(conn)
            if plan is None:
                return False
            self._plan, self._merged = plan, 0
        merged = self._merged
        conn.execute("BEGIN IMMEDIATE")
        try:
            if merged < len(plan.keys):
                upto = merged + self.merge_slice
                conn.execute(_MERGE, (_json(plan.keys[merged:upto]), plan.newest))
                merged = min(upto, len(plan.keys))
            else:
                conn.execute(_DROP_MERGED, (plan.through, DROP_SLICE))
                left = conn.execute(_FIRST_RECENT).fetchone()[0]
                if left is None or left > plan.through:
                    self._reload_after_delete(conn)  # also ends this merge
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            self._plan = None
            self._stale = True
            raise
        self._merged = merged
        return True

    def _next_plan(self, conn: sqlite3.Connection) -> MergePlan | None:
        """The plan of the merge to run once it is read; starts reading it when none is.

        The keys are all remembered from the newest one's time: in the older level a key can
        outlive the window by as long as the recent keys took to gather (never by more than
        the window, since older ones are left out), never fall short of it.

        Raises:
            sqlite3.Error: reading the plan failed (the next step reads it again).
        """
        planner = self._planner
        if planner is None:
            path = Path(conn.execute(_MAIN_FILE).fetchone()[0])
            planner = self._planner = MergePlanner(path)
        if planner.busy:
            return None
        read = planner.take()
        if isinstance(read, Exception):
            raise read if isinstance(read, sqlite3.Error) else sqlite3.Error(str(read))
        self._sync(conn)
        if read is not None and read.generation == self._generation:
            logger.debug("merging %d recent dedupe keys", len(read.keys))
            return read
        # None read yet, or one read before another process merged or pruned: read it now.
        planner.start(self._through, time.time() - self.window, self._generation)
        return None

    def prune(self, conn: sqlite3.Connection, horizon: float, limit: int) -> int:
        """Forget up to ``limit`` keys of each level seen before ``horizon``; in its own
        transaction. Returns how many were forgotten."""
        conn.execute("BEGIN IMMEDIATE")
        try:
            pruned = conn.execute(_PRUNE_OLDER, (horizon, limit)).rowcount
            recent = conn.execute(_PRUNE_RECENT, (horizon, limit)).rowcount
            if recent:
                self._reload_after_delete(conn)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            self._stale = True
            raise
        return max(pruned, recent)

    def _reload_after_delete(self, conn: sqlite3.Connection) -> None:
        """Recent rows were deleted in the open transaction: tell the other processes, and
        mirror what is left (a failed commit marks the dict stale again)."""
        conn.execute(_NEXT_GENERATION)
        self._stale = True
        self._sync(conn)

    def _sync(self, conn: sqlite3.Connection) -> None:
        """Bring the dict up to the file: reload after a rollback or another process's merge
        or prune; otherwise read only the rows other processes appended."""
        version = conn.execute("PRAGMA data_version").fetchone()[0]
        if not self._stale and version == self._data_version:
            return
        self._data_version = version
        generation = conn.execute(_GENERATION).fetchone()[0]
        if self._stale or generation != self._generation:
            self._recent = {}
            self._through = 0
            self._plan = None  # a merge elsewhere may have moved its keys: start over
        self._stale = False
        self._generation = generation
        recent = self._recent
        for row_id, key, at in conn.execute(_RECENT_AFTER, (self._through,)):
            if at > recent.get(key, 0.0):
                recent[key] = at
            self._through = row_id


def _json(values: list[str]) -> str:
    return orjson.dumps(values).decode()
