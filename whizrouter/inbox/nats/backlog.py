"""The NATS inbox's backlog: the stream's unsettled events, as this process can know them cheaply.

Every receiver and worker changes the stream, so the count comes from the server, once a
second; between counts, this process adds its own appends and settlements. ``backlog()`` is
called for every callback, so it never waits for the server.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import nats.errors

from whizrouter.errors import InboxError

#: Seconds between two counts on the server.
REFRESH_INTERVAL = 1.0


class Backlog:
    """The last count of the events stream, plus this process' changes since.

    Args:
        count: asks the server how many events the stream holds.
    """

    def __init__(self, count: Callable[[], Awaitable[int]]) -> None:
        self._count = count
        self._counted = 0
        self._net = 0
        self._net_when_counted = 0

    def value(self) -> int:
        """Unsettled events: exact when this process is the only one changing the stream."""
        return max(0, self._counted + self._net - self._net_when_counted)

    def changed(self, delta: int) -> None:
        """This process stored (``delta`` > 0) or settled (< 0) events."""
        self._net += delta

    async def refresh(self) -> None:
        """Count on the server now.

        Raises:
            nats.errors.Error, InboxError: the count could not be read.
        """
        net_before = self._net
        counted = await self._count()
        # This process' changes made while the count was on its way may be in it or not:
        # they are added from before it, so one may count twice until the next count, a
        # second later. (Taking counts only when this process was quiet left every process
        # adding up its own changes alone for seconds under load, far apart from each other.)
        self._counted = counted
        self._net_when_counted = net_before

    async def refresh_forever(self, stopping: Callable[[], bool]) -> None:
        """Count every ``REFRESH_INTERVAL`` until ``stopping()``; a failed count is skipped."""
        while not stopping():
            await asyncio.sleep(REFRESH_INTERVAL)
            with contextlib.suppress(nats.errors.Error, InboxError):
                await self.refresh()
