"""Deadlines for reading request bodies, kept by one timer for all of them.

The ASGI application cannot tell whether a body has already arrived before it asks for it,
so every callback's read needs a deadline. ``asyncio.timeout`` around each read arms and
cancels a timer per request: under uvicorn that cost about 10 us of the bot's 62 us per
callback (16 %, measured with one-message callbacks at full load). Here a read only notes
when it began; one timer, armed while reads are under way, wakes every ``tick`` seconds and
cancels the reads past their deadline. A read is therefore cut between ``seconds`` and
``seconds + tick`` after it began, which for a deadline of several seconds is the same answer
(408), a little later.
"""

from __future__ import annotations

import asyncio
from time import monotonic

__all__ = ["ReadDeadlines"]


class ReadDeadlines:
    """Body reads under way and their deadline; cancels the ones that run past it.

    Use from the task that reads::

        task = deadlines.begin(started)
        try:
            body = await read()
        except asyncio.CancelledError:
            if not deadlines.cut(task):
                raise  # cancelled by someone else
            ...  # answer 408
        finally:
            deadlines.end(task)

    Args:
        seconds: how long a read may take.
    """

    __slots__ = ("_cut", "_reads", "_timer", "seconds", "tick")

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        #: Seconds between checks: how late past its deadline a read may be cut.
        self.tick = min(1.0, seconds / 4)
        self._reads: dict[asyncio.Task[object], float] = {}
        self._cut: set[asyncio.Task[object]] = set()
        self._timer: asyncio.TimerHandle | None = None

    def begin(self, started: float) -> asyncio.Task[object]:
        """A read by the current task begins; ``started`` is its ``time.monotonic()``."""
        task: asyncio.Task[object] | None = asyncio.current_task()
        if task is None:
            raise RuntimeError("ReadDeadlines.begin must be called from a task")
        self._reads[task] = started + self.seconds
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.tick, self._check)
        return task

    def end(self, task: asyncio.Task[object]) -> None:
        """The read is over, however it ended."""
        self._reads.pop(task, None)
        self._cut.discard(task)

    def cut(self, task: asyncio.Task[object]) -> bool:
        """Whether the ``CancelledError`` the task caught came from its deadline alone (the
        task is then no longer cancelling); False: someone else cancelled it too."""
        if task not in self._cut:
            return False
        self._cut.discard(task)
        return task.uncancel() == 0

    def _check(self) -> None:
        self._timer = None
        now = monotonic()
        for task, deadline in list(self._reads.items()):
            if deadline <= now and task not in self._cut:
                self._cut.add(task)
                task.cancel()
        if self._reads:
            self._timer = asyncio.get_running_loop().call_later(self.tick, self._check)
