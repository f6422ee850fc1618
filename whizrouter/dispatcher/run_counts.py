"""The counts of handler runs: by outcome and by handler, and how long each run took.

Kept by ``Attempts``, which mixes ``RunCounts`` in: the count and the timing of a success are
inlined in its run path (a call each per event would cost more than their bodies), the rarer
outcomes go through ``_count`` and ``_timed``. The dispatcher reads them for logs, ``/healthz``
and ``GET /metrics``.
"""

from __future__ import annotations

from time import monotonic

from whizrouter.tallies import HANDLER_BUCKETS, Timings


class RunCounts:
    """The counts of handler runs, mixed into ``Attempts``."""

    def __init__(self) -> None:
        #: Counters for logs, health checks and tests.
        self.handled = 0
        self.failed_attempts = 0
        self.dead_lettered = 0
        #: Runs by (handler, outcome), for the metrics: ``retry``, a failure retried;
        #: ``timeout``, a run cancelled at its timeout; ``dead``, an event dead-lettered.
        #: Successful runs are counted apart, by handler, in ``succeeded`` (no tuple per run).
        self.outcomes: dict[tuple[str, str], int] = {}
        self.succeeded: dict[str, int] = {}
        #: Seconds each run took, by handler, for the metrics.
        self.timings: dict[str, Timings] = {}

    def _new_timings(self, handler: str) -> Timings:
        timings = self.timings[handler] = Timings(HANDLER_BUCKETS)
        return timings

    def _timed(self, handler: str, started: float) -> None:
        (self.timings.get(handler) or self._new_timings(handler)).observe(monotonic() - started)

    def _count(self, handler: str, outcome: str) -> None:
        key = (handler, outcome)
        self.outcomes[key] = self.outcomes.get(key, 0) + 1
