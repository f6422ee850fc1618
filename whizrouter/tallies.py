"""Plain counts the hot path keeps, for the metrics to read when they are scraped.

The receiver, the dispatcher's attempts and the provider transport count what happens in
ints, dicts and these small classes: an increment or two, no lock, no library call. The
Prometheus collector (:mod:`whizrouter.metrics`) turns them into metrics only when
``GET /metrics`` asks, so a bot nobody scrapes pays for the increments alone.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping
from typing import Any, Final

#: Upper bounds (seconds) of the acknowledgement time's histogram: a callback's 200 usually
#: takes a millisecond or two, a group commit under load some tens.
ACK_BUCKETS: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
#: Upper bounds (seconds) of the handlers' histogram: from a quick reply to a slow API call.
HANDLER_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
#: Upper bounds (seconds) of the provider requests' histogram.
PROVIDER_BUCKETS: Final = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Timings:
    """A histogram kept in plain numbers: a count per bucket and the sum of the values.

    Args:
        bounds: the buckets' upper bounds, ascending; values above the last one are counted
            in a last, unbounded bucket.
    """

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        #: Values per bucket (not cumulative): ``counts[i]`` holds those at most
        #: ``bounds[i]`` and above the bound before; the last one those above every bound.
        self.counts = [0] * (len(bounds) + 1)
        #: The sum of every value observed.
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        """Count one value."""
        # bisect_left: a value equal to a bound belongs to that bound's bucket (``le``).
        self.counts[bisect_left(self.bounds, seconds)] += 1
        self.total += seconds

    def cumulative(self) -> list[tuple[str, float]]:
        """The buckets as Prometheus writes them: ``(le, values at most le)``, ``+Inf`` last."""
        buckets: list[tuple[str, float]] = []
        running = 0
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += count
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), running))
        return buckets

    @property
    def count(self) -> int:
        """How many values were observed."""
        return sum(self.counts)


def endpoint_of(method: str, path: str, payload: Any) -> str:
    """The fixed name of a provider API call, for metrics: never a URL with an id in it.

    ``messages`` (a message sent), ``mark_read`` (a message marked read, a PUT on
    ``/v1/messages/<id>`` or a Cloud POST whose body has ``"status": "read"``), ``webhook``
    (the webhook's configuration), ``media`` (media uploads and downloads), else ``other``.
    """
    if path.endswith("/messages"):
        if isinstance(payload, Mapping) and payload.get("status") == "read":
            return "mark_read"
        return "messages"
    if "/messages/" in path:
        return "mark_read" if method == "PUT" else "messages"
    if "/settings/application" in path or "webhook" in path:
        return "webhook"
    if "/media" in path:
        return "media"
    return "other"


class ProviderCalls:
    """The provider requests of one client: how many by endpoint and answer, how long each.

    Each HTTP attempt counts once (a retried request counts each try); the code of an
    attempt that got no answer (a timeout, a refused connection) is ``0``.
    """

    __slots__ = ("answers", "timings")

    def __init__(self) -> None:
        #: Attempts by (endpoint, HTTP status or 0).
        self.answers: dict[tuple[str, int], int] = {}
        #: Seconds each attempt took, by endpoint.
        self.timings: dict[str, Timings] = {}

    def count(self, endpoint: str, code: int, seconds: float) -> None:
        """Count one attempt on ``endpoint`` answered ``code`` (0: no answer)."""
        key = (endpoint, code)
        self.answers[key] = self.answers.get(key, 0) + 1
        timings = self.timings.get(endpoint)
        if timings is None:
            timings = self.timings[endpoint] = Timings(PROVIDER_BUCKETS)
        timings.observe(seconds)
