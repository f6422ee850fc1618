"""One warning line per interval for failures that repeat.

While a disk is full, a server is gone or a client keeps sending garbage, the same failure
comes once per callback or per commit: thousands of identical lines would bury everything
else. Each place that logs such a failure asks a ``LogThrottle`` first.
"""

from __future__ import annotations

import math
import time

#: Seconds between two lines about the same recurring failure.
LOG_INTERVAL = 10.0


class LogThrottle:
    """Says whether a line of a given kind may be logged now, and how many were held back.

    Args:
        interval: seconds between two lines of the same kind.
    """

    def __init__(self, interval: float = LOG_INTERVAL) -> None:
        self.interval = interval
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def due(self, kind: str = "") -> bool:
        """Whether a line of ``kind`` may be logged now; if not, it is counted as held back."""
        now = time.monotonic()
        if now - self._last.get(kind, -math.inf) < self.interval:
            self._held[kind] = self._held.get(kind, 0) + 1
            return False
        self._last[kind] = now
        return True

    def held_back(self, kind: str = "") -> int:
        """Lines of ``kind`` refused since the last one logged; resets the count."""
        return self._held.pop(kind, 0)
