"""The NATS inbox's background loops: started during one ``open``, ended at its ``close``.

The backlog's count, and in a worker the heartbeats, lease keeping and fetches of each
partition, run as tasks. ``close`` first lets them end on their own (they watch ``stopping``
as well as their cancellation), and cancels only those still running after a bound.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any


class Loops:
    """The tasks of one open inbox.

    Attributes:
        stopping: set when ``close`` begins; every loop ends when it sees it.
    """

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()
        self.stopping = False

    def spawn(self, loop: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run ``loop`` as a task until it ends or ``stop`` cancels it."""
        task = asyncio.create_task(loop)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def stop(self, within: float) -> None:
        """Wait up to ``within`` seconds for the loops to end, then cancel the others."""
        tasks = list(self._tasks)
        # Let the loops end on their own first: a fetch cancelled mid-way drops what it had
        # received, which then comes back after ack_wait looking as if a handler had run it.
        if tasks:
            await asyncio.wait(tasks, timeout=within)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
