"""One retry policy, shared by the client, the dispatcher and bootstrap.

Exponential backoff with full jitter, capped per delay, in attempts and in total time; a
``Retry-After`` from the provider takes precedence over the computed delay.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how long to retry a failing operation.

    Args:
        attempts: retries after the first try (``0`` disables retrying).
        base: the first delay, in seconds, before jitter.
        factor: how much each delay grows.
        max_delay: the largest single delay.
        max_total: the most time all delays together may take; retrying stops before it.
        jitter: draw each delay uniformly between half and all of its nominal value, so many
            clients that failed together do not retry together.
        time_scale: the share of each delay actually waited, for tests: every decision
            (whether to retry, when ``max_total`` is reached) still uses the full delays, so
            ``time_scale=0`` decides as production would and waits nothing (the test kit's
            ``BotTester`` sets it on every policy of the app under test). Leave it at 1 in
            production.
    """

    attempts: int = 5
    base: float = 0.5
    factor: float = 2.0
    max_delay: float = 30.0
    max_total: float = 60.0
    jitter: bool = True
    time_scale: float = 1.0

    def __post_init__(self) -> None:
        if self.attempts < 0:
            raise ValueError("RetryPolicy.attempts must be 0 or more")
        if self.base < 0 or self.factor < 1 or self.max_delay < 0 or self.max_total < 0:
            raise ValueError(
                "RetryPolicy needs base >= 0, factor >= 1, max_delay >= 0 and max_total >= 0"
            )
        if not 0 <= self.time_scale <= 1:
            raise ValueError("RetryPolicy.time_scale must be from 0 to 1")

    def wait_for(self, delay: float) -> float:
        """The seconds actually waited for a delay of ``delay`` (see ``time_scale``)."""
        return delay * self.time_scale

    def delay(self, retry: int, retry_after: float | None = None) -> float:
        """The delay before retry number ``retry`` (1 for the first retry).

        A provider's ``retry_after`` wins over the computed delay, capped at ``max_delay``;
        one of 0 (or a negative one, read as 0) would mean no wait at all, so it is ignored.
        """
        if retry_after is not None and retry_after > 0:
            return min(retry_after, self.max_delay)
        nominal = min(self.base * self.factor ** (retry - 1), self.max_delay)
        if self.jitter:
            return random.uniform(nominal / 2, nominal)
        return nominal

    def delays(self) -> Iterator[float]:
        """The delays of a whole retry schedule, stopping at ``attempts`` or ``max_total``."""
        spent = 0.0
        for retry in range(1, self.attempts + 1):
            pause = self.delay(retry)
            if spent + pause > self.max_total:
                return
            spent += pause
            yield pause

    def allows(self, retry: int, spent: float, next_delay: float) -> bool:
        """Whether retry number ``retry`` may happen after ``spent`` seconds of waiting."""
        return retry <= self.attempts and spent + next_delay <= self.max_total


#: The dispatcher's default for failing handlers: 5 retries after 1, 2, 4, 8 and 8 s, each drawn
#: between half and all of it (12 to 23 s in all), then a dead letter.
HANDLER_RETRY = RetryPolicy(attempts=5, base=1.0, factor=2.0, max_delay=8.0, max_total=60.0)
#: The client's default for transient provider errors.
CLIENT_RETRY = RetryPolicy(attempts=4, base=0.5, factor=2.0, max_delay=10.0, max_total=30.0)
